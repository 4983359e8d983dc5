#!/usr/bin/env bash
# Run FIRST on any machine with an NVIDIA GPU (never part of CI; <= 8 min; one JSON report):
#   bash tools/gpu_check.sh            # report in $OUT/gpu_check.json (or ./gpu_check.json)
# It builds the CUDA kernels with nvcc and checks them against the CPU reference and float64 (FP32,
# FP16, kernel time per shape); where TensorRT imports, builds FP32/FP16/INT8 engines of every
# shipped model and checks them against ONNX Runtime on FER+ valid faces; then runs the TensorRT
# tests that skip elsewhere (pytest -m tensorrt). See tools/gpu_check.py for what each step records.
# Needs: nvcc (CUDA_HOME, default /usr/local/cuda), python3 with numpy; for the TensorRT step the
# tensorrt and cuda-python packages plus fer_edge's requirements (pip install -e ".[build,tensorrt,test]";
# the plugin library is built here with CMake if the install did not build it). Exit 1 if any check failed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$(command -v python3 || command -v python)}
export PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
exec timeout "${FER_EDGE_GPU_CHECK_TIMEOUT:-480}" "$PY" tools/gpu_check.py --out "${OUT:-.}" --budget "${FER_EDGE_GPU_CHECK_BUDGET:-450}" "$@"
