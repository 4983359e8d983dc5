#!/usr/bin/env bash
# Native build checks for CI (.ci/run calls this). No GPU and no libnvinfer needed; exits non-zero
# on any failure. Every step compiles with warnings as errors.
#  1. CMake build of fer_edge._C and libfer_edge_plugins against the TensorRT 10.3 headers: the CUDA
#     kernels with nvcc for the default architectures CMake picks for this nvcc (printed).
#  2. libfer_edge_plugins against the 8.5.3 and 8.6.1 headers (IPluginV2DynamicExt path) and the 11.1
#     headers (IPluginV3), kernels for sm_75 only (the kernels include no TensorRT header).
#  3. The host plugin harness (cpp/tests/pluginHarness.cpp, kernels replaced by a CPU stub) built and
#     run against each of the four header sets, and the thread-level reduction emulation.
#  4. tests/test_native_build.py and tests/test_plugin_harness.py on what was built (symbols, loading
#     next to a stub libnvinfer RTLD_LOCAL, creator fields vs the export's plugin attributes).
# Environment: FER_EDGE_TRT_HEADERS (folder holding 8.5.3/ 8.6.1/ 10.3.0/ 11.1/), CUDA_HOME (default
# /usr/local/cuda), FER_EDGE_CI_BUILD (build folder, default build/ci), FER_EDGE_CI_JOBS.
set -euo pipefail
cd "$(dirname "$0")/.."

HEADERS=${FER_EDGE_TRT_HEADERS:-$(cd .. && pwd)/shared/third_party/tensorrt-headers}
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
BUILD=${FER_EDGE_CI_BUILD:-build/ci}
JOBS=${FER_EDGE_CI_JOBS:-$(nproc)}
PY=${PYTHON:-python}
CXX=${CXX:-c++}
V2_VERSIONS=(8.5.3 8.6.1)
V3_VERSIONS=(10.3.0 11.1)

fail() { echo "ci_checks: FAILED: $*" >&2; exit 1; }
command -v cmake >/dev/null || fail "cmake not found"
[ -x "$CUDA_HOME/bin/nvcc" ] || fail "nvcc not found at $CUDA_HOME/bin/nvcc (set CUDA_HOME)"
GENERATOR=()
command -v ninja >/dev/null && GENERATOR=(-G Ninja)
for version in "${V2_VERSIONS[@]}" "${V3_VERSIONS[@]}"; do
  [ -f "$HEADERS/$version/include/NvInferVersion.h" ] || fail "TensorRT $version headers not found under $HEADERS"
done

mkdir -p "$BUILD"
BUILD=$(cd "$BUILD" && pwd)
LIBS=()
build_plugins() {  # build_plugins VERSION [extra cmake args...]
  local version=$1; shift
  echo "== cmake build against TensorRT $version headers"
  cmake -S . -B "$BUILD/trt-$version" "${GENERATOR[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CUDA_COMPILER="$CUDA_HOME/bin/nvcc" -DTensorRT_ROOT="$HEADERS/$version" \
    -DFER_EDGE_CUDA=ON -DFER_EDGE_TENSORRT=ON -DFER_EDGE_WERROR=ON -DPython_EXECUTABLE="$(command -v "$PY")" "$@" \
    >"$BUILD/configure-$version.log" 2>&1 || { cat "$BUILD/configure-$version.log"; fail "configure ($version)"; }
  grep "fer_edge:" "$BUILD/configure-$version.log" | sed 's/^-- /   /'
  cmake --build "$BUILD/trt-$version" --parallel "$JOBS" >"$BUILD/build-$version.log" 2>&1 \
    || { cat "$BUILD/build-$version.log"; fail "build against TensorRT $version headers"; }
  local lib="$BUILD/trt-$version/fer_edge/libfer_edge_plugins.so"
  [ -s "$lib" ] || fail "$lib was not produced"
  LIBS+=("$lib")
}
build_plugins 10.3.0
for version in "${V2_VERSIONS[@]}" 11.1; do
  build_plugins "$version" -DCMAKE_CUDA_ARCHITECTURES=75 -DFER_EDGE_PYTHON_MODULE=OFF
done

HARNESSES=()
for version in "${V2_VERSIONS[@]}" "${V3_VERSIONS[@]}"; do
  echo "== host plugin harness against TensorRT $version headers (kernels stubbed)"
  exe="$BUILD/pluginHarness-$version"
  "$CXX" -std=c++17 -O1 -Wall -Wextra -Werror -rdynamic -DFER_EDGE_PLUGIN_VERSION='"ci"' -Icpp \
    -isystem "$HEADERS/$version/include" -isystem "$CUDA_HOME/include" \
    cpp/tests/pluginHarness.cpp cpp/tests/stubKernels.cpp cpp/common/pluginRegistry.cpp \
    cpp/simamPlugin/simamPlugin.cpp cpp/ccAttentionPlugin/ccAttentionPlugin.cpp \
    -L"$CUDA_HOME/lib64" -lcudart_static -ldl -lpthread -lrt -o "$exe" || fail "harness ($version) did not compile"
  "$exe" >"$exe.json" 2>"$exe.log" || { cat "$exe.log" "$exe.json"; fail "harness ($version) checks failed"; }
  "$PY" -c "import json,sys; r=json.load(open(sys.argv[1])); print(f\"   {r['interface']}: {r['checks']} checks passed\")" "$exe.json"
  HARNESSES+=("$exe.json")
done

echo "== thread-level emulation of the kernels' reductions vs float64, plane sizes 1..3136"
"$CXX" -std=c++17 -O2 -Wall -Wextra -Werror -Icpp cpp/tests/reductionEmulation.cpp -o "$BUILD/reductionEmulation" \
  || fail "reduction emulation did not compile"
"$BUILD/reductionEmulation" >"$BUILD/reductionEmulation.json" || { cat "$BUILD/reductionEmulation.json"; fail "reduction emulation"; }
cat "$BUILD/reductionEmulation.json"

echo "== tests on the built libraries and harness reports"
FER_EDGE_PLUGIN_LIBS=$(IFS=:; echo "${LIBS[*]}") FER_EDGE_PLUGIN_HARNESS_REPORTS=$(IFS=:; echo "${HARNESSES[*]}") \
  FER_EDGE_REDUCTION_REPORT="$BUILD/reductionEmulation.json" FER_EDGE_TRT_HEADERS="$HEADERS" OMP_NUM_THREADS=1 \
  "$PY" -m pytest -q -p no:cacheprovider tests/test_native_build.py tests/test_plugin_harness.py \
  || fail "tests/test_native_build.py tests/test_plugin_harness.py"
echo "ci_checks: OK"
