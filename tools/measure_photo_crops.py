"""How a sharp, high-resolution face is cropped changes the answer: FER+ valid as simulated photos.

A camera close to a face gives a face several times the model's 48 px, with sensor noise and skin
texture at the camera's resolution; FER2013's faces were downscaled from web photos, which averaged
that grain away. Each FER+ valid face is turned into such a photo (upscaled SCALE times, bicubic,
plus Gaussian noise of NOISE grey levels at the photo's resolution), aligned back to the model's crop
through ``align_face`` on its exact landmarks, with the plain bilinear warp (``antialias=False``)
and with the area-averaged one the SDK uses, and classified.

Usage: ``python tools/measure_photo_crops.py [PACKAGE.json] [--scales 4 6 8] [--noise 0 6 12]``
(default package: the shipped INT8 default). Prints a markdown table (strict protocol, 7 classes).
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from fer_edge import Recognizer
from fer_edge.training.images import decode_records
from fer_edge.training.readers import read_dataset
from fer_edge.vision.align import align_face, template
from fer_edge.vision.preprocess import preprocess


def predictions(recognizer: Recognizer, crops: list[np.ndarray], batch: int = 256) -> np.ndarray:
    return np.concatenate([recognizer.classify_batch(preprocess(crops[i:i + batch], recognizer.spec)).argmax(1)
                           for i in range(0, len(crops), batch)])


def photo(face: np.ndarray, scale: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    """``face`` (48x48 gray) as a ``scale`` times larger BGR photo with per-pixel Gaussian noise."""
    big = cv2.resize(face, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC).astype(np.float32)
    big = np.clip(big + rng.normal(0.0, noise, big.shape), 0, 255).astype(np.uint8)
    return cv2.cvtColor(big, cv2.COLOR_GRAY2BGR)


def row(name: str, preds: np.ndarray, labels: np.ndarray, classes: tuple[str, ...]) -> str:
    recalls = " | ".join(f"{100 * np.mean(preds[labels == k] == k):.1f}" for k in range(len(classes)))
    return f"| {name} | {100 * np.mean(preds == labels):.2f} | {100 * np.mean(preds == 0):.1f} | {recalls} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", nargs="?", default="fer_edge/data/models/fer_default_int8.json")
    parser.add_argument("--data", default="../shared/data/ferplus")
    parser.add_argument("--scales", type=int, nargs="+", default=[4, 6, 8])
    parser.add_argument("--noise", type=float, nargs="+", default=[0.0, 6.0, 12.0])
    args = parser.parse_args()
    recognizer = Recognizer(args.package)
    records = read_dataset(args.data, "val", len(recognizer.classes), protocol="majority")
    records, faces = decode_records(records, gray=True)
    classes = records.classes
    if tuple(recognizer.classes[:len(classes)]) != classes or classes[0] != "neutral":
        raise SystemExit(f"{args.package}: expected the 7 FER+ classes, neutral first; got {recognizer.classes}")
    print(f"{args.package}, FER+ valid ({len(faces)} faces, strict majority)\n")
    print("| crop | accuracy | answered neutral | " + " | ".join(classes) + " |")
    print("|---|---:|---:|" + "---:|" * len(classes))
    native = [cv2.cvtColor(f, cv2.COLOR_GRAY2BGR) for f in faces]
    print(row("the 48 px face itself", predictions(recognizer, native), records.labels, classes), flush=True)
    for scale in args.scales:
        landmarks = template(recognizer.spec.alignment) * 48 * scale
        for noise in args.noise:
            rng = np.random.default_rng(0)
            photos = [photo(f, scale, noise, rng) for f in faces]
            for antialias in (False, True):
                crops = [align_face(p, landmarks, recognizer.spec.size, recognizer.spec.alignment, antialias)
                         for p in photos]
                how = "area-averaged (SDK)" if antialias else "bilinear warp (before)"
                print(row(f"x{scale}, noise {noise:g}, {how}", predictions(recognizer, crops), records.labels, classes),
                      flush=True)


if __name__ == "__main__":
    main()
