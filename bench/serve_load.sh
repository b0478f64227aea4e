#!/usr/bin/env bash
# Load test of `convnext serve` on ConvNeXt-T 224 (random weights, 1000 labels), beside
# `convnext bench` in the same run, for issue 13's targets:
#   throughput at concurrency 32 / bench --batch 16 images/s   >= 0.8
#   p99 latency at concurrency 1 / bench --batch 1 median ms   <= 1.3
#
#   bash bench/serve_load.sh [path/to/convnext]
#   env: DURATION (20 s measured per concurrency), WARMUP (3 s), CONCURRENCY ("1 8 32"),
#        SERVE_ARGS (extra `serve` options, e.g. "--max-queue-delay-ms 2"), ITERS (bench runs, 10)
#
# Each concurrency: C client threads, one keep-alive connection each, send KServe V2 infer
# requests back to back: pixel_values [1, 3, 224, 224] as binary tensor data, logits back in
# binary. Printed per concurrency: requests/s, p50 and p99 latency, and the mean batch size from
# /metrics (delta of convnext_inference_batch_size_sum / _count over the measured span). `bench`
# runs before the load and after it (the server stopped); the ratios use the mean of the two.
#
# The load generator is bench/serve_load.py, Python 3 standard library (threads + http.client),
# not C++: it needs no build step nor a CMake target, and at the rates a CPU ConvNeXt-T server
# reaches (tens of requests/s) its cost per request (~0.1 ms of client CPU, printed as
# client_cpu_s) is noise beside a forward pass of tens of milliseconds. Debian's wrk/hey are not
# installed here, and neither speaks the binary extension without a script.
#
# The machine is shared: run it when `uptime` shows little load (printed before and after), and
# compare only figures from one run.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/convnext}
duration=${DURATION:-20} warmup=${WARMUP:-3} iters=${ITERS:-10}
concurrency=${CONCURRENCY:-"1 8 32"}
[[ -x $bin ]] || { echo "no $bin: build it first (cmake --build build --target convnext_cli)" >&2; exit 1; }

work=build/bench/serve_load
mkdir -p "$work"
model=$work/convnext-tiny
[[ -f $model/model.safetensors ]] || "$bin" init --arch tiny --output "$model" >/dev/null
raw=$work/results.jsonl
: >"$raw"

echo "# $(nproc) cores; load before: $(uptime | sed 's/.*load average/load average/')"
bench() {  # BATCH: one `convnext bench` JSON line
  "$bin" bench --arch tiny --batch "$1" --iters "$iters" --json | tee -a "$raw"
}
b1_before=$(bench 1)
b16_before=$(bench 16)

log=$work/server.log
"$bin" serve --model "$model" --port 0 ${SERVE_ARGS:-} >"$work/server.out" 2>"$log" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 600); do
  grep -q "^listening on" "$work/server.out" 2>/dev/null && break
  kill -0 $server 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.1
done
url=$(sed -n 's/^listening on //p' "$work/server.out")
[[ -n $url ]] || { echo "the server did not start" >&2; exit 1; }
name=$(basename "$model")

loads=()
for c in $concurrency; do
  line=$(python3 bench/serve_load.py --url "$url" --model "$name" --concurrency "$c" --duration "$duration" --warmup "$warmup" \
         --server-pid "$server")
  echo "$line" >>"$raw"
  loads+=("$line")
done
kill -TERM $server
wait $server || { echo "the server exited $?" >&2; exit 1; }
trap - EXIT

b1_after=$(bench 1)
b16_after=$(bench 16)
echo "# load after: $(uptime | sed 's/.*load average/load average/')"

python3 - "$b1_before" "$b16_before" "$b1_after" "$b16_after" "${SERVE_ARGS:-}" "${loads[@]}" <<'PY'
import json, sys
b1, b16, b1b, b16b = (json.loads(x) for x in sys.argv[1:5])
serve_args = sys.argv[5]
loads = [json.loads(x) for x in sys.argv[6:]]
print(f"\nconvnext serve (defaults{', ' + serve_args if serve_args else ''}), ConvNeXt-T 224, "
      f"pixel_values [1,3,224,224] binary, {b16['threads']} model threads")
print("| concurrency | requests | requests/s | p50 ms | p90 ms | p99 ms | max ms | mean batch | errors | other procs' cores |")
print("|---|---|---|---|---|---|---|---|---|---|")
for l in loads:
    print(f"| {l['concurrency']} | {l['requests']} | {l['requests_per_s']:.1f} | {l['p50_ms']:.1f} | {l['p90_ms']:.1f} | "
          f"{l['p99_ms']:.1f} | {l['max_ms']:.1f} | {l['mean_batch']} | {l['errors']} | {l['other_cores']:.2f} |")
print("\n| convnext bench --arch tiny | before: median ms | images/s | after: median ms | images/s |")
print("|---|---|---|---|---|")
for b, a in ((b1, b1b), (b16, b16b)):
    print(f"| --batch {b['batch']} | {b['median_ms']:.1f} | {b['images_per_s']:.1f} | {a['median_ms']:.1f} | {a['images_per_s']:.1f} |")
by_c = {l["concurrency"]: l for l in loads}
ok = True
if 32 in by_c:
    ips16 = (b16["images_per_s"] + b16b["images_per_s"]) / 2
    r = by_c[32]["requests_per_s"] / ips16
    ok &= r >= 0.8
    print(f"\nthroughput at concurrency 32 / bench batch 16: {by_c[32]['requests_per_s']:.1f} / {ips16:.1f} = {r:.2f} (target >= 0.8)")
if 1 in by_c:
    ms1 = (b1["median_ms"] + b1b["median_ms"]) / 2
    r = by_c[1]["p99_ms"] / ms1
    ok &= r <= 1.3
    print(f"p99 at concurrency 1 / bench batch 1 median: {by_c[1]['p99_ms']:.1f} / {ms1:.1f} ms = {r:.2f} (target <= 1.3)")
print("targets met" if ok else "targets MISSED")
PY
