"""``fer-edge export-deepstream``: a model package -> a DeepStream ``nvinfer`` secondary-classifier config.

nvinfer runs as a secondary GIE on the boxes of a primary face detector: it scales each box to
the network size and computes ``y = net-scale-factor * (x - offsets[c])`` per channel of 0..255
pixels, then its classifier parser takes the top *probability* above ``classifier-threshold``.
Our preprocess is ``y = (x / 255 - mean[c]) / std[c]``, so ``net-scale-factor = 1 / (255 std)``
and ``offsets[c] = 255 mean[c]`` reproduce it exactly when std is the same for every channel.
nvinfer has one scale for all channels: when std differs per channel, the remaining per-channel
factor ``std[0] / std[c]`` is folded into the exported ONNX as a Mul at its input (exact, not an
approximation). Gray models get a 1-channel input replicated to the 3 channels they were trained
on, so nvinfer's own gray conversion (``model-color-format=2``) feeds them; and the graph ends in
a Softmax, because nvinfer's classifier thresholds probabilities, not logits.

What nvinfer does not do is align: it crops the detector's box, with no landmarks. On FER+
valid the shipped default scored 89.1% on our aligned crops and 84.9% on plain YuNet box crops
(tools/measure_deepstream_crops.py; README "Fleets"). Nothing here runs DeepStream.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fer_edge.builder.fleet import (
    check_name,
    check_onnx_matches,
    copy_atomic,
    plugin_library_for,
    select_package,
    write_text_atomic,
)
from fer_edge.errors import BackendUnavailableError, ExportError
from fer_edge.fileio import atomic_path
from fer_edge.package import InputSpec, ModelPackage

# Every key nvinfer's [property] group accepts, as listed in NVIDIA DeepStream's
# sources/gst-plugins/gst-nvinfer/gstnvinfer_property_parser.h (DeepStream 6.x-7.x; the keys of
# the "Gst-nvinfer File Configuration Specifications" table, DeepStream Developer Guide,
# "Gst-nvinfer"). Tests check that every key written is one of these.
NVINFER_PROPERTY_KEYS = frozenset({
    "parse-func", "gie-unique-id", "process-mode", "interval", "labelfile-path", "gpu-id",
    "secondary-reinfer-interval", "output-tensor-meta", "enable-dla", "use-dla-core", "batch-size",
    "tensor-meta-pool-size", "network-mode", "model-engine-file", "int8-calib-file", "workspace-size",
    "output-blob-names", "is-classifier", "network-type", "force-implicit-batch-dim", "infer-dims",
    "output-io-formats", "layer-device-precision", "model-color-format", "net-scale-factor", "offsets",
    "mean-file", "maintain-aspect-ratio", "symmetric-padding", "scaling-filter", "scaling-compute-hw",
    "network-input-order", "input-tensor-from-meta", "custom-lib-path", "parse-bbox-func-name",
    "parse-bbox-instance-mask-func-name", "engine-create-func-name", "parse-classifier-func-name",
    "custom-network-config", "model-file", "proto-file", "uff-file", "uff-input-order", "input-dims",
    "uff-input-dims", "uff-input-blob-name", "tlt-encoded-model", "tlt-model-key", "onnx-file",
    "num-detected-classes", "enable-dbscan", "cluster-mode", "classifier-type", "classifier-threshold",
    "classifier-async-mode", "segmentation-threshold", "segmentation-output-order", "output-instance-mask",
    "input-object-min-width", "input-object-min-height", "input-object-max-width", "input-object-max-height",
    "operate-on-gie-id", "operate-on-class-ids", "filter-out-class-ids",
})
NETWORK_MODES = {"fp32": 0, "int8": 1, "fp16": 2}  # nvinfer network-mode values
COLOR_FORMATS = {"rgb": 0, "gray": 2}  # model-color-format: 0 RGB, 1 BGR, 2 GRAY
OUTPUT_NAME = "probabilities"


@dataclass(frozen=True)
class Normalisation:
    """nvinfer's preprocessing for a spec, and what the graph must still apply per channel."""

    net_scale_factor: float
    offsets: tuple[float, ...]
    channel_scale: tuple[float, float, float]  # multiplies nvinfer's output per model channel
    channel_shift: tuple[float, float, float]  # then added

    @property
    def exact(self) -> bool:
        """True when nvinfer's formula alone reproduces :func:`preprocess` (no graph fix needed)."""
        return all(s == 1.0 for s in self.channel_scale) and all(b == 0.0 for b in self.channel_shift)


