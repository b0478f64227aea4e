#!/usr/bin/env python3
"""The deployment files in deploy/ start a working server: the command lines of the systemd unit,
the Dockerfile's CMD and the KServe ServingRuntime's args are run with this build's `convnext` (the
model paths pointed at models/, the port at 0) and must answer /v2/health/ready and a model's
/ready, then exit 0 on SIGTERM. The unit also passes `systemd-analyze verify` where systemd is.
    check_deploy.py BUILD_CONVNEXT REPO_DIR"""
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request

import yaml

convnext, repo = sys.argv[1], sys.argv[2]
model_dir = os.path.join(repo, "models", "convnext-fashion-mnist")
failures = []


def run_server(args, what, model_name):
    """Starts `convnext ARGS` with --port 0 and checks it serves `model_name`."""
    args = list(args)
    for i, a in enumerate(args):
        if a == "--port":
            args[i + 1] = "0"
        if a == "--host":
            args[i + 1] = "127.0.0.1"
    p = subprocess.Popen([convnext] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        m = re.match(r"listening on (http://\S+)", line)
        if not m:
            failures.append(f"{what}: did not start: {line!r} {p.stderr.read()[-500:]}")
            return
        base = m.group(1)
        for path in ["/v2/health/ready", f"/v2/models/{model_name}/ready"]:
            status = urllib.request.urlopen(base + path, timeout=30).status
            if status != 200:
                failures.append(f"{what}: GET {path} gave {status}")
        meta = json.load(urllib.request.urlopen(f"{base}/v2/models/{model_name}", timeout=30))
        if meta["name"] != model_name:
            failures.append(f"{what}: the model is served as {meta['name']}, not {model_name}")
    except Exception as e:  # noqa: BLE001 - any failure is reported with its source
        failures.append(f"{what}: {e}")
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(timeout=40)
            if rc != 0:
                failures.append(f"{what}: exit status {rc} after SIGTERM")
        except subprocess.TimeoutExpired:
            p.kill()
            failures.append(f"{what}: did not exit within 40 s of SIGTERM")
    print(f"{what}: ok" if not any(f.startswith(what) for f in failures) else f"{what}: FAILED")


# systemd unit: ExecStart's arguments after the binary.
unit_path = os.path.join(repo, "deploy", "convnext-serve.service")
unit = open(unit_path).read()
exec_start = shlex.split(re.search(r"^ExecStart=(.*)$", unit, re.M).group(1))
args = [a.replace("/var/lib/convnext/models/convnext-fashion-mnist", model_dir) for a in exec_start[1:]]
run_server(args, "deploy/convnext-serve.service", "convnext-fashion-mnist")
if shutil.which("systemd-analyze"):
    with tempfile.TemporaryDirectory() as d:
        local = os.path.join(d, "convnext-serve.service")
        with open(local, "w") as f:
            f.write(unit.replace("/usr/local/bin/convnext", os.path.abspath(convnext)))
        r = subprocess.run(["systemd-analyze", "verify", local], capture_output=True, text=True)
        problems = [l for l in (r.stdout + r.stderr).splitlines() if "convnext-serve.service" in l]
        if problems:
            failures.append("systemd-analyze verify: " + "; ".join(problems))
        else:
            print("systemd-analyze verify: ok")

# Dockerfile: the exec-form CMD (the ENTRYPOINT is the tool).
docker = open(os.path.join(repo, "deploy", "Dockerfile")).read()
cmd = json.loads(re.search(r"^CMD (\[.*\])$", docker, re.M).group(1))
if not re.search(r'^ENTRYPOINT \["/usr/local/bin/convnext"\]$', docker, re.M):
    failures.append("deploy/Dockerfile: the ENTRYPOINT is not /usr/local/bin/convnext")
run_server([a.replace("/models/", os.path.join(repo, "models") + "/") for a in cmd], "deploy/Dockerfile CMD",
           "convnext-fashion-mnist")

# KServe: the ServingRuntime's args, {{.Name}} being the InferenceService's name.
docs = list(yaml.safe_load_all(open(os.path.join(repo, "deploy", "kserve.yaml"))))
runtime = next(d for d in docs if d["kind"] == "ServingRuntime")
isvc = next(d for d in docs if d["kind"] == "InferenceService")
if isvc["spec"]["predictor"]["model"]["runtime"] != runtime["metadata"]["name"]:
    failures.append("kserve.yaml: the InferenceService does not use the ServingRuntime")
if "v2" not in runtime["spec"]["protocolVersions"]:
    failures.append("kserve.yaml: the runtime does not declare protocol v2")
name = isvc["metadata"]["name"]
args = [a.replace("{{.Name}}", name).replace("/mnt/models", model_dir)
        for a in runtime["spec"]["containers"][0]["args"]]
run_server(args, "deploy/kserve.yaml ServingRuntime", name)

if failures:
    print("\n".join(failures), file=sys.stderr)
    sys.exit(1)
