"""``fer-edge eval``: accuracy, macro P/R/F1, per-class accuracy and the confusion matrix of any model form."""

from __future__ import annotations

import argparse
import json

from fer_edge.cli.run import class_list


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model id, .pt checkpoint, or package (.onnx/.engine/.json)")
    parser.add_argument("--data", required=True, help="dataset root, split folder or csv")
    parser.add_argument("--split", choices=["train", "val", "test", "holdout"],
                        help="split to evaluate (default: test, else val); holdout: the slice of train that "
                             "`fer-edge train --holdout` kept out (same --holdout-fraction and --seed)")
    parser.add_argument("--holdout-fraction", type=float, default=0.1, help="with --split holdout")
    parser.add_argument("--seed", type=int, default=0, help="the training seed, for --split holdout")
    parser.add_argument("--fit-temperature", action="store_true",
                        help="fit a softmax temperature on these faces (held-out ones only; with --record it "
                             "goes into the sidecar and every backend applies it)")
    parser.add_argument("--prior-correction", type=float, default=0.0, metavar="TAU",
                        help="score as Recognizer(prior_correction=TAU) answers: the training class prior "
                             "divided out to the power TAU (0 = off)")
    parser.add_argument("--flip", action="store_true",
                        help="score as Recognizer(flip=True) answers: mean of each face and its mirror image")
    parser.add_argument("--classes", type=class_list, metavar="7|NAMES",
                        help="score as Recognizer(classes=...) answers: 7 (the basic expressions of an 8-class "
                             "model, contempt left out) or comma-separated class names")
    parser.add_argument("--backend", default="auto", choices=["auto", "tensorrt", "onnxruntime", "torch"])
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "int8"],
                        help="which package of a model id to evaluate")
    parser.add_argument("--protocol", default="majority", choices=["majority", "authors"],
                        help="FER+ labels: our strict majority over the model's classes, or the FER+ authors' "
                             "majority mode (8 emotions, single votes dropped; the number papers report)")
    parser.add_argument("--agree-with", metavar="MODEL",
                        help="also report how often this other form of the model (e.g. its FP32 package) agrees")
    parser.add_argument("--occlusion", action="store_true", help="also evaluate with eyes / mouth occluded")
    parser.add_argument("--limit", type=int, help="evaluate only the first N images")
    parser.add_argument("--out", default="runs/eval", help="folder for metrics.json and confusion.png")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.add_argument("--record", action="store_true",
                        help="also store the headline metrics in the evaluated package's sidecar")


def run(args: argparse.Namespace) -> int:
    from fer_edge.training.evaluate import evaluate, format_report, record_in_sidecar, write_outputs

    report = evaluate(args.model, args.data, split=args.split, occlusion=args.occlusion, backend=args.backend,
                      precision=args.precision, limit=args.limit, protocol=args.protocol, agree_with=args.agree_with,
                      seed=args.seed, holdout=args.holdout_fraction, fit=args.fit_temperature,
                      prior_correction=args.prior_correction, flip=args.flip,
                      classes=args.classes)
    metrics, png = write_outputs(report, args.out)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    if not args.json:
        print(f"saved {metrics} and {png}")
    if args.record:
        print(f"recorded in {record_in_sidecar(report)}")
    return 0
