"""``fer-edge export``: PyTorch checkpoint or zoo id -> ONNX (portable and plugin forms), parity-checked."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="zoo id or checkpoint (.pt)")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the recipe's, 17)")
    parser.add_argument("--batch", default=None, metavar="MIN:OPT:MAX", help="dynamic batch range (default: recipe)")
    parser.add_argument("-o", "--out", default=None, help="portable ONNX path; the plugin form gets a .plugin.onnx twin")


def run(args: argparse.Namespace) -> int:
    import onnx

    from fer_edge.builder.calibration import parity_faces
    from fer_edge.builder.export import export_model
    from fer_edge.builder.pipeline import load_source
    from fer_edge.errors import ExportError
    from fer_edge.fileio import atomic_path
    from fer_edge.package import BatchRange

    source = load_source(args.model)
    if source.torch_model is None:
        raise ExportError(f"{args.model} is already ONNX: export takes a zoo id or a checkpoint (.pt)")
    batch = BatchRange.parse(args.batch) if args.batch else source.recipe.batch
    faces, origin = parity_faces(source.spec)
    result = export_model(source.torch_model, source.spec, batch, args.opset or source.recipe.opset, faces, origin,
                          source.recipe.parity_atol)
    out = Path(args.out or f"{source.model_id}.onnx")
    written = [(out, result.portable)]
    if result.plugin is not None:
        written.append((out.with_suffix(".plugin.onnx"), result.plugin))
    for path, model in written:
        with atomic_path(path) as tmp:
            onnx.save(model, str(tmp))
        print(f"wrote {path}")
    print(f"parity vs PyTorch on {len(faces)} {origin} faces: max |diff| {result.parity_max_abs:.2e}; "
          f"steps (s): {result.timings}")
    print(f"next: fer-edge build --model {source.model_id if args.model == source.model_id else args.model} --int8")
    return 0
