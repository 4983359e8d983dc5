"""What distilling from a set of shipped models can reach: the accuracy of their mean probabilities.

A student distilled from teachers rarely beats the teachers' own ensemble, so before spending CPU
hours on a distillation run, measure the ensemble: each package alone, then the mean of their
calibrated probabilities (``softmax(logits / sidecar.temperature)``), each with and without the
mirror image averaged in (``--flip``'s test-time augmentation), on FER+ valid under one protocol.

    python tools/ensemble_accuracy.py fer_edge/data/models/{fer_default,simam_resnet,han_pff}_int8.json \
        --protocol authors
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from fer_edge.engines.resolve import load_engine
from fer_edge.recognizer.recognizer import softmax
from fer_edge.training.evaluate import batched_logits
from fer_edge.training.images import decode_records
from fer_edge.training.readers import read_dataset


def label_probabilities(package: Path, data: str, protocol: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, probabilities, probabilities of the mirrored faces) of ``package`` on FER+ valid, the
    probabilities spread over the protocol's label classes (a class the model lacks gets 0)."""
    engine, _ = load_engine(package)
    records = read_dataset(data, "val", len(engine.classes), protocol=protocol)
    records, images = decode_records(records, gray=engine.input_spec.color == "gray", size=engine.input_spec.size)
    columns = [tuple(records.classes).index(name) for name in engine.classes]
    temperature = engine.package.sidecar.temperature
    spread = []
    for faces in (images, np.ascontiguousarray(images[:, :, ::-1])):
        probs = np.zeros((len(images), len(records.classes)))
        probs[:, columns] = softmax(batched_logits(engine, faces), temperature)
        spread.append(probs)
    return records.labels, spread[0], spread[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("packages", nargs="+", type=Path)
    parser.add_argument("--data", default="../shared/data/ferplus")
    parser.add_argument("--protocol", default="authors", choices=["majority", "authors"])
    args = parser.parse_args()
    scored = {package.stem: label_probabilities(package, args.data, args.protocol) for package in args.packages}
    labels = next(iter(scored.values()))[0]
    if any(len(s[0]) != len(labels) or (s[0] != labels).any() for s in scored.values()):
        raise SystemExit("the packages read different faces or labels (7- and 8-class models under --protocol "
                         "majority); use --protocol authors to compare them")
    print(f"| models ({args.protocol}, {len(labels)} faces) | accuracy | with flip |\n|---|---:|---:|")
    rows = [([name], [s]) for name, s in scored.items()] + [(list(scored), list(scored.values()))]
    for names, members in rows:
        mean = np.sum([m[1] for m in members], axis=0)
        mean_flip = mean + np.sum([m[2] for m in members], axis=0)
        print(f"| {' + '.join(names)} | {100 * (mean.argmax(1) == labels).mean():.2f} % "
              f"| {100 * (mean_flip.argmax(1) == labels).mean():.2f} % |")


if __name__ == "__main__":
    main()
