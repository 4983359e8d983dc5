"""Whole-pipeline cost per frame, side by side: p50 of ``recognizer(frame)`` for several set-ups.

    python bench/pipeline_compare.py default default+flip [OLD_PACKAGE.json ...] [--frames 150]

Each set-up is a model (``default``, an id or a package path) with an optional ``+flip``
(``Recognizer(flip=True)``). One 640x480 frame with the astronaut's face (320 px) in it; every
Recognizer runs the same frame in turn (interleaved, so load changes hit all of them alike), on
the model's default backend. Used for the flip cost and for a new default against the previous one.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
from skimage import data

from fer_edge import Recognizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("setups", nargs="+", metavar="MODEL[+flip]")
    parser.add_argument("--frames", type=int, default=150)
    args = parser.parse_args()
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[80:400, 160:480] = cv2.resize(np.ascontiguousarray(data.astronaut()[:, :, ::-1]), (320, 320))
    recognizers = {name: Recognizer(name.removesuffix("+flip"), flip=name.endswith("+flip")) for name in args.setups}
    samples: dict[str, list[float]] = {name: [] for name in recognizers}
    for _ in range(args.frames):
        for name, recognizer in recognizers.items():
            start = time.perf_counter()
            if len(recognizer(frame)) != 1:
                raise RuntimeError("the benchmark frame must hold exactly one detected face")
            samples[name].append(time.perf_counter() - start)
    first = 1000 * float(np.median(samples[args.setups[0]]))
    for name, recognizer in recognizers.items():
        p50 = 1000 * float(np.median(samples[name]))
        print(f"{name} ({recognizer.info()['package']}): {p50:.2f} ms p50 per 640x480 frame "
              f"({100 * (p50 / first - 1):+.0f} % vs {args.setups[0]})")


if __name__ == "__main__":
    main()
