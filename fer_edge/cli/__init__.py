"""The ``fer-edge`` command: a thin dispatcher over subcommand modules.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``
(its one-line help is in :data:`COMMANDS`); modules are imported only when their subcommand runs,
so ``fer-edge run`` never imports torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from fer_edge._version import __version__
from fer_edge.errors import FerEdgeError

# subcommand -> (module, one-line help); the help is here so `fer-edge -h` imports nothing heavy
COMMANDS: dict[str, tuple[str, str]] = {
    "export": ("fer_edge.cli.export", "export a checkpoint or zoo model to ONNX (portable + plugin form)"),
    "calibrate": ("fer_edge.cli.calibrate", "build an INT8 calibration set and report FP32 -> INT8 accuracy"),
    "build": ("fer_edge.cli.build", "build a model package: TensorRT engine or ONNX (FP32/FP16/INT8) + sidecar"),
    "models": ("fer_edge.cli.models", "list the model zoo with measured parameters and FLOPs"),
    "run": ("fer_edge.cli.run", "recognise expressions in images, a folder, a video or a camera"),
    "info": ("fer_edge.cli.info", "versions (SDK, ONNX Runtime, TensorRT, CUDA, GPU, plugins) and models found"),
    "train": ("fer_edge.cli.train", "train a zoo model (FER+, RAF-DB, FER2013, AffectNet, folders); torchrun-ready"),
    "eval": ("fer_edge.cli.eval", "evaluate a checkpoint, ONNX/INT8 package or engine: accuracy, F1, confusion"),
    "bench": ("fer_edge.cli.bench", "benchmark a model (latency, faces/s, memory, load time) or the whole pipeline"),
    "explain": ("fer_edge.cli.explain", "Grad-CAM heatmaps of each face's expression (PyTorch), with the top-3 classes"),
    "serve": ("fer_edge.cli.serve", "serve live expression events, a page and an image endpoint over HTTP/WebSocket"),
    "export-triton": ("fer_edge.cli.export_triton", "write a Triton Inference Server model repository for a package"),
    "export-deepstream": ("fer_edge.cli.export_deepstream", "write a DeepStream nvinfer secondary-classifier config"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fer-edge", description="Facial-expression recognition at the edge.")
    parser.add_argument("--version", action="version", version=f"fer_edge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] not in COMMANDS:
        parser.parse_args(argv or ["-h"])  # prints help / version / "invalid choice" and exits
        return 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    sub = argparse.ArgumentParser(prog=f"fer-edge {argv[0]}", description=COMMANDS[argv[0]][1])
    module.add_arguments(sub)
    args = sub.parse_args(argv[1:])
    try:
        return int(module.run(args) or 0)
    except FerEdgeError as exc:
        print(f"fer-edge {argv[0]}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"fer-edge {argv[0]}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
