#!/usr/bin/env bash
# Native build checks for CI (.ci/run calls this; ~1-2 min on 2 cores). Exits non-zero on any failure.
#  1. CMake configure + build of fer_edge._C and libfer_edge_plugins against the TensorRT 10.3 and
#     11.1 header sets, warnings as errors; this compiles the CUDA kernels with nvcc for the default
#     architectures (75;80;86;87;89;90).
#  2. The TensorRT 8.5/8.6 plugin path (IPluginV2DynamicExt, normally compiled only when
#     NV_TENSORRT_MAJOR < 10) type-checked against the 10.3 headers, warnings as errors.
#  3. tests/test_native_build.py on the libraries just built (undefined TensorRT symbols, exports).
# Environment: FER_EDGE_TRT_HEADERS (folder holding 10.3.0/ and 11.1/), CUDA_HOME (default
# /usr/local/cuda), FER_EDGE_CI_BUILD (build folder, default build/ci), FER_EDGE_CI_JOBS.
set -euo pipefail
cd "$(dirname "$0")/.."

HEADERS=${FER_EDGE_TRT_HEADERS:-$(cd .. && pwd)/shared/third_party/tensorrt-headers}
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
BUILD=${FER_EDGE_CI_BUILD:-build/ci}
JOBS=${FER_EDGE_CI_JOBS:-$(nproc)}
PY=${PYTHON:-python}

fail() { echo "ci_checks: FAILED: $*" >&2; exit 1; }
command -v cmake >/dev/null || fail "cmake not found"
[ -x "$CUDA_HOME/bin/nvcc" ] || fail "nvcc not found at $CUDA_HOME/bin/nvcc (set CUDA_HOME)"
GENERATOR=()
command -v ninja >/dev/null && GENERATOR=(-G Ninja)

mkdir -p "$BUILD"
LIBS=()
for version in 10.3.0 11.1; do
  [ -f "$HEADERS/$version/include/NvInferVersion.h" ] || fail "TensorRT $version headers not found under $HEADERS"
  echo "== cmake build against TensorRT $version headers"
  cmake -S . -B "$BUILD/trt-$version" "${GENERATOR[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CUDA_COMPILER="$CUDA_HOME/bin/nvcc" -DTensorRT_ROOT="$HEADERS/$version" \
    -DFER_EDGE_CUDA=ON -DFER_EDGE_TENSORRT=ON -DFER_EDGE_WERROR=ON -DPython_EXECUTABLE="$(command -v "$PY")" \
    >"$BUILD/configure-$version.log" 2>&1 || { cat "$BUILD/configure-$version.log"; fail "configure ($version)"; }
  cmake --build "$BUILD/trt-$version" --parallel "$JOBS" || fail "build against TensorRT $version headers"
  lib="$BUILD/trt-$version/fer_edge/libfer_edge_plugins.so"
  [ -s "$lib" ] || fail "$lib was not produced"
  LIBS+=("$(pwd)/$lib")
done

echo "== TensorRT 8.x plugin path (IPluginV2DynamicExt) type-checked against the 10.3.0 headers"
for src in cpp/common/pluginRegistry.cpp cpp/simamPlugin/simamPlugin.cpp cpp/ccAttentionPlugin/ccAttentionPlugin.cpp; do
  "${CXX:-c++}" -std=c++17 -fsyntax-only -Wall -Wextra -Werror -Wno-deprecated-declarations \
    -DFER_EDGE_FORCE_PLUGIN_V2 -DFER_EDGE_PLUGIN_VERSION='"ci"' -Icpp \
    -isystem "$HEADERS/10.3.0/include" -isystem "$CUDA_HOME/include" "$src" || fail "V2 path: $src"
done

echo "== symbol checks on the built plugin libraries"
FER_EDGE_PLUGIN_LIBS=$(IFS=:; echo "${LIBS[*]}") OMP_NUM_THREADS=1 \
  "$PY" -m pytest -q -p no:cacheprovider tests/test_native_build.py || fail "tests/test_native_build.py"
echo "ci_checks: OK"
