"""``fer-edge export-triton``: write a Triton Inference Server model repository for a model package."""

from __future__ import annotations

import argparse

from fer_edge.builder.triton_export import DEFAULT_QUEUE_DELAY_US


def _gpus(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--gpus takes GPU indices like 0,1, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model id or ONNX / engine package (.json/.onnx/.engine)")
    parser.add_argument("--out", required=True, help="model repository folder (created; other models in it are kept)")
    parser.add_argument("--name", default="fer", help="model name in the repository (default: fer)")
    parser.add_argument("--precision", choices=("fp32", "fp16", "int8"), default=None,
                        help="which of the model's packages, when it has several (default: FP32 ONNX)")
    parser.add_argument("--max-batch", type=int, default=None, help="max_batch_size (default: the sidecar's batch max)")
    parser.add_argument("--instances", type=int, default=1, help="model instances per GPU (instance_group count)")
    parser.add_argument("--gpus", type=_gpus, default=None, help="GPU indices, e.g. 0,1 (default: all)")
    parser.add_argument("--cpu", action="store_true", help="serve on CPU (KIND_CPU; ONNX packages only)")
    parser.add_argument("--queue-delay-us", type=int, default=DEFAULT_QUEUE_DELAY_US,
                        help=f"dynamic batching max_queue_delay_microseconds (default {DEFAULT_QUEUE_DELAY_US})")


def run(args: argparse.Namespace) -> int:
    from fer_edge.builder.triton_export import export_triton

    done = export_triton(args.model, args.out, args.name, args.max_batch, args.instances, args.gpus, args.cpu,
                         args.precision, args.queue_delay_us)
    for note in done.warnings:
        print(f"warning: {note}")
    print(f"wrote {done.model_dir} from {done.package.sidecar_path.name} "
          f"({done.package.sidecar.format} {done.package.sidecar.precision})")
    print(f"serve it (needs a GPU and docker; not run by fer-edge):\n  {done.start_command}")
    print(f"then: Recognizer(model={str(done.package.sidecar_path)!r}, backend='triton', "
          f"url='localhost:8000/v2/models/{done.model_dir.name}')")
    return 0
