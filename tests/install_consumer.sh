#!/usr/bin/env bash
# Installs libconvnext to a temporary prefix and builds and runs tests/consumer (the public API
# alone) against it through find_package(convnext) and through pkg-config, for the library kind
# BUILD_DIR holds (static by default) and, from a second build of the library, the other kind,
# configured without HDF5 and libcurl. Each consumer must print the top-1 label that
# `convnext classify --json` prints for every image of examples/images. The shared library must
# export the public API only and carry the versioned soname; the build without HDF5/libcurl must
# still run `info` and `forward` and say how to enable what it lacks.
#   install_consumer.sh SOURCE_DIR BUILD_DIR SHARED(1|0)     (ctest runs it: tests/CMakeLists.txt)
set -euo pipefail
src=$1 build=$2 shared=$3
cmake=${CMAKE_COMMAND:-cmake}
cxx=${CXX:-c++}
jobs=${JOBS:-$(nproc)}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/convnext_install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
model=$src/models/convnext-fashion-mnist
images=("$src"/examples/images/*.png)

fail() { echo "install_consumer: $*" >&2; exit 1; }
step() { echo "install_consumer: $*"; }
# Runs a command quietly, showing its output only when it fails.
quiet() { "$@" >"$tmp/log" 2>&1 || { cat "$tmp/log" >&2; fail "failed: $*"; }; }
# The command must fail with a message containing $1.
expect_error() {
  local want=$1
  shift
  if "$@" >"$tmp/log" 2>&1; then fail "succeeded: $*"; fi
  grep -qF -- "$want" "$tmp/log" || { cat "$tmp/log" >&2; fail "$*: the error does not say '$want'"; }
}

"$build/convnext" classify --json --top-k 1 --model "$model" "${images[@]}" >"$tmp/cli.jsonl"
grep -o '"label":"[^"]*"' "$tmp/cli.jsonl" | cut -d'"' -f4 >"$tmp/expected"
[[ $(wc -l <"$tmp/expected") -eq ${#images[@]} ]] || fail "convnext classify gave no label for some image"

# The consumer binary $1 must print the expected labels.
check_labels() {
  "$1" "$model" "${images[@]}" >"$tmp/got" 2>"$tmp/err" || { cat "$tmp/err" >&2; fail "$1 failed"; }
  diff "$tmp/expected" "$tmp/got" >&2 || fail "$1: top-1 labels differ from convnext classify"
}

# Builds and runs the consumer against the installation in prefix $1 of kind $2 (1 = shared).
check_prefix() {
  local prefix=$1 kind=$2 name
  name=$([[ $kind == 1 ]] && echo shared || echo static)
  step "$name: find_package(convnext)"
  quiet "$cmake" -S "$src/tests/consumer" -B "$tmp/consumer-$name" -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_CXX_COMPILER="$cxx"
  quiet "$cmake" --build "$tmp/consumer-$name"
  check_labels "$tmp/consumer-$name/convnext_consumer"

  step "$name: pkg-config"
  local pcdir flags
  pcdir=$(dirname "$(find "$prefix" -name convnext.pc | head -1)")
  if [[ $kind == 1 ]]; then
    flags=$(PKG_CONFIG_PATH=$pcdir pkg-config --cflags --libs convnext)
    flags+=" -Wl,-rpath,$(PKG_CONFIG_PATH=$pcdir pkg-config --variable=libdir convnext)"
  else
    flags=$(PKG_CONFIG_PATH=$pcdir pkg-config --static --cflags --libs convnext)
  fi
  # shellcheck disable=SC2086  # the flags are words
  quiet "$cxx" -std=c++17 -O2 "$src/tests/consumer/classify.cpp" $flags -o "$tmp/pc-$name"
  check_labels "$tmp/pc-$name"
}

# A shared libconvnext: soname libconvnext.so.MAJOR.MINOR, and nothing exported but the API.
check_exports() {
  local lib
  lib=$(find "$1" -name 'libconvnext.so.*.*.*' | head -1)
  [[ -n $lib ]] || fail "no libconvnext.so.X.Y.Z under $1"
  readelf -d "$lib" | grep -q 'SONAME.*\[libconvnext\.so\.[0-9]*\.[0-9]*\]' || fail "$lib: no versioned soname"
  nm -DC --defined-only "$lib" | sed 's/^[0-9a-f]* [A-Za-z] //' >"$tmp/exports"
  grep -q '^convnext::ConvNextForImageClassification::from_pretrained' "$tmp/exports" || fail "$lib: the API is not exported"
  if grep -v -e '^convnext::' -e '^typeinfo for convnext::' -e '^typeinfo name for convnext::' -e '^vtable for convnext::' \
      "$tmp/exports" | head -5 | grep . >&2; then
    fail "$lib exports symbols outside namespace convnext (above)"
  fi
  if grep -E '^convnext::(kernels|io|image|train|cli|model)::|^convnext::detail::(Parameters|InferencePlan|ModelState)' "$tmp/exports" | head -5 | grep . >&2; then
    fail "$lib exports internals (above)"
  fi
  step "shared: $(wc -l <"$tmp/exports") symbols exported, all public API"
}

# 1. This build, as it is.
step "installing $build"
quiet "$cmake" --install "$build" --prefix "$tmp/prefix-a"
if [[ $shared == 1 ]]; then check_exports "$tmp/prefix-a"; fi
check_prefix "$tmp/prefix-a" "$shared"

# 2. The other library kind, without the optional components: the library and the tool only.
other=$((1 - shared))
step "building the library with BUILD_SHARED_LIBS=$other, CONVNEXT_WITH_HDF5=OFF, CONVNEXT_WITH_CURL=OFF, CONVNEXT_WITH_SERVE=OFF, CONVNEXT_WITH_MPI=OFF"
quiet "$cmake" -S "$src" -B "$tmp/build-b" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="$cxx" \
      -DBUILD_SHARED_LIBS="$other" -DCONVNEXT_BUILD_TESTS=OFF -DCONVNEXT_WITH_HDF5=OFF -DCONVNEXT_WITH_CURL=OFF -DCONVNEXT_WITH_SERVE=OFF -DCONVNEXT_WITH_MPI=OFF
quiet "$cmake" --build "$tmp/build-b" -j"$jobs" --target convnext convnext_cli
quiet "$cmake" --install "$tmp/build-b" --prefix "$tmp/prefix-b"
if [[ $other == 1 ]]; then check_exports "$tmp/prefix-b"; fi
check_prefix "$tmp/prefix-b" "$other"

step "without HDF5 and libcurl: version, info, forward"
tool=$tmp/prefix-b/bin/convnext
json=$("$tool" version --json)
[[ $json == *'"components":{"hdf5":false,"curl":false,"mpi":false,"serve":false}'* ]] || fail "version --json: $json"
quiet "$tool" info --model "$model"
quiet "$tool" make-input --shape 2,1,32,32 --labels 10 --output "$tmp/in.safetensors"
quiet "$tool" forward --model "$model" --input "$tmp/in.safetensors" --output "$tmp/out.safetensors"
mkdir "$tmp/h5" && cp "$model/config.json" "$tmp/h5/" && echo x >"$tmp/h5/tf_model.h5"
expect_error 'needs HDF5 support: rebuild with libhdf5-dev installed and -DCONVNEXT_WITH_HDF5=ON' "$tool" info --model "$tmp/h5"
expect_error 'needs libcurl support: rebuild with libcurl4-openssl-dev installed and -DCONVNEXT_WITH_CURL=ON' \
             "$tool" download acme/tiny
expect_error 'convnext serve needs cpp-httplib: install libcpp-httplib-dev' "$tool" serve --model "$model"
step "ok"
