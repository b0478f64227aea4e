#!/usr/bin/env bash
# README table across model variants: ConvNeXt T/S/B/L/XL at 224 and T at 384, batch 1, 2 threads, random weights
# and input. Ours fp32 and bf16 (build/convnext bench) against ONNX Runtime 1.30 CPU fp32 (bench/ort_bench.js on
# torchvision exports, bench/export_onnx.py; torchvision has no convnext_xlarge, so that row has no ORT figure).
#   bash bench/variants_table.sh [path/to/convnext]
# Env: ROUNDS (2); ITERS_<variant>/WARMUP_<variant> override the per-variant iteration counts below
#      (variants: tiny, small, base, large, xlarge, tiny384), e.g. ITERS_large=5.
# First builds and runs bench/peak_flops.cpp (best of 3 runs; AVX-512 FMA / vdpbf16ps in registers) and takes its 2-thread
# figures as the peaks: % fp32 peak = our fp32 GFLOP/s / fp32 peak, % bf16 peak = our bf16 GFLOP/s / bf16 peak
# (GFLOP/s = our engine's own FLOP count per image / median time, the same count for both dtypes).
# Per variant the engines alternate, each run its own process, the first engine swapped each round
# (ours, ORT, ours bf16, ORT, ours, ours bf16, ...). Table figures: median over rounds of each run's median time;
# ratio = ORT ms / our ms (>1: we are faster). Ranges (min-max of the runs' medians) are printed under the table.
# Raw JSON lines go to build/bench/variants_table.jsonl. The machine has 2 shared cores whose speed swings over
# minutes: check that nothing else is running, and compare only figures from one run.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/convnext}
rounds=${ROUNDS:-2}
if [[ ! -x $bin ]]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null && cmake --build build -j1 --target convnext_cli >/dev/null
fi
mkdir -p build/bench
if [[ ! -f bench/ort/node_modules/onnxruntime-node/package.json || ! -f build/bench/convnext_tiny.onnx ]]; then
  bash bench/setup_ort.sh build/bench/convnext_tiny.onnx >&2
fi
# variant arch size iters warmup onnx ("-": no ORT model). ~GMAC: T 4.5, S 8.7, B 15.4, L 34.4, XL 60.9, T@384 13.1.
# Iterations keep each run at roughly 1-4 s of forward passes; process start-up (random init of the weights: ~7 s
# for XL, ORT session creation ~2-3 s for L) is about half of the ~2.5 min the timed part takes on a quiet machine.
variants=(
  "tiny     tiny   224 50 5 build/bench/convnext_tiny.onnx"
  "small    small  224 30 3 build/bench/convnext_small.onnx"
  "base     base   224 20 2 build/bench/convnext_base.onnx"
  "large    large  224 12 2 build/bench/convnext_large.onnx"
  "xlarge   xlarge 224 10 2 -"
  "tiny384  tiny   384 20 2 build/bench/convnext_tiny_384.onnx"
)
for v in "${variants[@]}"; do
  read -r name arch size _ _ onnx <<<"$v"
  if [[ $onnx != - && ! -f $onnx ]]; then
    /usr/bin/python3 bench/export_onnx.py --arch "$arch" --size "$size" "$onnx" 2>&1 | grep '^wrote' >&2
    node bench/ort_bench.js --model "$onnx" --size "$size" --check >&2
  fi
done

peak_bin=build/bench/peak_flops
if [[ ! -x $peak_bin || bench/peak_flops.cpp -nt $peak_bin ]]; then
  g++ -O2 -mavx512f -mavx512bf16 -fopenmp bench/peak_flops.cpp -o "$peak_bin"
