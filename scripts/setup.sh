#!/usr/bin/env bash
# Installs everything this project needs on a fresh Debian 12 machine (run as root).
#   build:  g++ 12, CMake, nlohmann-json (config files),
#           libjpeg-turbo, libpng, libwebp (+ pkg-config to find it) for image decoding,
#           libhdf5 for TF checkpoints (tf_model.h5), libcurl (OpenSSL flavour) for `convnext download`:
#           both optional (CONVNEXT_WITH_HDF5/CURL), installed so that the default build has them and
#           their tests run; cpp-httplib for `convnext serve` (optional too: CONVNEXT_WITH_SERVE);
#           pybind11 + python3-dev build the Python package, python3-numpy is its one run-time
#           dependency (CONVNEXT_WITH_PYTHON; scripts/install-python.sh installs it); OpenMPI for
#           `mpirun -np N convnext train` (optional: CONVNEXT_WITH_MPI)
#   tests:  GoogleTest; python3-torch + numpy build an independent PyTorch reference for
#           configurations the shared fixtures do not cover (test-time tool only, never linked);
#           python3-pil writes the images and reference pixels the decoder tests compare against;
#           python3-h5py writes the tf_model.h5 the TF checkpoint tests read; cmark-gfm (GitHub's
#           Markdown parser) renders README.md for tests/check_readme.py; python3-pytest runs the
#           Python package's tests (python/tests); chromium (headless) runs the
#           web page test (tests/web/page_test.sh), driven by puppeteer-core from npm (tests/web/setup.sh,
#           run last with the machine's Node.js and npm; the test runs it too when it is missing)
set -euo pipefail
pkgs=(build-essential cmake nlohmann-json3-dev libgtest-dev googletest zlib1g-dev
      libjpeg62-turbo-dev libpng-dev libwebp-dev pkg-config libhdf5-dev
      libcurl4-openssl-dev libcpp-httplib-dev pybind11-dev python3-dev python3-numpy
      libopenmpi-dev openmpi-bin)
if [[ "${1:-}" == "--tests" ]]; then
  pkgs+=(python3 python3-numpy python3-torch python3-torchvision dataset-fashion-mnist python3-pil python3-h5py cmark-gfm
        python3-pytest chromium)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# puppeteer-core for the web page test (npm; the test installs it too when it is missing).
if [[ "${1:-}" == "--tests" ]] && command -v npm >/dev/null; then
  bash "$(dirname "$0")/../tests/web/setup.sh"
fi
