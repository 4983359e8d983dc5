#!/usr/bin/env bash
# Install the `fer` package (the baseline compare_fer.py measures) into its own venv, bench/.venv-fer.
# It cannot share fer_edge's environment: it needs OpenCV 4 (its Haar path fails on OpenCV 5),
# setuptools<81 (it imports pkg_resources) and TensorFlow (tf.lite.Interpreter; tensorflow-cpu is
# the smallest build that provides it). fer's other requirements (facenet-pytorch, moviepy,
# pandas, matplotlib, ...) serve its MTCNN and video helpers, which the benchmark does not use,
# so fer itself is installed with --no-deps.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-python3}"
"$python" -m venv "$here/.venv-fer"
"$here/.venv-fer/bin/pip" install --quiet "fer==25.10.3" --no-deps
"$here/.venv-fer/bin/pip" install --quiet "tensorflow-cpu==2.21.0" "opencv-python-headless>=4.10,<5" "setuptools<81" requests pillow
"$here/.venv-fer/bin/python" -c "from fer.fer import FER; FER()" && echo "fer is ready in $here/.venv-fer"
