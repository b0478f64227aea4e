#!/usr/bin/env bash
# Where data-parallel training stops scaling: one all-reduce of ConvNeXt-T's gradients (28.6 M
# floats, 25 MB buckets) between 2 ranks over TCP on the loopback interface (OpenMPI's tcp BTL,
# shared memory off), beside the compute time of one training step (convnext bench --train, batch 8
# on this machine's cores), then the ring all-reduce cost model
# t = 2(N−1)/N × bytes / bandwidth for 2–64 machines at 10 and 100 Gbit/s against that step time.
#   bash bench/allreduce_tcp.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpi=(mpirun -np 2 --oversubscribe --mca btl tcp,self --mca btl_tcp_if_include lo --mca pml ob1)
ar=$("${mpi[@]}" "$build/bench/allreduce_bench" --iters 10)
echo "all-reduce over loopback TCP: $ar"
step=$("$build/convnext" bench --arch tiny --batch 8 --train --iters 3 --warmup 1 --json)
echo "one training step on this machine, batch 8: $step"
/usr/bin/python3 - "$ar" "$step" <<'PY'
import json, sys
ar, step = json.loads(sys.argv[1]), json.loads(sys.argv[2])
bytes_ = ar["floats"] * 4
step_ms = step["median_ms"]
print(f"\nmeasured: {ar['median_ms']:.1f} ms per all-reduce of {bytes_/1e6:.0f} MB between 2 ranks "
      f"({ar['busbw_gbit_s']:.1f} Gbit/s bus bandwidth); a step computes in {step_ms:.0f} ms "
      f"-> communication is {100*ar['median_ms']/(ar['median_ms']+step_ms):.0f}% of a step without overlap\n")
print("| machines | all-reduce at 10 Gbit/s | 100 Gbit/s | share of a step, batch 8 per machine, 10 / 100 Gbit/s | share, global batch 128 split, 10 / 100 Gbit/s |")
print("|---|---|---|---|---|")
for n in (2, 4, 8, 16, 32, 64):
    t10, t100 = (2 * (n - 1) / n * bytes_ * 8 / (g * 1e9) * 1000 for g in (10, 100))
    strong = step_ms * (128 / n) / 8  # the same global batch over more machines: less compute each
    share = lambda t, c: f"{100 * t / (t + c):.0f}%"
    print(f"| {n} | {t10:.0f} ms | {t100:.0f} ms | {share(t10, step_ms)} / {share(t100, step_ms)} | "
          f"{share(t10, strong)} / {share(t100, strong)} (compute {strong:.0f} ms) |")
print(f"\n(step compute time {step_ms:.0f} ms: ConvNeXt-T batch 8 per machine, this machine's cores; no overlap assumed)")
PY
