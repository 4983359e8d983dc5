"""Benchmarkable engines for zoo model ids, built on demand into a cache.

Speed depends on the architecture, input size and precision, not on the weight values, so a
zoo id is measured with the zoo's (untrained) weights: FP32 and INT8 ONNX packages are built
once into ``$FER_EDGE_HOME/bench/`` with the same export and quantization code as
``fer-edge build`` and reused by later runs. INT8 quantizes every region (SimAM / CC Attention
included) and keeps in FP32 the op groups measured as slower in int8, as ``fer-edge build`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fer_edge.builder.recipes import load_recipe
from fer_edge.constants import classes_for
from fer_edge.engines.base import Engine
from fer_edge.engines.resolve import cache_dir
from fer_edge.errors import FerEdgeError, InvalidInputError
from fer_edge.fileio import atomic_path
from fer_edge.package import InputSpec, ModelPackage, Sidecar, load_package, write_package

CALIBRATION_FACES = 32  # enough for stable min/max ranges; accuracy is not what is measured here
CALIBRATION_METHOD = "minmax"
ONNX_PRECISIONS = ("fp32", "int8")
PAPER_SIZE = (224, 224)  # the papers' input size; edge sizes come from the export recipes


def bench_cache() -> Path:
    """Where benchmark packages are kept: ``$FER_EDGE_HOME/bench`` (default ``~/.cache/fer_edge/bench``)."""
    return cache_dir().parent / "bench"


def _zoo_model(model_id: str, variant: str, in_size: tuple[int, int]) -> tuple[Any, InputSpec]:
    from fer_edge.models import create_model

    model = create_model(model_id, num_classes=7, variant=variant, in_size=in_size).eval()
    cfg = model.default_cfg
    spec = InputSpec(size=tuple(cfg["in_size"]), color=cfg["color"], mean=tuple(cfg["mean"]),  # type: ignore[arg-type]
                     std=tuple(cfg["std"]))  # type: ignore[arg-type]
    return model, spec


def default_size(model_id: str, variant: str) -> tuple[int, int]:
    """The edge variant's deployment size from its export recipe; 224x224 for the paper variants."""
    return load_recipe(model_id).in_size if variant == "edge" else PAPER_SIZE


def zoo_package(model_id: str, variant: str = "edge", in_size: tuple[int, int] | None = None,
                precision: str = "fp32", folder: Path | None = None,
                log: Callable[[str], None] | None = None) -> ModelPackage:
    """An ONNX package of ``model_id`` for benchmarking, built into ``folder`` unless already there
    (a cached package is returned without importing torch)."""
    if precision not in ONNX_PRECISIONS:
        raise InvalidInputError(f"a zoo model is benchmarked as an ONNX package in fp32 or int8, not {precision!r}; "
                                "build a TensorRT engine with `fer-edge build --target tensorrt` and bench that "
                                "package")
    height, width = in_size or default_size(model_id, variant)
    from fer_edge.builder.export import EXPORT_REVISION

    path = (folder or bench_cache()) / f"{model_id}_{variant}_{height}x{width}_{precision}_r{EXPORT_REVISION}.onnx"
    if path.with_suffix(".json").is_file():
        try:
            return load_package(path)
        except FerEdgeError:
            pass  # an interrupted or stale build: rebuild it below
    if log:
        log(f"building {path.name} (untrained zoo weights: speed does not depend on them)")
    import onnx

    from fer_edge.builder.calibration import parity_faces
    from fer_edge.builder.export import export_model

    recipe = load_recipe(model_id)
    model, spec = _zoo_model(model_id, variant, (height, width))
    faces, origin = parity_faces(spec)
    exported = export_model(model, spec, recipe.batch, recipe.opset, faces, origin, recipe.parity_atol)
    graph, calibration = exported.portable, None
    if precision == "int8":
        from fer_edge.builder.quantize import quantize_int8

        tensors, origin = parity_faces(spec, CALIBRATION_FACES)
        quant = quantize_int8(graph, tensors, None, CALIBRATION_METHOD, exported.sites,
                              keep_regions_float=False, target="onnxruntime")
        graph = quant.model
        calibration = {"method": CALIBRATION_METHOD, "num_images": len(tensors), "source": origin,
                       "regions_float": False, "purpose": "benchmark", "op_selection": quant.selection}
    sidecar = Sidecar(model_id=model_id, variant=variant, classes=classes_for(7), input=spec, format="onnx",
                      file=path.name, precision=precision, batch=recipe.batch, opset=recipe.opset,
                      calibration=calibration, training={"weights": "untrained zoo weights (benchmark only)"})
    with atomic_path(path) as tmp:
        onnx.save(graph, str(tmp))
    return write_package(path, sidecar)


def zoo_torch_engine(model_id: str, variant: str = "edge", in_size: tuple[int, int] | None = None) -> Engine:
    """PyTorch eager on the zoo model, the reference the exported packages are compared with."""
    from fer_edge.engines.torch import TorchEngine

    recipe = load_recipe(model_id)
    model, spec = _zoo_model(model_id, variant, in_size or default_size(model_id, variant))
    name = f"{model_id}_{variant}_{spec.size[0]}x{spec.size[1]}.pt"
    sidecar = Sidecar(model_id=model_id, variant=variant, classes=classes_for(7), input=spec, format="torch",
                      file=name, batch=recipe.batch)
    virtual = Path("<zoo>") / name  # in memory only: nothing is written for the eager model
    return TorchEngine(ModelPackage(sidecar, virtual, virtual.with_suffix(".json")), model)
