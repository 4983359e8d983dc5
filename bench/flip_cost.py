"""What ``Recognizer(flip=True)`` costs per frame: p50 of ``recognizer(frame)`` with flip off and on.

    python bench/flip_cost.py [--model default] [--frames 150]

One 640x480 frame with the astronaut's face (320 px) in it; both Recognizers run the same frame in
turn (interleaved, so load changes hit both), on the model's default backend.
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
    parser.add_argument("--model", default="default")
    parser.add_argument("--frames", type=int, default=150)
    args = parser.parse_args()
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[80:400, 160:480] = cv2.resize(np.ascontiguousarray(data.astronaut()[:, :, ::-1]), (320, 320))
    recognizers = {"off": Recognizer(args.model), "on": Recognizer(args.model, flip=True)}
    samples: dict[str, list[float]] = {name: [] for name in recognizers}
    for _ in range(args.frames):
        for name, recognizer in recognizers.items():
            start = time.perf_counter()
            if len(recognizer(frame)) != 1:
                raise RuntimeError("the benchmark frame must hold exactly one detected face")
            samples[name].append(time.perf_counter() - start)
    p50 = {name: 1000 * float(np.median(s)) for name, s in samples.items()}
    print(f"{recognizers['off'].info()['package']}: flip off {p50['off']:.2f} ms, on {p50['on']:.2f} ms p50 per "
          f"640x480 frame ({100 * (p50['on'] / p50['off'] - 1):+.0f} %)")


if __name__ == "__main__":
    main()
