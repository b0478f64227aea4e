#!/usr/bin/env python3
"""Pillow's own resize, as ground truth for tests/test_resample.cpp.

Usage: pil_resize_ref.py DIR

DIR/manifest.txt has one case a line: "NAME OUT_W OUT_H FILTER" (FILTER is Pillow's
Image.Resampling value). DIR/NAME.in holds the input: a text line "W H C\\n", then H*W*C bytes
(HWC, uint8). For each case this writes DIR/NAME.out in the same format: what
PIL.Image.fromarray(arr).resize((OUT_W, OUT_H), resample=FILTER, reducing_gap=None) returns,
arr being 2-D for C == 1 (mode L), else LA / RGB / RGBA. DIR/pillow_version.txt gets the
Pillow version. Exits 77 (skip) when numpy or Pillow cannot be imported.
"""
import os
import sys

try:
    import numpy as np
    import PIL
    from PIL import Image
except ImportError as e:  # the C++ test skips on 77
    print(f"numpy/Pillow unavailable for {sys.executable}: {e}", file=sys.stderr)
    sys.exit(77)

MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def read_image(path):
    with open(path, "rb") as f:
        w, h, c = (int(v) for v in f.readline().split())
        data = f.read()
    if len(data) != w * h * c:
        raise ValueError(f"{path}: {len(data)} bytes, expected {w * h * c}")
    arr = np.frombuffer(data, dtype=np.uint8).reshape(h, w, c)
    return arr[:, :, 0] if c == 1 else arr


def write_image(path, arr):
    if arr.ndim == 2:
        arr = arr[:, :, None]
    h, w, c = arr.shape
    with open(path, "wb") as f:
        f.write(f"{w} {h} {c}\n".encode())
        f.write(np.ascontiguousarray(arr, dtype=np.uint8).tobytes())


def main():
    d = sys.argv[1]
    with open(os.path.join(d, "manifest.txt")) as f:
        cases = [line.split() for line in f if line.strip()]
    for name, ow, oh, flt in cases:
        arr = read_image(os.path.join(d, name + ".in"))
        im = Image.fromarray(arr)
        channels = 1 if arr.ndim == 2 else arr.shape[2]
        if im.mode != MODES[channels]:
            raise ValueError(f"{name}: fromarray gave mode {im.mode}, expected {MODES[channels]}")
        out = im.resize((int(ow), int(oh)), resample=int(flt), reducing_gap=None)
        write_image(os.path.join(d, name + ".out"), np.asarray(out))
    with open(os.path.join(d, "pillow_version.txt"), "w") as f:
        f.write(PIL.__version__ + "\n")


if __name__ == "__main__":
    main()
