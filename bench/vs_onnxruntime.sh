#!/usr/bin/env bash
# Side-by-side forward-pass benchmark: our engine (build/convnext bench) vs ONNX Runtime 1.30 CPU
# (npm onnxruntime-node, bench/ort_bench.js) on ConvNeXt-T 224, fp32, random weights and input; our
# int8 (and bf16 where the CPU has AVX512_BF16) runs in the same rounds against ORT's fp32.
#   bash bench/vs_onnxruntime.sh [path/to/convnext]
# Env: ROUNDS (3), ITERS1/WARMUP1 (10/2, batch 1), ITERS8/WARMUP8 (4/1, batch 8), MODEL (ONNX path).
# Needs bench/setup_ort.sh once (npm install --ignore-scripts + ONNX export). For each config (batch 1 and 8,
# threads 2 and 1) the two engines run alternately, each run its own process, R rounds, the first engine
# swapped each round (ours, ORT, ORT, ours, ...). Table: median over rounds of each run's median time;
# ratio = ORT ms / our ms (>1: we are faster); peak RSS = max over rounds (ours: the process max RSS;
# ORT: max RSS minus node's baseline before ORT loads). Raw JSON lines go to build/bench/vs_onnxruntime.jsonl.
# The machine has 2 shared cores: check that nothing else is running, and compare only figures from one run.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/convnext}
model=${MODEL:-build/bench/convnext_tiny.onnx}
rounds=${ROUNDS:-3}
if [[ ! -x $bin ]]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null && cmake --build build -j1 --target convnext_cli >/dev/null
fi
if [[ ! -f bench/ort/node_modules/onnxruntime-node/package.json || ! -f $model ]]; then
  bash bench/setup_ort.sh "$model"
fi
mkdir -p build/bench
raw=build/bench/vs_onnxruntime.jsonl
: >"$raw"
configs=("1 2" "1 1" "8 2" "8 1")
start=$SECONDS
for cfg in "${configs[@]}"; do
  read -r batch threads <<<"$cfg"
  if [[ $batch == 1 ]]; then iters=${ITERS1:-10} warmup=${WARMUP1:-2}; else iters=${ITERS8:-4} warmup=${WARMUP8:-1}; fi
  for ((r = 0; r < rounds; ++r)); do
    ours() { "$bin" bench --arch tiny --batch "$batch" --size 224 --threads "$threads" --iters "$iters" --warmup "$warmup" --json \
               | sed 's/^{/{"engine":"ours",/'; }
    ours_bf16() { "$bin" bench --arch tiny --batch "$batch" --size 224 --threads "$threads" --iters "$iters" --warmup "$warmup" \
                    --dtype bf16 --json | sed 's/^{/{"engine":"ours_bf16",/'; }
    ours_int8() { "$bin" bench --arch tiny --batch "$batch" --size 224 --threads "$threads" --iters "$iters" --warmup "$warmup" \
                    --dtype int8 --json | sed 's/^{/{"engine":"ours_int8",/'; }
    ort() { node bench/ort_bench.js --model "$model" --batch "$batch" --threads "$threads" --iters "$iters" --warmup "$warmup"; }
    if ((r % 2 == 0)); then order="ours ort"; else order="ort ours"; fi
    order="$order ours_int8"  # int8 (ours) against ORT's fp32
    # bf16 (ours) against ORT's fp32, where the CPU multiplies bf16 (the portable bf16 GEMM is slow)
    if ((threads == 2)) && grep -qw avx512_bf16 /proc/cpuinfo; then order="$order ours_bf16"; fi
    for e in $order; do
      line=$($e)
      echo "$line" >>"$raw"
      echo "[$((SECONDS - start))s] batch $batch threads $threads round $((r + 1)) $e: $(python3 -c 'import json,sys; print(round(json.loads(sys.argv[1])["median_ms"], 1), "ms")' "$line")" >&2
    done
  done
done
python3 - "$raw" "$rounds" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def pick(engine, b, t):
    return [r for r in rows if r["engine"] == engine and r["batch"] == b and r["threads"] == t]
