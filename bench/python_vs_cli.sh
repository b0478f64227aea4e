#!/usr/bin/env bash
# The Python binding's overhead: `model(pixel_values=x)` from Python (bench/python_bench.py) against
# `convnext bench --model DIR` (the same forward in C++) on one ConvNeXt-T checkpoint with random
# weights (convnext init --arch tiny, 1000 labels, made once in build/bench/tiny-random), 224 fp32,
# batch 1 and 8, the two alternating in the same run, R rounds, each run its own process. Prints the
# medians over rounds and the ratio python/C++ (1.00: no overhead). Uses the build tree's package
# (build/python) unless PYTHONPATH says otherwise.
#   bash bench/python_vs_cli.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
export PYTHONPATH=${PYTHONPATH:-$PWD/build/python}
cli=build/convnext
model=build/bench/tiny-random
[[ -f $model/model.safetensors ]] || $cli init --arch tiny --num-labels 1000 --output $model >/dev/null
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "| batch | C++ convnext bench ms | Python model(pixel_values=x) ms | python / C++ |"
echo "|---|---|---|---|"
for batch in 1 8; do
  iters=$([[ $batch == 1 ]] && echo 20 || echo 5)
  c=(); p=()
  for ((r = 0; r < rounds; r++)); do
    c+=("$($cli bench --model $model --batch $batch --iters $iters --warmup 2 --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["median_ms"])')")
    p+=("$(/usr/bin/python3 bench/python_bench.py --model $model --batch $batch --iters $iters --warmup 2 | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["median_ms"])')")
  done
  cm=$(printf '%s\n' "${c[@]}" | median); pm=$(printf '%s\n' "${p[@]}" | median)
  printf '| %d | %.2f | %.2f | %.3f |\n' "$batch" "$cm" "$pm" "$(echo "$pm / $cm" | bc -l)"
done
echo "($rounds rounds; $(nproc) CPUs; load average: $(cut -d' ' -f1-3 /proc/loadavg))"
