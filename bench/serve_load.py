#!/usr/bin/env python3
"""Load generator for `convnext serve` (run by bench/serve_load.sh, which says why it is Python).

  serve_load.py --url http://127.0.0.1:PORT --model NAME --concurrency C --duration S [--warmup S]

C threads, each with its own keep-alive connection (http.client), send KServe V2 infer requests
with pixel_values [1, 3, S, S] as binary tensor data (Inference-Header-Content-Length) and ask for
the logits in binary, back to back, for S seconds after a warm-up. Every answer must be 200 with
num_labels floats. Prints one JSON line: requests, errors, seconds, requests_per_s, p50/p90/p99/max
latency, mean_ms, the mean batch size over the measured span from /metrics (the delta of
convnext_inference_batch_size_sum / _count), the client's own CPU seconds, and (from /proc) the
cores the server and all other processes kept busy meanwhile: the machine is shared.
"""
import argparse
import http.client
import json
import os
import random
import resource
import struct
import sys
import threading
import time
from urllib.parse import urlparse


def metric(text, name, model):
    key = f'{name}{{model="{model}"}} '
    for line in text.splitlines():
        if line.startswith(key):
            return float(line[len(key):])
    raise KeyError(f"{name} for {model} not in /metrics")


def cpu_seconds(pid):
    """(CPU seconds the whole machine was busy, those of process `pid`) so far."""
    tick = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    busy = sum(v) - v[3] - v[4]  # all but idle and iowait
    proc = 0
    if pid:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        proc = int(fields[11]) + int(fields[12])  # utime, stime
    return busy / tick, proc / tick


def get(url, path):
    u = urlparse(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read().decode()
    c.close()
    return r.status, body


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--concurrency", type=int, required=True)
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--labels", type=int, default=1000)
    ap.add_argument("--server-pid", type=int, default=0, help="to tell its CPU time from other processes'")
    a = ap.parse_args()

    rng = random.Random(0)
    n = 3 * a.size * a.size
    data = struct.pack(f"<{n}f", *(rng.gauss(0, 1) for _ in range(n)))
    header = json.dumps({
        "inputs": [{"name": "pixel_values", "datatype": "FP32", "shape": [1, 3, a.size, a.size],
                    "parameters": {"binary_data_size": len(data)}}],
        "outputs": [{"name": "logits", "parameters": {"binary_data": True}}],
    }).encode()
    body = header + data
    headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(header))}
    path = f"/v2/models/{a.model}/infer"
    u = urlparse(a.url)

    lock = threading.Lock()
    latencies, errors = [], []
    phase = {"measure": False, "stop": False}

    def worker():
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
        while not phase["stop"]:
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers=headers)
                r = conn.getresponse()
                out = r.read()
                ok = r.status == 200
                if ok:
                    jl = int(r.getheader("Inference-Header-Content-Length"))
                    ok = len(out) - jl == 4 * a.labels
                err = None if ok else f"{r.status}: {out[:200]!r}"
            except Exception as e:  # a dropped connection is an error too; reconnect
                err = repr(e)
                conn.close()
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
            dt = time.perf_counter() - t0
            if phase["measure"] and not phase["stop"]:
                with lock:
                    if err:
                        errors.append(err)
                    else:
                        latencies.append(dt)
        conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(a.concurrency)]
    for t in threads:
        t.start()
    time.sleep(a.warmup)
    m0 = get(a.url, "/metrics")[1]
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    machine0, server0 = cpu_seconds(a.server_pid)
    t0 = time.perf_counter()
    phase["measure"] = True
    time.sleep(a.duration)
    phase["stop"] = True
    seconds = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    machine1, server1 = cpu_seconds(a.server_pid)
    m1 = get(a.url, "/metrics")[1]  # requests still in flight finish after it: not counted either side
    for t in threads:
        t.join()

    d_sum = metric(m1, "convnext_inference_batch_size_sum", a.model) - metric(m0, "convnext_inference_batch_size_sum", a.model)
    d_cnt = metric(m1, "convnext_inference_batch_size_count", a.model) - metric(m0, "convnext_inference_batch_size_count", a.model)
    lat = sorted(latencies)
    client_cpu = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime

    def pct(p):
        return 1000 * lat[min(len(lat) - 1, int(p / 100 * len(lat)))] if lat else float("nan")

    print(json.dumps({
        "concurrency": a.concurrency, "requests": len(lat), "errors": len(errors), "first_error": errors[0] if errors else None,
        "seconds": round(seconds, 2), "requests_per_s": round(len(lat) / seconds, 2),
        "p50_ms": round(pct(50), 1), "p90_ms": round(pct(90), 1), "p99_ms": round(pct(99), 1),
        "max_ms": round(1000 * lat[-1], 1) if lat else None,
        "mean_ms": round(1000 * sum(lat) / len(lat), 1) if lat else None,
        "mean_batch": round(d_sum / d_cnt, 2) if d_cnt else None, "batches": int(d_cnt),
        "client_cpu_s": round(client_cpu, 2),
        # Cores busy on average over the measured span: the server's, and everyone else's (not
        # the server nor this client): others > 0.1 means the figures are disturbed.
        "server_cores": round((server1 - server0) / seconds, 2) if a.server_pid else None,
        "other_cores": round((machine1 - machine0 - (server1 - server0) - client_cpu) / seconds, 2),
    }))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
