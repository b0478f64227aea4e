#!/usr/bin/env bash
# Forward-pass benchmark table for the README: ConvNeXt-T at 224 (random weights), fp32.
#   bash bench/run.sh [path/to/convnext]      (builds build/convnext when not given)
# Each row is `convnext bench --json` (median of --iters runs after warm-up). The machine is
# shared and noisy: rerun, and compare only figures from the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/convnext}
if [[ ! -x $bin ]]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null && cmake --build build -j"$(nproc)" --target convnext_cli >/dev/null
fi
echo "| model | batch | threads | median ms | images/s | GFLOP/s | peak RSS MB |"
echo "|---|---|---|---|---|---|---|"
for cfg in "tiny 1 2" "tiny 1 1" "tiny 8 2" "tiny 8 1"; do
  read -r arch batch threads <<<"$cfg"
  j=$("$bin" bench --arch "$arch" --batch "$batch" --threads "$threads" --iters "${ITERS:-10}" --json)
  python3 - "$j" <<'PY'
import json, sys
j = json.loads(sys.argv[1])
print(f"| convnext-{j['arch']} {j['size']} | {j['batch']} | {j['threads']} | {j['median_ms']:.1f} | {j['images_per_s']:.1f} | {j['gflops']:.0f} | {j['peak_rss_mb']:.0f} |")
PY
done
