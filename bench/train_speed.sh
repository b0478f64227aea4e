#!/usr/bin/env bash
# Training speed: full training steps (forward keeping activations, loss, backward, clipping,
# AdamW, zero_grad) of ConvNeXt-T at 224, fp32, batch 8, random weights and data, median of
# ITERS steps after 2 warm-up steps, with the process's peak RSS.
#   bash bench/train_speed.sh            (THREADS=2 ITERS=7 BATCH=8 ARCH=tiny)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${CONVNEXT_BIN:-build/convnext}
"$bin" bench --train --arch "${ARCH:-tiny}" --batch "${BATCH:-8}" --threads "${THREADS:-2}" --iters "${ITERS:-7}" --warmup 2 --json
