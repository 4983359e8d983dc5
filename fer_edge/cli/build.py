"""``fer-edge build``: a model id, checkpoint or ONNX package -> a deployable model package."""

from __future__ import annotations

import argparse

from fer_edge.builder.calibration import DEFAULT_SIZE
from fer_edge.builder.quantize import METHODS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="zoo id, checkpoint (.pt) or FP32 ONNX package (.onnx/.json)")
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--fp16", dest="precision", action="store_const", const="fp16", help="FP16 (TensorRT)")
    precision.add_argument("--int8", dest="precision", action="store_const", const="int8", help="INT8 (Q/DQ)")
    parser.set_defaults(precision="fp32")
    parser.add_argument("--target", choices=("tensorrt", "onnxruntime"), default=None,
                        help="default: tensorrt where TensorRT and a GPU are found, else onnxruntime")
    parser.add_argument("--calib", default=None, help="calibration faces: photos folder, FER+ split or manifest .json")
    parser.add_argument("--calib-size", type=int, default=DEFAULT_SIZE, help="calibration faces to sample")
    parser.add_argument("--method", choices=METHODS, default="entropy", help="INT8 calibration method")
    parser.add_argument("--batch", default=None, metavar="MIN:OPT:MAX", help="dynamic batch range (default: recipe)")
    parser.add_argument("--workspace", type=int, default=None, metavar="MB", help="TensorRT workspace limit")
    parser.add_argument("--dla", type=int, default=None, metavar="N", help="build for DLA core N (Jetson)")
    parser.add_argument("--timing-cache", default=None, metavar="FILE", help="TensorRT timing cache to reuse/update")
    parser.add_argument("--fp16-weights", action="store_true",
                        help="ONNX Runtime package: store its float weights (all of FP32's, those INT8 keeps in FP32) "
                             "as float16 (a smaller file; compute stays FP32)")
    parser.add_argument("--weights", choices=("pretrained", "random"), default="pretrained",
                        help="for a zoo id: its shipped trained weights (default) or random ones (testing only)")
    parser.add_argument("--onnx-only", action="store_true",
                        help="with --target tensorrt: stop before the engine (no TensorRT needed) and write the ONNX "
                             "TensorRT will build (plugin form, TensorRT's Q/DQ) + sidecar; prints the device commands")
    parser.add_argument("--int8-ops", choices=("measured", "all"), default=None,
                        help="ONNX Runtime INT8: keep in FP32 the op groups measured as slower in int8 here "
                             "(default: measured), or quantize all")
    parser.add_argument("-o", "--out", default=None, help="output model file (its sidecar is written beside it)")


def run(args: argparse.Namespace) -> int:
    from fer_edge.builder.pipeline import build

    build(args.model, args.precision, args.target, args.out, args.calib, args.calib_size, args.method, args.batch,
          args.workspace, args.dla, args.timing_cache, args.fp16_weights, onnx_only=args.onnx_only, weights=args.weights,
          int8_ops=args.int8_ops)
    return 0
