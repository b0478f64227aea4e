#!/usr/bin/env python3
"""Image preprocessing speed, side by side with Pillow, in one run on one machine.

  /usr/bin/python3 bench/preprocess_vs_pillow.py [--convnext build/convnext] [--rounds 5]

Makes a 4000x3000 JPEG (q90, 4:2:0, smooth random content) with Pillow, then alternates rounds of
  Pillow 9.4: Image.open(f).resize((341, 256), BICUBIC, reducing_gap=None)   (decode + resize)
  ours:       convnext preprocess (decode + EXIF + RGB + resize + centre crop + rescale +
              normalise to 224, the PIL backend, ImageNet mean/std) timed inside the process
and reports the median of each and the ratio ours / Pillow (issue 3's target: <= 0.7).
Pillow and numpy are test/bench tools here, never runtime dependencies.
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

import numpy as np
from PIL import Image


def make_jpeg(path):
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, size=(60, 80, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((4000, 3000), Image.BICUBIC)  # smooth content
    noise = rng.integers(-6, 7, size=(3000, 4000, 3))
    arr = np.clip(np.asarray(img).astype(np.int16) + noise, 0, 255).astype(np.uint8)
    Image.fromarray(arr).save(path, quality=90, subsampling=2)


def pillow_once(path):
    t0 = time.perf_counter()
    with Image.open(path) as im:
        im.resize((341, 256), Image.BICUBIC, reducing_gap=None)
    return (time.perf_counter() - t0) * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--convnext", default=os.path.join(os.path.dirname(__file__), "..", "build", "convnext"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        jpg = os.path.join(d, "photo_4000x3000.jpg")
        make_jpeg(jpg)
        cfg = os.path.join(d, "preprocessor_config.json")
        with open(cfg, "w") as f:
            json.dump({"crop_pct": 0.875, "do_normalize": True, "do_resize": True, "image_mean": [0.485, 0.456, 0.406],
                       "image_std": [0.229, 0.224, 0.225], "resample": 3, "size": {"shortest_edge": 224}}, f)
        def ours_run(repeat):
            out = subprocess.run([args.convnext, "preprocess", "--processor", cfg, "--output", os.path.join(d, "o.safetensors"),
                                  "--repeat", str(repeat), "--threads", str(args.threads), jpg],
                                 check=True, capture_output=True, text=True).stdout
            return json.loads(out.strip().splitlines()[-1])["median_ms"]

        pil, warm, cold = [], [], []
        pillow_once(jpg)  # warm the page cache
        for _ in range(args.rounds):
            pil += [pillow_once(jpg) for _ in range(3)]
            warm.append(ours_run(3))  # the median of 3 in one process: buffers reused, as in Pillow's loop
            cold.append(ours_run(1))  # the first image of a fresh process
        p, w, c = statistics.median(pil), statistics.median(warm), statistics.median(cold)
        print(f"4000x3000 JPEG -> 224 (medians of {args.rounds} rounds)")
        print(f"  Pillow {Image.__version__} decode + resize (in a loop)        {p:6.1f} ms")
        print(f"  convnext decode+resize+crop+normalise, in a loop   {w:6.1f} ms   ratio {w / p:.2f} (target <= 0.70)")
        print(f"  convnext, first image of a fresh process           {c:6.1f} ms   ratio {c / p:.2f}")


if __name__ == "__main__":
    main()
