#!/usr/bin/env bash
# Our pointwise GEMM against Debian's oneDNN 2.6 (apt-get install -y libdnnl-dev) on ConvNeXt-T's
# shapes: builds the library in build-onednn/ (its own build dir), bench/gemm_vs_onednn.cpp and
# bench/peak_flops.cpp, prints the peak probe (3 runs, with the cores other processes took meanwhile)
# and the table. The machine is shared: compare only figures from the same run.
#   bash bench/gemm_vs_onednn.sh        (env: THREADS, REPS_S, MAX_OTHERS, WAIT_S; see the .cpp)
set -euo pipefail
cd "$(dirname "$0")/.."
# oneDNN is a bench-time tool here, never a dependency of the library.
dpkg-query -W -f='${Status}' libdnnl-dev 2>/dev/null | grep -q "install ok installed" \
  || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libdnnl-dev; }
b=build-onednn
cmake -S . -B $b -DCMAKE_BUILD_TYPE=Release -DCONVNEXT_BUILD_TESTS=OFF >/dev/null
cmake --build $b -j1 --target convnext >/dev/null
g++ -O2 -std=c++20 -fopenmp -Iinclude -Isrc bench/gemm_vs_onednn.cpp -o $b/gemm_vs_onednn \
  $b/libconvnext.a -ldnnl -ljpeg -lpng -lz -lwebp -lwebpdemux
g++ -O2 -mavx512f -mavx512bf16 -fopenmp bench/peak_flops.cpp -o $b/peak_flops
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9; exit}' /proc/stat; }
hz=$(getconf CLK_TCK)
for i in 1 2 3; do
  b0=$(busy); t0=$(date +%s.%N)
  out=$(/usr/bin/time -f "%U %S" -o /tmp/peak_time.$$ "$b/peak_flops")
  b1=$(busy); t1=$(date +%s.%N); read -r u s </tmp/peak_time.$$
  others=$(awk -v b0="$b0" -v b1="$b1" -v hz="$hz" -v u="$u" -v s="$s" -v t0="$t0" -v t1="$t1" \
    'BEGIN { printf "%.2f", ((b1 - b0) / hz - u - s) / (t1 - t0) }')
  echo "peak_flops run $i (others' cores meanwhile: $others):"; echo "$out"
done
rm -f /tmp/peak_time.$$
OMP_NUM_THREADS=${THREADS:-2} THREADS=${THREADS:-2} "$b/gemm_vs_onednn"
