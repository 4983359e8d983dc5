"""``fer-edge export-deepstream``: write a DeepStream nvinfer secondary-classifier config for a model package."""

from __future__ import annotations

import argparse

from fer_edge.builder.deepstream_export import NETWORK_MODES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model id or ONNX package (.json/.onnx)")
    parser.add_argument("--out", required=True, help="folder for the config, labels and ONNX (created)")
    parser.add_argument("--name", default="fer", help="file name stem (default: fer)")
    parser.add_argument("--precision", choices=("fp32", "fp16", "int8"), default=None,
                        help="which of the model's packages, when it has several (default: FP32 ONNX)")
    parser.add_argument("--network-mode", choices=sorted(NETWORK_MODES), default="fp32",
                        help="precision nvinfer builds its engine in (default fp32)")
    parser.add_argument("--batch-size", type=int, default=None, help="faces per batch (default: the sidecar's max)")
    parser.add_argument("--detector-gie-id", type=int, default=1, help="gie-unique-id of the primary face detector")
    parser.add_argument("--face-class-id", type=int, default=0, help="the detector's class id for faces")
    parser.add_argument("--gie-id", type=int, default=2, help="gie-unique-id of this classifier")
    parser.add_argument("--threshold", type=float, default=0.0,
                        help="classifier-threshold on the top probability (default 0: always label, like the SDK)")
    parser.add_argument("--min-face", type=int, default=20, help="input-object-min-width/height in pixels")


def run(args: argparse.Namespace) -> int:
    from fer_edge.builder.deepstream_export import export_deepstream

    config = export_deepstream(args.model, args.out, args.name, args.precision, args.network_mode, args.batch_size,
                               args.detector_gie_id, args.face_class_id, args.gie_id, args.threshold, args.min_face)
    print(f"wrote {config} (+ {args.name}.onnx, {args.name}_labels.txt)")
    print("use it as the secondary GIE after your face detector, e.g. in a deepstream-app config:\n"
          f"  [secondary-gie0]\n  enable=1\n  gie-unique-id={args.gie_id}\n  operate-on-gie-id={args.detector_gie_id}\n"
          f"  config-file={config.resolve()}")
    print("note: nvinfer crops boxes without alignment (about 4 points of FER+ accuracy; see README)")
    return 0
