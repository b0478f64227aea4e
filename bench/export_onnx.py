#!/usr/bin/python3
# Exports torchvision convnext_tiny (random weights, eval mode) to ONNX, opset 17, dynamic batch axis.
# Bench-time tool only (Debian python3-torch 1.13 / python3-torchvision 0.14), never a runtime dependency.
#   /usr/bin/python3 bench/export_onnx.py [OUT.onnx]     (default build/bench/convnext_tiny.onnx)
# The output shape is then checked with onnxruntime itself by bench/ort_bench.js --check.
import os
import sys

import torch
import torchvision

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "build", "bench", "convnext_tiny.onnx")
os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
torch.manual_seed(0)
model = torchvision.models.convnext_tiny().eval()  # weights=None: random init, no download
x = torch.randn(1, 3, 224, 224)
with torch.no_grad():
    torch.onnx.export(model, (x,), out, opset_version=17, input_names=["pixel_values"], output_names=["logits"],
                      dynamic_axes={"pixel_values": {0: "batch"}, "logits": {0: "batch"}}, do_constant_folding=True)
print(f"wrote {out} ({os.path.getsize(out) / 1e6:.1f} MB), torch {torch.__version__}, torchvision {torchvision.__version__}")
