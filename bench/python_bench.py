#!/usr/bin/env python3
"""Times `model(pixel_values=x)` from Python (the convnext package) on a checkpoint at 224, as
`convnext bench --model DIR` times the C++ forward: W warm-up calls, then N timed calls; prints one
JSON line {"batch", "median_ms", "min_ms", "threads"}.
    python_bench.py --model DIR --batch B [--iters N] [--warmup W]"""
import argparse
import json
import statistics
import time

import numpy as np

import convnext

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--batch", type=int, default=1)
ap.add_argument("--iters", type=int, default=10)
ap.add_argument("--warmup", type=int, default=2)
a = ap.parse_args()
model = convnext.ConvNextForImageClassification.from_pretrained(a.model)
x = np.random.default_rng(0).standard_normal((a.batch, 3, 224, 224), dtype=np.float32)
for _ in range(a.warmup):
    model(pixel_values=x)
ms = []
for _ in range(a.iters):
    t0 = time.perf_counter()
    model(pixel_values=x)
    ms.append((time.perf_counter() - t0) * 1000)
print(json.dumps({"batch": a.batch, "median_ms": statistics.median(ms), "min_ms": min(ms),
                  "threads": convnext.num_threads()}))