def normalisation(spec: InputSpec) -> Normalisation:
    """``net-scale-factor`` / ``offsets`` for ``spec`` and the per-channel rest folded into the graph.

    Ours per model channel c: ``(x_c - 255 m_c) / (255 s_c)``; nvinfer's: ``k (x'_c - o_c)`` with
    one ``k = 1 / (255 s_0)``, and for gray one ``x'`` and one offset ``o_0 = 255 m_0``. Then
    ``ours = nvinfer * s_0 / s_c + (o' - 255 m_c) / (255 s_c)``: scale 1 and shift 0 when std
    (and, for gray, mean) are the same for every channel, as in every shipped model.
    """
    mean, std = np.asarray(spec.mean, dtype=np.float64), np.asarray(spec.std, dtype=np.float64)
    scale = 1.0 / (255.0 * std[0])
    offsets = 255.0 * mean if spec.color == "rgb" else 255.0 * mean[:1]
    used = offsets if spec.color == "rgb" else np.repeat(offsets, 3)
    channel_scale = std[0] / std
    channel_shift = (used - 255.0 * mean) / (255.0 * std)
    return Normalisation(float(scale), tuple(float(o) for o in offsets),
                         tuple(float(v) for v in channel_scale),  # type: ignore[arg-type]
                         tuple(float(v) for v in channel_shift))  # type: ignore[arg-type]


def deepstream_onnx(package: ModelPackage, norm: Normalisation) -> Any:
    """The package's graph as nvinfer should run it: 1-channel input for gray models, the per-channel
    normalisation rest (if any) at the input, and a Softmax output named :data:`OUTPUT_NAME`."""
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError as exc:
        raise BackendUnavailableError(f"export-deepstream needs the onnx package: pip install fer_edge[build] "
                                      f"({exc})") from exc
    side = package.sidecar
    model = onnx.load(os.fspath(package.model_path))
    graph = model.graph
    source = side.input.name
    (original,) = [v for v in graph.input if v.name == source]
    batch_dim = original.type.tensor_type.shape.dim[0].dim_param or "batch"
    feed = f"{source}_model"  # what the original graph now reads instead of its input
    for node in graph.node:
        node_inputs = [feed if name == source else name for name in node.input]
        del node.input[:]
        node.input.extend(node_inputs)
    nodes, current = [], source
    if side.input.color == "gray":
        nodes.append(helper.make_node("Concat", [source] * 3, [f"{source}_rgb"], axis=1, name="fer_gray_to_rgb"))
        current = f"{source}_rgb"
    if not norm.exact:
        for op, values in (("Mul", norm.channel_scale), ("Add", norm.channel_shift)):
            constant = numpy_helper.from_array(np.asarray(values, dtype=np.float32).reshape(1, 3, 1, 1),
                                               f"fer_channel_{op.lower()}")
            graph.initializer.append(constant)
            nodes.append(helper.make_node(op, [current, constant.name], [f"{source}_{op.lower()}"],
                                          name=f"fer_channel_{op.lower()}"))
            current = f"{source}_{op.lower()}"
    nodes.append(helper.make_node("Identity", [current], [feed], name="fer_model_input"))
    logits = side.output_name
    if side.temperature != 1.0:  # the calibrated probabilities every other backend gives
        scale = numpy_helper.from_array(np.asarray(1.0 / side.temperature, dtype=np.float32), "fer_inv_temperature")
        graph.initializer.append(scale)
        body_tail = helper.make_node("Mul", [logits, scale.name], [f"{logits}_calibrated"], name="fer_temperature")
        logits = f"{logits}_calibrated"
        graph.node.append(body_tail)
    nodes.append(helper.make_node("Softmax", [logits], [OUTPUT_NAME], axis=1, name="fer_softmax"))
    body = list(graph.node)
    del graph.node[:]
    graph.node.extend([*nodes[:-1], *body, nodes[-1]])
    channels = 1 if side.input.color == "gray" else 3
    graph.input.remove(original)
    graph.input.insert(0, helper.make_tensor_value_info(source, onnx.TensorProto.FLOAT,
                                                        [batch_dim, channels, *side.input.size]))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(OUTPUT_NAME, onnx.TensorProto.FLOAT,
                                                      [batch_dim, len(side.classes)]))
    onnx.checker.check_model(model)
    return model


