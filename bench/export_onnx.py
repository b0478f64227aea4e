#!/usr/bin/python3
# Exports a torchvision ConvNeXt (random weights, eval mode) to ONNX, opset 17, dynamic batch axis.
# Bench-time tool only (Debian python3-torch 1.13 / python3-torchvision 0.14), never a runtime dependency.
#   /usr/bin/python3 bench/export_onnx.py [--arch tiny|small|base|large] [--size S] [OUT.onnx]
# Default: --arch tiny --size 224 -> build/bench/convnext_tiny.onnx; other archs -> build/bench/convnext_<arch>.onnx,
# another size -> build/bench/convnext_<arch>_<S>.onnx. H/W are fixed at S (only the batch axis is dynamic), so
# ORT can plan for the exact shape; export one file per resolution. torchvision has no convnext_xlarge.
# The output shape is then checked with onnxruntime itself by bench/ort_bench.js --check.
import argparse
import os

import torch
import torchvision

ARCHS = {"tiny": torchvision.models.convnext_tiny, "small": torchvision.models.convnext_small,
         "base": torchvision.models.convnext_base, "large": torchvision.models.convnext_large}

ap = argparse.ArgumentParser(description="torchvision ConvNeXt (random weights) -> ONNX, opset 17, dynamic batch")
ap.add_argument("--arch", choices=sorted(ARCHS), default="tiny")
ap.add_argument("--size", type=int, default=224, help="input height = width (fixed in the graph)")
ap.add_argument("out", nargs="?", help="output path (default build/bench/convnext_<arch>[_<size>].onnx)")
args = ap.parse_args()

name = f"convnext_{args.arch}" + ("" if args.size == 224 else f"_{args.size}") + ".onnx"
out = args.out or os.path.join(os.path.dirname(__file__), "..", "build", "bench", name)
os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
torch.manual_seed(0)
model = ARCHS[args.arch]().eval()  # weights=None: random init, no download
x = torch.randn(1, 3, args.size, args.size)
with torch.no_grad():
    torch.onnx.export(model, (x,), out, opset_version=17, input_names=["pixel_values"], output_names=["logits"],
                      dynamic_axes={"pixel_values": {0: "batch"}, "logits": {0: "batch"}}, do_constant_folding=True)
print(f"wrote {out} ({os.path.getsize(out) / 1e6:.1f} MB), convnext_{args.arch} {args.size}x{args.size}, "
      f"torch {torch.__version__}, torchvision {torchvision.__version__}")
