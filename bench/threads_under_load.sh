#!/usr/bin/env bash
# ConvNeXt-T batch 1 with the default thread count beside other CPU-bound processes, as people run
# us (next to a web server, a data loader, a build). Measures, in one run:
#   idle:   the default threads and --threads 1 on the machine as it is
#   loaded: the same two, alternating, beside LOAD_PER_CORE busy-looping processes per core
# and prints the medians, the default's fair share of the cores under load
#   fair = idle_default_ms × (competitors + threads) / cores
# (what the default's threads would take if the kernel shared the cores evenly among all runnable
# threads), and whether the default is no slower than --threads 1 and within 1.5× of that share.
#
#   bash bench/threads_under_load.sh [path/to/convnext]
#   env: ROUNDS (5), ITERS (20 timed forwards per run), LOAD_PER_CORE (3), EXTRA ("--dtype bf16"...),
#        BASELINE=path/to/another/convnext: measured the same way in the same run, interleaved (for
#        example a build of an older commit), and reported beside ours
set -euo pipefail
bin=${1:-build/convnext}
rounds=${ROUNDS:-5} iters=${ITERS:-20} per_core=${LOAD_PER_CORE:-3} extra=${EXTRA:-}
cores=$(nproc)
[[ -x $bin ]] || { echo "no $bin: build first (cmake --build build)" >&2; exit 1; }

baseline=${BASELINE:-}
run_ms() {  # BINARY [flags]: one bench run; prints its median ms
  local b=$1; shift
  "$b" bench --arch tiny --iters "$iters" --warmup 3 --json "$@" $extra |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["median_ms"])'
}
median_of() { python3 -c 'import statistics,sys; print(statistics.median(map(float, sys.argv[1:])))' "$@"; }

default_threads=$("$bin" bench --arch tiny --iters 1 --warmup 0 --json $extra |
                  python3 -c 'import json,sys; print(json.load(sys.stdin)["threads"])')
echo "# $cores cores; default threads: $default_threads; ${rounds} rounds of ${iters} forwards; load: $per_core busy processes per core" >&2

# PHASE: R rounds, each ours (default, 1 thread) then the baseline's, appended to the arrays
# PHASE_d PHASE_1 base_PHASE_d base_PHASE_1.
measure() {
  local phase=$1 r
  local -n ours_d=${phase}_d ours_1=${phase}_1 base_d=base_${phase}_d base_1=base_${phase}_1
  for ((r = 0; r < rounds; r++)); do
    ours_d+=("$(run_ms "$bin")"); ours_1+=("$(run_ms "$bin" --threads 1)")
    echo "# $phase round $((r + 1)): default ${ours_d[-1]} ms, 1 thread ${ours_1[-1]} ms" >&2
    if [[ -n $baseline ]]; then
      base_d+=("$(run_ms "$baseline")"); base_1+=("$(run_ms "$baseline" --threads 1)")
      echo "#   baseline: default ${base_d[-1]} ms, 1 thread ${base_1[-1]} ms" >&2
    fi
  done
}

idle_d=() idle_1=() base_idle_d=() base_idle_1=()
measure idle

competitors=$((per_core * cores))
pids=()
cleanup() { ((${#pids[@]})) && kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT
for ((i = 0; i < competitors; i++)); do
  (while :; do :; done) &
  pids+=($!)
done
sleep 1
load_d=() load_1=() base_load_d=() base_load_1=()
measure load
cleanup
pids=()

python3 - "$cores" "$default_threads" "$competitors" "$(median_of "${idle_d[@]}")" "$(median_of "${idle_1[@]}")" \
  "$(median_of "${load_d[@]}")" "$(median_of "${load_1[@]}")" \
  "${baseline:+$(median_of "${base_idle_d[@]}")}" "${baseline:+$(median_of "${base_idle_1[@]}")}" \
  "${baseline:+$(median_of "${base_load_d[@]}")}" "${baseline:+$(median_of "${base_load_1[@]}")}" "$baseline" <<'EOF'
import sys
cores, threads, comp = map(int, sys.argv[1:4])
idle_d, idle_1, load_d, load_1 = map(float, sys.argv[4:8])
fair_d = idle_d * (comp + threads) / cores
fair_1 = idle_1 * (comp + 1) / cores
print(f"ConvNeXt-T batch 1, {cores} cores, {comp} competing CPU-bound processes ({comp // cores} per core)")
print(f"| threads | idle median ms | loaded median ms | fair share ms | loaded / fair |")
print(f"|---|---|---|---|---|")
print(f"| default ({threads}) | {idle_d:.1f} | {load_d:.1f} | {fair_d:.1f} | {load_d / fair_d:.2f} |")
print(f"| 1 | {idle_1:.1f} | {load_1:.1f} | {fair_1:.1f} | {load_1 / fair_1:.2f} |")
ok1 = load_d <= load_1
ok2 = load_d <= 1.5 * fair_d
if sys.argv[8]:
    b_idle_d, b_idle_1, b_load_d, b_load_1 = map(float, sys.argv[8:12])
    bf_d = b_idle_d * (comp + threads) / cores
    print(f"| baseline default ({threads}) | {b_idle_d:.1f} | {b_load_d:.1f} | {bf_d:.1f} | {b_load_d / bf_d:.2f} |")
    print(f"| baseline 1 | {b_idle_1:.1f} | {b_load_1:.1f} | {b_idle_1 * (comp + 1) / cores:.1f} | "
          f"{b_load_1 / (b_idle_1 * (comp + 1) / cores):.2f} |")
    print(f"baseline: {sys.argv[12]}; idle default ours/baseline {idle_d / b_idle_d:.3f}, loaded default "
          f"ours/baseline {load_d / b_load_d:.3f}")
print(f"default loaded / --threads 1 loaded: {load_d / load_1:.2f} ({'no slower' if ok1 else 'SLOWER'}); "
      f"default within 1.5x of its fair share: {'yes' if ok2 else 'NO'} ({load_d / fair_d:.2f}x)")
EOF