print(f"\nConvNeXt-T 224, {sys.argv[2]} rounds per engine; ms = median over rounds of each run's median forward time\n")
print("| config | ours median ms | ORT median ms | ratio ORT/ours (>1: ours faster) | ours ms/img | ORT ms/img | ours peak RSS MB | ORT peak RSS MB (raw) |")
print("|---|---|---|---|---|---|---|---|")
med = {}
for b, t in [(1, 2), (1, 1), (8, 2), (8, 1)]:
    o, x = pick("ours", b, t), pick("onnxruntime", b, t)
    if not o or not x: continue
    om = statistics.median(r["median_ms"] for r in o); xm = statistics.median(r["median_ms"] for r in x)
    med[(b, t)] = om
    print(f"| batch {b}, {t} thread{'s' if t > 1 else ''} | {om:.1f} | {xm:.1f} | {xm / om:.3f} | {om / b:.1f} | {xm / b:.1f} "
          f"| {max(r['peak_rss_mb'] for r in o):.0f} | {max(r['peak_rss_mb'] for r in x):.0f} ({max(r['max_rss_mb'] for r in x):.0f}) |")
print(f"\nORT runs ranged: " + ", ".join(f"b{b}t{t} {min(r['median_ms'] for r in pick('onnxruntime', b, t)):.1f}-{max(r['median_ms'] for r in pick('onnxruntime', b, t)):.1f} ms" for b, t in [(1,2),(1,1),(8,2),(8,1)] if pick('onnxruntime', b, t)))
print(f"ours runs ranged: " + ", ".join(f"b{b}t{t} {min(r['median_ms'] for r in pick('ours', b, t)):.1f}-{max(r['median_ms'] for r in pick('ours', b, t)):.1f} ms" for b, t in [(1,2),(1,1),(8,2),(8,1)] if pick('ours', b, t)))
if pick("ours_bf16", 1, 2) or pick("ours_bf16", 8, 2):
    print("\nbf16 (ours, vdpbf16ps GEMMs) against ORT fp32, same rounds:\n")
    print("| config | ours bf16 median ms | ORT fp32 median ms | ratio ORT/ours bf16 | ours bf16 peak RSS MB |")
    print("|---|---|---|---|---|")
for b, t in [(1, 2), (8, 2)]:
    o, x = pick("ours_bf16", b, t), pick("onnxruntime", b, t)
    if not o or not x: continue
    om = statistics.median(r["median_ms"] for r in o); xm = statistics.median(r["median_ms"] for r in x)
    print(f"| batch {b}, {t} threads | {om:.1f} | {xm:.1f} | {xm / om:.3f} | {max(r['peak_rss_mb'] for r in o):.0f} |")
print("\nint8 (ours: the blocks' pointwise GEMMs in int8, vpdpbusd) against ORT fp32, same rounds:\n")
print("| config | ours int8 median ms | ORT fp32 median ms | ratio ORT/ours int8 | ours fp32/int8 | ours int8 peak RSS MB |")
print("|---|---|---|---|---|---|")
for b, t in [(1, 2), (1, 1), (8, 2), (8, 1)]:
    o, x = pick("ours_int8", b, t), pick("onnxruntime", b, t)
    if not o or not x: continue
    om = statistics.median(r["median_ms"] for r in o); xm = statistics.median(r["median_ms"] for r in x)
    f = f"{med[(b, t)] / om:.2f}" if (b, t) in med else "-"
    print(f"| batch {b}, {t} thread{'s' if t > 1 else ''} | {om:.1f} | {xm:.1f} | {xm / om:.3f} | {f} | {max(r['peak_rss_mb'] for r in o):.0f} |")
if (8, 2) in med and (8, 1) in med:
    s = med[(8, 1)] / med[(8, 2)]
    print(f"\nours, batch 8: 1 thread {med[(8, 1)]:.1f} ms, 2 threads {med[(8, 2)]:.1f} ms -> speed-up {s:.2f}x on 2 threads (parallel efficiency {s / 2 * 100:.0f}%)")
PY
echo "total $((SECONDS - start)) s; raw JSON lines in $raw" >&2
