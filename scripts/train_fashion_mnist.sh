#!/usr/bin/env bash
# Trains the Fashion-MNIST model that ships in models/convnext-fashion-mnist, from scratch, with
# this project's trainer (seeded: the same machine gives the same weights). Needs Debian's
# dataset-fashion-mnist (scripts/setup.sh --tests installs it) and a build in ./build.
#   bash scripts/train_fashion_mnist.sh [OUTPUT_DIR]      (default /tmp/convnext-fashion-mnist)
# With RANKS=N it trains data-parallel under mpirun (a build with MPI): N ranks of batch 128/N, the
# same global batch of 128 and the same steps. With DTYPE=bf16 it trains in bf16 mixed precision
# (`train --dtype bf16`); the checkpoint is fp32 either way.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-/tmp/convnext-fashion-mnist}"
data=/usr/share/datasets/fashion-mnist
[ -d "$data" ] || { echo "missing $data: apt-get install dataset-fashion-mnist" >&2; exit 1; }
[ -x build/convnext ] || { echo "build first: cmake -S . -B build && cmake --build build -j" >&2; exit 1; }
ranks=${RANKS:-1}
launch=()
if ((ranks > 1)); then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  launch=(mpirun -np "$ranks" --oversubscribe)
fi
"${launch[@]}" ./build/convnext train --config recipes/fashion-mnist/config.json \
  --data "$data:train" --eval-data "$data:test" --output "$out" \
  --epochs 22 --batch-size $((128 / ranks)) --lr 2e-3 --weight-decay 0.05 \
  --lr-scheduler cosine --warmup-steps 469 --crop-scale 0.85 --seed 0 --dtype "${DTYPE:-f32}"
./build/convnext eval --model "$out" --data "$data:test" --plot "$out/confusion.svg"
