#!/usr/bin/env bash
# Builds the Python package `convnext` and installs it into Debian's python3, for every user:
#   bash scripts/install-python.sh          (as root, after scripts/setup.sh)
# What it needs comes from Debian only: pybind11-dev and python3-dev to build, python3-numpy at run
# time (scripts/setup.sh installs them; this script checks). The compiled module and the Python
# files go to python3's directory for locally installed packages (/usr/local/lib/python3.X/
# dist-packages), so `python3 -c "import convnext"` works from any directory. The build lives in
# build-python/ (the library is built once more there, position-independent, with the module).
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
for p in pybind11-dev python3-dev python3-numpy cmake g++; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-python: missing ${missing[*]}: running scripts/setup.sh first" >&2
  bash scripts/setup.sh
fi
cmake -S . -B build-python -DCMAKE_BUILD_TYPE=Release -DCONVNEXT_BUILD_TESTS=OFF -DCONVNEXT_WITH_PYTHON=ON \
      -DPython_EXECUTABLE=/usr/bin/python3 >/dev/null
cmake --build build-python -j"$(nproc)" --target convnext_python
cmake --install build-python --component python
cd /
/usr/bin/python3 -c "import convnext, os; print('installed convnext', convnext.__version__, 'in', os.path.dirname(convnext.__file__))"
