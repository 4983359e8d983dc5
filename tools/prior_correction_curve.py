"""Accuracy and per-class recall against the prior-correction strength tau, as a markdown table.

Usage: ``python tools/prior_correction_curve.py PACKAGE.json [--split holdout|val] [--protocol
majority|authors] [--data ../shared/data/ferplus]``. Run it on ``--split holdout`` (the 10 % of
FER+ train a zoo model never trained on) to choose tau, and on ``val`` for the card's numbers only.
Each row is ``fer-edge eval --prior-correction TAU``.
"""

from __future__ import annotations

import argparse

from fer_edge.training.evaluate import evaluate

TAUS = (0.0, 0.25, 0.5, 0.75, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package")
    parser.add_argument("--split", default="holdout", choices=["holdout", "val"])
    parser.add_argument("--protocol", default="majority", choices=["majority", "authors"])
    parser.add_argument("--data", default="../shared/data/ferplus")
    args = parser.parse_args()
    rows = [evaluate(args.package, args.data, split=args.split, protocol=args.protocol, prior_correction=tau)
            for tau in TAUS]
    classes = list(rows[0]["per_class_accuracy"])
    print(f"{args.package}, FER+ {args.split} ({rows[0]['protocol']}, {rows[0]['images_used']} faces)\n")
    print("| tau | accuracy | mean recall | " + " | ".join(classes) + " |")
    print("|---:|---:|---:|" + "---:|" * len(classes))
    for tau, row in zip(TAUS, rows):
        recalls = " | ".join(f"{100 * row['per_class_accuracy'][c]:.1f}" for c in classes)
        print(f"| {tau:g} | {100 * row['accuracy']:.2f} | {100 * row['macro_recall']:.2f} | {recalls} |")


if __name__ == "__main__":
    main()
