#!/usr/bin/env bash
# Training speed: full training steps (forward keeping activations, loss, backward, clipping,
# AdamW, zero_grad) of ConvNeXt-T at 224, batch 8, random weights and data: `convnext bench
# --train`, median of ITERS steps after 2 warm-up steps, with the process's peak RSS.
#   bash bench/train_speed.sh            (THREADS=2 ITERS=7 BATCH=8 ARCH=tiny DTYPES=f32 ROUNDS=1)
# DTYPES="f32 bf16" ROUNDS=3 runs the dtypes in turn, ROUNDS times (a noisy machine drifts: each
# round has both), and prints each run's JSON line, then the median ms per step of each dtype over
# the rounds and, for bf16, its speed-up over f32 (the ratio of those medians).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${CONVNEXT_BIN:-build/convnext}
dtypes=${DTYPES:-f32}
rounds=${ROUNDS:-1}
results=$(mktemp)
trap 'rm -f "$results"' EXIT
for ((r = 1; r <= rounds; r++)); do
  for d in $dtypes; do
    "$bin" bench --train --arch "${ARCH:-tiny}" --batch "${BATCH:-8}" --threads "${THREADS:-2}" --iters "${ITERS:-7}" \
      --warmup 2 --dtype "$d" --json | tee -a "$results"
  done
done
if ((rounds > 1)) || [[ "$dtypes" == *" "* ]]; then
  python3 - "$results" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
med = {}
for d in dict.fromkeys(r["dtype"] for r in runs):
    ms = [r["median_ms"] for r in runs if r["dtype"] == d]
    med[d] = statistics.median(ms)
    print(f"{d}: median {med[d]:.1f} ms per step over {len(ms)} runs ({', '.join(f'{m:.0f}' for m in ms)}), "
          f"{runs[0]['batch'] * 1000 / med[d]:.2f} images/s")
if "f32" in med and "bf16" in med:
    print(f"bf16 / f32 training throughput: {med['f32'] / med['bf16']:.2f}x")
PY
fi
