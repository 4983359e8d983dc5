"""Record the FER+ training class prior in shipped sidecars trained before ``fer-edge train`` did.

Usage: ``python tools/record_class_prior.py PACKAGE.json ... [--data ../shared/data/ferplus]``.
Writes ``training.class_prior`` (the mean vote distribution over the package's classes on FER+
train, the targets every shipped model was trained on: ``--soft-labels``), which
``Recognizer(prior_correction=...)`` divides out. Refuses a package whose recorded training data
is not FER+, since the prior would then be another dataset's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fer_edge.errors import PackageError
from fer_edge.package import load_package, write_package
from fer_edge.training.datasets import class_prior
from fer_edge.training.readers import Records, read_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("packages", nargs="+", type=Path)
    parser.add_argument("--data", default="../shared/data/ferplus")
    args = parser.parse_args()
    records_by_classes: dict[int, Records] = {}  # label.csv read once per class count, not per package
    for path in args.packages:
        package = load_package(path)
        side = package.sidecar
        trained_on = str(side.training.get("data") or side.training.get("config", {}).get("data", ""))
        if "ferplus" not in trained_on.lower():
            raise PackageError(f"{path}: trained on {trained_on or 'unrecorded data'}, not FER+; "
                               "its prior is not FER+'s")
        if len(side.classes) not in records_by_classes:
            records_by_classes[len(side.classes)] = read_dataset(args.data, "train", len(side.classes), protocol="votes")
        records = records_by_classes[len(side.classes)]
        if tuple(records.classes) != tuple(side.classes):
            raise PackageError(f"{path}: classes {side.classes} differ from FER+'s {records.classes}")
        side.training["class_prior"] = class_prior(records)
        write_package(package.model_path, side)
        print(f"{path}: class_prior {dict(zip(side.classes, side.training['class_prior']))}")


if __name__ == "__main__":
    main()
