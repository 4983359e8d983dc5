"""``fer-edge calibrate``: build a calibration set (+ manifest) and report FP32 -> INT8 accuracy."""

from __future__ import annotations

import argparse

from fer_edge.builder.calibration import DEFAULT_SIZE
from fer_edge.builder.quantize import METHODS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="zoo id, checkpoint (.pt) or FP32 ONNX package")
    parser.add_argument("--calib", default=None, help="photos folder, FER+ split or manifest .json (default: shipped)")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help="calibration faces to sample")
    parser.add_argument("--method", choices=METHODS, default="entropy")
    parser.add_argument("--eval", default=None, metavar="FERPLUS_SPLIT",
                        help="labelled FER+ split to report FP32 vs INT8 accuracy on (strict-majority protocol)")
    parser.add_argument("--limit", type=int, default=1000, help="evaluate at most this many faces")
    parser.add_argument("-o", "--out", default="calibration/custom.json", help="manifest path (.npy written beside)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fer_edge.builder import calibration
    from fer_edge.builder.pipeline import calibration_set, default_target, load_source
    from fer_edge.builder.quantize import predict, quantize_int8

    source = load_source(args.model)
    cset = calibration_set(args.calib, source, args.size, print)
    path = calibration.save(cset, args.out)
    print(f"calibration set: {len(cset.tensors)} faces -> {path} (+ {path.with_suffix('.npy').name})")
    if args.eval is None:
        return 0
    if source.onnx_model is None:
        from fer_edge.builder.export import export_model

        faces, origin = calibration.parity_faces(source.spec)
        exported = export_model(source.torch_model, source.spec, source.recipe.batch, source.recipe.opset, faces, origin)
        portable, sites = exported.portable, exported.sites
    else:
        portable, sites = source.onnx_model, []
    labels = cset.labels if (cset.labels >= 0).all() else None
    quant = quantize_int8(portable, cset.tensors, labels, args.method, sites, target=default_target())
    faces, truth = calibration.labelled_faces(Path(args.eval), source.spec, len(source.classes), args.limit)
    fp32 = float((predict(portable, faces).argmax(1) == truth).mean())
    int8 = float((predict(quant.model, faces).argmax(1) == truth).mean())
    print(f"accuracy on {len(truth)} faces of {args.eval}: FP32 {100 * fp32:.2f}%  INT8 {100 * int8:.2f}%  "
          f"change {100 * (int8 - fp32):+.2f} pt (method {args.method}, plugin regions float: {quant.excluded_regions})")
    return 0
