"""What DeepStream's plain box crops cost against our aligned crops, measured on FER+ valid.

nvinfer, as a secondary classifier, scales each detector box to the network size: no landmarks,
no rotation, the box's own framing. The Recognizer instead warps 5 landmarks onto the template
the model was trained with (``fer2013``). FER+ faces are already 48x48 crops, so to give both
paths a real detector box we do what ``tools/measure_fer2013_template.py`` does: upscale each
face x4, add 50% replicated border, run YuNet (the runtime's detector and threshold), then
classify (a) the 48x48 face as the dataset framed it, (b) our aligned crop from YuNet's
landmarks, (c) YuNet's box stretched to 48x48 (nvinfer's default ``maintain-aspect-ratio=0``).
All three are resized and normalised by the same :func:`preprocess`, so only the framing differs.
Accuracy is over the faces YuNet found (strict-majority protocol, 7 classes).

    python tools/measure_deepstream_crops.py --data ../shared/data/ferplus/FER2013Valid
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from fer_edge.engines.onnxruntime import OnnxRuntimeManager
from fer_edge.package import load_package
from fer_edge.training.readers import read_ferplus
from fer_edge.vision.align import align_face
from fer_edge.vision.detector import YuNetDetector
from fer_edge.vision.preprocess import preprocess

UPSCALE = 4
PAD = 0.5
DEFAULT_PACKAGE = Path(__file__).resolve().parents[1] / "fer_edge/data/models/fer_default.json"


def crops(detector: YuNetDetector, face: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray] | None:
    """(aligned crop, plain box crop) of one 48x48 gray face, or None when YuNet finds no face."""
    side = face.shape[0] * UPSCALE
    pad = int(side * PAD)
    big = cv2.copyMakeBorder(cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC),
                             pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    found = detector.detect(big)
    if not found:
        return None
    x, y, w, h = (round(v) for v in found[0].box)
    x0, y0 = max(x, 0), max(y, 0)
    box = big[y0:min(y + h, big.shape[0]), x0:min(x + w, big.shape[1])]
    return align_face(big, found[0].landmarks, size, "fer2013"), box


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ferplus/FER2013Valid"))
    parser.add_argument("--model", type=Path, default=DEFAULT_PACKAGE, help="an ONNX package (sidecar .json)")
    parser.add_argument("-n", type=int, default=None, help="only the first N faces of the protocol")
    args = parser.parse_args()
    package = load_package(args.model)
    spec = package.sidecar.input
    engine = OnnxRuntimeManager.load(package, "cpu", threads=1)
    detector = YuNetDetector(min_face=1, detect_size=UPSCALE * 48 * 2)
    records = read_ferplus(args.data, num_classes=len(package.sidecar.classes), protocol="majority")
    count = len(records) if args.n is None else min(args.n, len(records))
    kept: dict[str, list[np.ndarray]] = {"as_is": [], "aligned": [], "box": []}
    labels = []
    for path, label in zip(records.items[:count], records.labels[:count]):
        face = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        pair = crops(detector, face, spec.size)
        if pair is None:
            continue
        for name, crop in zip(kept, (face, *pair)):
            kept[name].append(crop)
        labels.append(label)
    truth = np.asarray(labels)
    print(f"{package.model_path.name}: YuNet found a face in {len(truth)}/{count} FER+ valid faces "
          f"({100 * len(truth) / count:.1f}%)")
    for name, faces in kept.items():
        predicted = np.concatenate([engine.infer(preprocess(faces[i:i + 256], spec)).argmax(1)
                                    for i in range(0, len(faces), 256)])
        print(f"  {name:8s} accuracy {100 * float((predicted == truth).mean()):.2f}%")


if __name__ == "__main__":
    main()