fi
start=$SECONDS
# Best of PEAK_RUNS (3) probes: one probe alone can land while a core is taken away (a 2-thread fp32 figure equal
# to the 1-thread one was seen once), and a peak is a maximum anyway.
peak_out=$(for ((i = 0; i < ${PEAK_RUNS:-3}; ++i)); do OMP_NUM_THREADS=2 "$peak_bin"; done)
echo "$peak_out" >&2
read -r peak_f32 peak_bf16 < <(awk '/^2 thread\(s\): fp32 FMA/ { n++; if ($5 > f) f = $5; if ($9 > b) b = $9 }
                                     END { if (n) print f, b }' <<<"$peak_out")
[[ -n ${peak_bf16:-} ]] || { echo "could not parse the 2-thread lines of $peak_bin" >&2; exit 1; }

raw=build/bench/variants_table.jsonl
: >"$raw"
for v in "${variants[@]}"; do
  read -r name arch size iters warmup onnx <<<"$v"
  iv=ITERS_$name wv=WARMUP_$name
  iters=${!iv:-$iters} warmup=${!wv:-$warmup}
  ours() { "$bin" bench --arch "$arch" --size "$size" --threads 2 --iters "$iters" --warmup "$warmup" --json \
             | sed "s/^{/{\"engine\":\"ours\",\"variant\":\"$name\",/"; }
  ours_bf16() { "$bin" bench --arch "$arch" --size "$size" --threads 2 --iters "$iters" --warmup "$warmup" --dtype bf16 \
                  --json | sed "s/^{/{\"engine\":\"ours_bf16\",\"variant\":\"$name\",/"; }
  ort() { node bench/ort_bench.js --model "$onnx" --batch 1 --size "$size" --threads 2 --iters "$iters" --warmup "$warmup" \
            | sed "s/^{/{\"variant\":\"$name\",/"; }
  for ((r = 0; r < rounds; ++r)); do
    if [[ $onnx == - ]]; then order="ours"; elif ((r % 2 == 0)); then order="ours ort"; else order="ort ours"; fi
    for e in $order ours_bf16; do
      line=$($e)
      echo "$line" >>"$raw"
      echo "[$((SECONDS - start))s] $name round $((r + 1)) $e: $(python3 -c 'import json,sys; print(round(json.loads(sys.argv[1])["median_ms"], 1), "ms")' "$line")" >&2
    done
  done
done
elapsed=$((SECONDS - start))

python3 - "$raw" "$rounds" "$peak_f32" "$peak_bf16" "$elapsed" "$(nproc)" "${PEAK_RUNS:-3}" <<'PY'
import datetime, json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rounds, pf, pb, elapsed, ncpu = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
variants = [("tiny", "ConvNeXt-T", 224), ("small", "ConvNeXt-S", 224), ("base", "ConvNeXt-B", 224),
            ("large", "ConvNeXt-L", 224), ("xlarge", "ConvNeXt-XL", 224), ("tiny384", "ConvNeXt-T", 384)]
def pick(engine, v): return [r for r in rows if r["engine"] == engine and r["variant"] == v]
def med(rs): return statistics.median(r["median_ms"] for r in rs)
def rng(rs): return f"{min(r['median_ms'] for r in rs):.1f}-{max(r['median_ms'] for r in rs):.1f}"
print(f"\nBatch 1, 2 threads, random weights; ms = median over {rounds} rounds of each run's median forward time; "
      "ORT = ONNX Runtime 1.30 CPU fp32 on the torchvision export; ratio = ORT ms / our ms (>1: ours faster)\n")
print("| model | input | GFLOP/img | fp32 ms/img | fp32 img/s | fp32 GFLOP/s | % fp32 peak "
      "| bf16 ms/img | bf16 img/s | bf16 GFLOP/s | % bf16 peak | ORT fp32 ms/img | ORT/ours fp32 | ORT/ours bf16 |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
ranges = []
for v, label, size in variants:
    o, b, x = pick("ours", v), pick("ours_bf16", v), pick("onnxruntime", v)
    if not o or not b: continue
    om, bm = med(o), med(b)
    gflop = o[0]["gflops"] * o[0]["median_ms"] / 1000 / o[0]["batch"]  # our FLOP count per image
    of, bf = gflop / om * 1000, gflop / bm * 1000
    if x:
        xm = med(x); ort = (f"{xm:.1f}", f"{xm / om:.2f}", f"{xm / bm:.2f}")
    else:
        ort = ("—", "—", "—")
    print(f"| {label} | {size} | {gflop:.1f} | {om:.1f} | {1000 / om:.1f} | {of:.0f} | {of / pf * 100:.0f}% "
          f"| {bm:.1f} | {1000 / bm:.1f} | {bf:.0f} | {bf / pb * 100:.0f}% | {ort[0]} | {ort[1]} | {ort[2]} |")
    ranges.append(f"{label} {size}: ours fp32 {rng(o)}, bf16 {rng(b)}" + (f", ORT {rng(x)}" if x else "") + " ms")
print(f"\nPeaks (bench/peak_flops.cpp, 2 threads, best of {sys.argv[7]} probes at the start): fp32 FMA {pf:.0f} GFLOP/s, "
      f"bf16 dot {pb:.0f} GFLOP/s; {ncpu} CPUs; {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
      f"benchmark time {elapsed} s")
print("\nRuns ranged (min-max of each run's median, ms):\n" + "\n".join("- " + r for r in ranges))
PY
echo "total $((SECONDS - start)) s (plus setup); raw JSON lines in $raw" >&2
