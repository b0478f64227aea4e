#!/usr/bin/env bash
# The six GEMMs of a training step's block, per stage of ConvNeXt-T at batch 8, fp32 and bf16, each
# alone on flushed caches (see bench/train_gemms.cpp): links it against the static library of
# build/ (built first if missing).   bash bench/train_gemms.sh [--warm]
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -f build/libconvnext.a ]]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null && cmake --build build -j"$(nproc)" --target convnext >/dev/null
fi
g++ -O2 -std=c++20 -Iinclude -Isrc bench/train_gemms.cpp -o build/train_gemms build/libconvnext.a -pthread
build/train_gemms "$@"
