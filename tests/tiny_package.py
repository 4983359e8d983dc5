"""A tiny but real model package for runtime tests: conv -> relu -> global pool -> gemm, 7 logits.

Built with ``onnx.helper`` (no torch), written with ``fer_edge.package.write_package`` and run by
the real ONNX Runtime, so engine/recognizer tests exercise the true load and inference path
while the trained default package does not exist yet.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from fer_edge.constants import EXPRESSIONS_7
from fer_edge.fileio import atomic_path
from fer_edge.package import BatchRange, InputSpec, ModelPackage, Sidecar, write_package

SPEC = InputSpec(size=(48, 48), color="gray", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), alignment="fer2013")


def tiny_onnx(path: Path, spec: InputSpec = SPEC, channels: int = 8, seed: int = 0, num_classes: int = 7) -> None:
    """Write a classifier taking (N, 3, H, W) float32 and returning (N, num_classes) logits, dynamic batch."""
    rng = np.random.default_rng(seed)
    h, w = spec.size
    weights = [
        numpy_helper.from_array(rng.normal(0, 0.5, (channels, 3, 3, 3)).astype(np.float32), "conv_w"),
        numpy_helper.from_array(rng.normal(0, 0.1, channels).astype(np.float32), "conv_b"),
        numpy_helper.from_array(rng.normal(0, 1.0, (num_classes, channels)).astype(np.float32), "fc_w"),
        numpy_helper.from_array(rng.normal(0, 0.1, num_classes).astype(np.float32), "fc_b"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "conv_w", "conv_b"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "tiny_fer",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, h, w])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", num_classes])],
        initializer=weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))


def make_package(folder: Path, stem: str = "tiny", spec: InputSpec = SPEC, max_batch: int = 4,
                 metrics: dict[str, float] | None = None, precision: str = "fp32", seed: int = 0,
                 classes: tuple[str, ...] = EXPRESSIONS_7) -> ModelPackage:
    """Write ``folder/<stem>.onnx`` + ``<stem>.json`` and return the package."""
    model = folder / f"{stem}.onnx"
    tiny_onnx(model, spec, seed=seed, num_classes=len(classes))
    sidecar = Sidecar(model_id="tiny", variant="edge", classes=classes, input=spec, format="onnx",
                      file=model.name, precision=precision, batch=BatchRange(1, min(2, max_batch), max_batch),
                      opset=17, metrics=metrics or {})
    return write_package(model, sidecar)
