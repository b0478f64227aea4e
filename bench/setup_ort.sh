#!/usr/bin/env bash
# Installs the bench-time ONNX Runtime (npm onnxruntime-node@1.30.0, pinned in bench/ort/package.json) and
# exports the ConvNeXt-T ONNX model if missing, then checks it with ORT (output shape [B,1000]).
#   bash bench/setup_ort.sh [model.onnx]          (default build/bench/convnext_tiny.onnx)
# --ignore-scripts: the package's install script would download extra GPU binaries; the Linux x64 CPU
# library already ships inside the package. node_modules is git-ignored (/bench/ort/node_modules/).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-build/bench/convnext_tiny.onnx}
if [[ ! -f bench/ort/node_modules/onnxruntime-node/package.json ]]; then
  (cd bench/ort && npm install --ignore-scripts --no-audit --no-fund)
fi
echo "onnxruntime-node $(node -p "require('./bench/ort/node_modules/onnxruntime-node/package.json').version"), node $(node --version), npm $(npm --version)"
echo "install size: $(du -sh bench/ort/node_modules | cut -f1)"
if [[ ! -f $model ]]; then
  /usr/bin/python3 bench/export_onnx.py "$model"
fi
node bench/ort_bench.js --model "$model" --check
