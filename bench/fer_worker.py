"""Time the `fer` package (pip `fer`, MIT) on frames saved as .npy; runs INSIDE bench/.venv-fer.

Kept free of fer_edge imports: `fer` needs OpenCV 4, setuptools<81 and TensorFlow, which cannot
share an environment with fer_edge (OpenCV 5). Prints one JSON document on stdout.
Usage: python fer_worker.py FRAMES.npy WARMUP ITERS
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore")


def main() -> int:
    import numpy as np

    frames_path, warmup, iters = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    frames = np.load(frames_path)
    import cv2
    import tensorflow as tf
    from fer import __version__ as fer_version
    from fer.fer import FER

    logging.getLogger("fer").setLevel(logging.WARNING)
    start = time.perf_counter()
    detector = FER()  # the package's defaults: Haar cascade + quantized mini-Xception TFLite
    load_s = time.perf_counter() - start
    for i in range(warmup):
        detector.detect_emotions(frames[i % len(frames)])
    samples, faces = [], []
    for i in range(iters):
        frame = frames[i % len(frames)]
        start = time.perf_counter()
        found = detector.detect_emotions(frame)
        samples.append(time.perf_counter() - start)
        faces.append(len(found))
    ms = np.asarray(samples) * 1e3
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    print(json.dumps({"fer": fer_version, "tensorflow": tf.__version__, "opencv": cv2.__version__,
                      "pipeline": "FER().detect_emotions (Haar cascade + mini-Xception TFLite)",
                      "load_s": round(load_s, 4), "faces_per_frame": float(np.mean(faces)),
                      "latency": {"iters": len(ms), "mean_ms": float(ms.mean()), "p50_ms": float(p50),
                                  "p90_ms": float(p90), "p99_ms": float(p99), "min_ms": float(ms.min()),
                                  "max_ms": float(ms.max())}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
