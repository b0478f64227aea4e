#!/usr/bin/env bash
# Data-parallel training and evaluation with real `mpirun` (OpenMPI), two ranks talking over TCP
# on the loopback interface (shared memory off), against one process:
#   1. 5 steps of 2 ranks x batch 4 give the weights of 1 process x batch 8 (within 1e-5 relative),
#      and the same log (loss per step);
#   2. `eval` under mpirun -np 2 gives exactly the single process's counts, accuracy and loss (the
#      examples' own losses added up in index order, however they were batched or shared);
#   3. a run resumed on another number of ranks is refused with a message saying which;
#   4. killing one rank ends the whole run, with a message, without hanging.
#   mpi_train_test.sh CONVNEXT FIXTURES_DIR
set -euo pipefail
convnext=$1
model=$2/train_tiny4
python=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
[[ -d $model ]] || { echo "shared fixtures not found at $2: skipped"; exit 0; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1  # CI runs as root
mpi=(mpirun -np 2 --oversubscribe --mca btl tcp,self --mca btl_tcp_if_include lo --mca pml ob1)
cd "$tmp"
"$convnext" make-input --shape 20,3,32,32 --labels 5 --output data.safetensors >/dev/null
common=(--model "$model" --data data.safetensors --steps 5 --lr 1e-3 --no-augment --seed 3 --workers 1 --threads 1
        --log-every 1 --weight-decay 0.01)

echo "1. 2 ranks x 4 against 1 process x 8"
"$convnext" train "${common[@]}" --batch-size 8 --output single 2>single.err || { cat single.err; fail "single process"; }
timeout 120 "${mpi[@]}" "$convnext" train "${common[@]}" --batch-size 4 --output dist 2>dist.err ||
  { cat dist.err; fail "mpirun -np 2 train"; }
[[ $(grep -c "^training " dist.err) == 1 ]] || { cat dist.err; fail "the header should be printed once (rank 0)"; }
$python - <<'PY' || fail "weights differ"
import json, struct, numpy as np
def read(p):
    with open(p, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]; h = json.loads(f.read(n)); d = f.read()
    return {k: np.frombuffer(d[v["data_offsets"][0]:v["data_offsets"][1]], np.float32) for k, v in h.items() if k != "__metadata__"}
a, b = read("single/model.safetensors"), read("dist/model.safetensors")
assert a.keys() == b.keys()
worst = max(float(np.max(np.abs(a[k] - b[k]))) / max(1.0, float(np.max(np.abs(a[k])))) for k in a)
print(f"   weights: worst relative difference {worst:.2e}")
assert worst <= 1e-5, worst
la = [json.loads(l) for l in open("single/log.jsonl") if '"step"' in l and '"loss"' in l]
lb = [json.loads(l) for l in open("dist/log.jsonl") if '"step"' in l and '"loss"' in l]
assert len(la) == len(lb) == 5, (len(la), len(lb))
for x, y in zip(la, lb):
    assert abs(x["loss"] - y["loss"]) <= 1e-5 * max(1, abs(x["loss"])), (x, y)
    assert abs(x["grad_norm"] - y["grad_norm"]) <= 1e-5 * max(1, abs(x["grad_norm"])), (x, y)
st = json.load(open("dist/trainer_state.json"))
assert st["world_size"] == 2, st
PY

echo "2. eval under mpirun -np 2 against one process"
"$convnext" eval --model single --data data.safetensors --json --batch-size 3 >eval1.json
timeout 120 "${mpi[@]}" "$convnext" eval --model single --data data.safetensors --json --batch-size 3 >eval2.json 2>eval2.err ||
  { cat eval2.err; fail "mpirun eval"; }
[[ $(wc -l <eval2.json) == 1 ]] || { cat eval2.json; fail "eval should print once"; }
$python - <<'PY' || fail "distributed eval differs"
import json
a, b = json.load(open("eval1.json")), json.load(open("eval2.json"))
for k in a:
    if k in ("seconds",):
        continue
    if k == "loss":
        assert a[k] == b[k], (a[k], b[k])  # the examples' losses added in index order either way
    else:
        assert a[k] == b[k], (k, a[k], b[k])
print(f"   examples {a['examples'] if 'examples' in a else a.get('count')}, loss {a['loss']} vs {b['loss']}")
PY

echo "3. resuming on another number of ranks"
if "$convnext" train --resume dist --steps 6 2>resume.err; then fail "resumed a 2-rank run on 1 process"; fi
grep -q "trained on 2 ranks and is resumed on 1" resume.err || { cat resume.err; fail "the message does not say why"; }

echo "4. one rank killed"
"$convnext" make-input --shape 64,3,32,32 --labels 5 --output big.safetensors >/dev/null
"${mpi[@]}" "$convnext" train --model "$model" --data big.safetensors --steps 100000 --batch-size 4 --threads 1 \
  --workers 1 --output long >long.out 2>long.err &
launcher=$!
for _ in $(seq 1 100); do [[ -s long/log.jsonl ]] && break; sleep 0.2; done
victim=$(pgrep -f "convnext train --model $model --data big.safetensors" | grep -v "^$launcher$" | tail -1 || true)
[[ -n $victim ]] || fail "no rank process found"
kill -9 "$victim"
status=0
for _ in $(seq 1 300); do
  if ! kill -0 "$launcher" 2>/dev/null; then break; fi
  sleep 0.1
done
if kill -0 "$launcher" 2>/dev/null; then kill -9 "$launcher"; fail "mpirun still running 30 s after a rank was killed"; fi
wait "$launcher" || status=$?
[[ $status != 0 ]] || fail "mpirun exited 0 after a rank was killed"
grep -qiE "signal|killed|exited" long.err || { cat long.err; fail "no message names the dead rank"; }
echo "   mpirun exited $status: $(grep -iE 'signal|killed|exited' long.err | head -1)"
echo "ok"
