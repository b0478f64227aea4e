#!/usr/bin/env bash
# The pointwise GEMMs' rate against the core's own (one thread, fp32 and int8): links
# bench/gemm_rate.cpp against the static library of build/ (built first if missing), then prints a
# table (see the .cpp).   bash bench/gemm_rate.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -f build/libconvnext.a ]]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null && cmake --build build -j"$(nproc)" --target convnext >/dev/null
fi
g++ -O2 -std=c++20 -Iinclude -Isrc bench/gemm_rate.cpp -o build/gemm_rate build/libconvnext.a -pthread
build/gemm_rate