def render_config(package: ModelPackage, norm: Normalisation, files: dict[str, str], batch_size: int, mode: str,
                  detector_gie_id: int, face_class_id: int, gie_id: int, threshold: float, min_face: int) -> str:
    """The nvinfer config text ([property] group) with comments saying why each choice was made."""
    side = package.sidecar
    channels = 1 if side.input.color == "gray" else 3
    properties = {
        "gpu-id": "0",
        "gie-unique-id": str(gie_id),
        "process-mode": "2",  # secondary: runs on the detector's objects
        "network-type": "1",  # classifier
        "operate-on-gie-id": str(detector_gie_id),
        "operate-on-class-ids": str(face_class_id),
        "onnx-file": files["onnx"],
        "model-engine-file": files["engine"],
        "labelfile-path": files["labels"],
        "batch-size": str(batch_size),
        "network-mode": str(NETWORK_MODES[mode]),
        "infer-dims": f"{channels};{side.input.size[0]};{side.input.size[1]}",
        "model-color-format": str(COLOR_FORMATS[side.input.color]),
        "net-scale-factor": repr(norm.net_scale_factor),
        "offsets": ";".join(repr(o) for o in norm.offsets),
        "maintain-aspect-ratio": "0",  # the box is stretched to the input, as measured in README "Fleets"
        "scaling-filter": "1",  # bilinear (NvBufSurfTransformInter_Bilinear), not nearest
        "output-blob-names": OUTPUT_NAME,
        "classifier-threshold": repr(float(threshold)),
        "input-object-min-width": str(min_face),  # the Recognizer's default min_face
        "input-object-min-height": str(min_face),
    }
    if "plugin" in files:
        properties["custom-lib-path"] = files["plugin"]
    header = [
        f"# nvinfer secondary classifier written by fer_edge {side.fer_edge_version} from {package.sidecar_path.name}",
        f"# ({side.model_id} {side.variant}, {side.format} {side.precision}, sha256 {side.sha256[:12]}).",
        "# The ONNX ends in a Softmax: nvinfer's classifier thresholds probabilities.",
        "# net-scale-factor/offsets reproduce fer_edge.vision.preprocess"
        + ("." if norm.exact else "; the per-channel rest is folded into the ONNX input."),
        "# nvinfer crops detector boxes without landmark alignment; on FER+ valid the shipped default",
        "# lost ~4 points that way (89.1% aligned -> 84.9% box crops; README, Fleets: Triton and DeepStream).",
        "[property]",
    ]
    return "\n".join(header + [f"{k}={v}" for k, v in properties.items()]) + "\n"


def export_deepstream(model: str | os.PathLike[str], out: str | os.PathLike[str], name: str = "fer",
                      precision: str | None = None, mode: str = "fp32", batch_size: int | None = None,
                      detector_gie_id: int = 1, face_class_id: int = 0, gie_id: int = 2, threshold: float = 0.0,
                      min_face: int = 20) -> Path:
    """Write ``<name>.onnx``, ``<name>_labels.txt`` and ``config_infer_secondary_<name>.txt`` (plus the
    plugin library when the graph needs it) into ``out``; return the config's path.

    ``mode`` is the precision nvinfer builds its engine in (``network-mode``); FP32 by default
    because some layers overflow in FP16 (FACTS.md) and a 48x48 classifier is cheap either way.
    """
    check_name(name)
    if mode not in NETWORK_MODES:
        raise ExportError(f"network mode must be one of {sorted(NETWORK_MODES)}, got {mode!r}")
    if not 0.0 <= threshold < 1.0 or min_face < 1:
        raise ExportError(f"need 0 <= threshold < 1 and min_face >= 1, got {threshold}, {min_face}")
    package = select_package(model, precision)
    side = package.sidecar
    if side.format != "onnx":
        raise ExportError(f"{package.model_path.name} is a TensorRT engine: nvinfer needs a Softmax output and, for "
                          "gray models, a 1-channel input, which an engine cannot be given afterwards; export the "
                          "model's ONNX package instead (nvinfer builds and caches its own engine from it)")
    if side.precision == "int8":
        warnings.warn(f"{package.model_path.name} is an ONNX Runtime INT8 package; TensorRT wants symmetric INT8 "
                      "Q/DQ: prefer the FP32 package, or one from `fer-edge build --target tensorrt --int8 "
                      "--onnx-only`", stacklevel=2)
    check_onnx_matches(package)
    batch = batch_size or side.batch.max
    if batch < 1:
        raise ExportError(f"batch size must be >= 1, got {batch}")
    norm = normalisation(side.input)
    folder = Path(out)
    files = {"onnx": f"{name}.onnx", "labels": f"{name}_labels.txt",
             "engine": f"{name}.onnx_b{batch}_gpu0_{mode}.engine"}  # the name nvinfer saves its built engine as
    plugin = plugin_library_for(package)
    graph = deepstream_onnx(package, norm)
    if plugin is not None:
        warnings.warn("nvinfer dlopens custom-lib-path: fer_edge's plugin library registers its plugins that way "
                      "only in its TensorRT 8.x build (DeepStream 6.x); the TensorRT 10+ build registers only through "
                      "IPluginRegistry::loadLibrary (cpp/README.md), so prefer the portable ONNX there", stacklevel=2)
        files["plugin"] = plugin.name
        copy_atomic(plugin, folder / plugin.name)
    import onnx  # present: deepstream_onnx needed it

    with atomic_path(folder / files["onnx"]) as tmp:
        onnx.save(graph, os.fspath(tmp))
    write_text_atomic(folder / files["labels"], ";".join(side.classes) + "\n")  # a classifier's labels: one line
    config = folder / f"config_infer_secondary_{name}.txt"
    write_text_atomic(config, render_config(package, norm, files, batch, mode, detector_gie_id, face_class_id, gie_id,
                                            threshold, min_face))
    return config
