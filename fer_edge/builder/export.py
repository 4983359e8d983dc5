"""PyTorch model -> ONNX in both forms from ONE export (issue 4).

The model is traced once (TorchScript exporter, ``dynamo=False``: torch 2.13's dynamo exporter
needs ``onnxscript``, which this SDK does not depend on) with every plugin-seam class
(``plugin_op``, docs/DEV_CONTRACTS.md) exported as an ONNX local function. That graph, simplified,
is the *functional* graph: it runs on ONNX Runtime as is and its function-call nodes mark exactly
the SimAM / CC Attention regions. The *portable* form inlines the functions; the *plugin* form
replaces each call by its TensorRT plugin node (:mod:`fer_edge.builder.surgery`). Both are
checked with ``onnx.checker``; the portable form is compared with PyTorch on real faces.
"""

from __future__ import annotations

import io
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fer_edge.builder.fold import fold_space_to_depth
from fer_edge.builder.surgery import PluginSite, prune_opsets, to_plugin_form
from fer_edge.errors import ExportError
from fer_edge.package import BatchRange, InputSpec

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
# Bumped whenever an export of the same model gives a different graph (2: the SC stem folded),
# so cached benchmark exports (fer_edge.bench.zoo) are rebuilt rather than reused.
EXPORT_REVISION = 2


@dataclass
class ExportResult:
    """Both graph forms of one export, plus what the checks measured."""

    portable: Any  # onnx.ModelProto
    plugin: Any | None  # onnx.ModelProto, None when the model has no plugin seam
    opset: int
    batch: BatchRange
    parity_max_abs: float
    parity_faces: str  # "ferplus-valid" | "synthetic"
    sites: list[PluginSite] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def _timed(timings: dict[str, float], step: str, fn: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    result = fn()
    timings[step] = round(time.perf_counter() - start, 3)
    return result


def _scope_of(qualified_name: str) -> str:
    """The TorchScript exporter's scope string of a module (``layers.0.simam`` ->
    ``/layers/layers.0/simam``): each level is its qualified name from the last non-numeric atom."""
    atoms = qualified_name.split(".")
    levels = []
    for end in range(1, len(atoms) + 1):
        start = end - 1
        while start > 0 and atoms[start].isnumeric():
            start -= 1
        levels.append(".".join(atoms[start:end]))
    return "/" + "/".join(levels)


def _plugin_modules(model: Any) -> dict[str, Any]:
    """Scope string -> module, for every module whose class is a plugin seam."""
    return {_scope_of(name): module for name, module in model.named_modules()
            if name and isinstance(getattr(type(module), "plugin_op", None), str)}


def _simplify(model: Any) -> Any:
    import onnxsim

    simplified, ok = onnxsim.simplify(model)
    if not ok:
        raise ExportError("onnxsim could not validate the simplified graph against the exported one")
    return simplified


def onnx_session(model: Any) -> Any:
    """A one-thread CPU session on an in-memory graph, for the builder's checks."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def relative_max_diff(got: np.ndarray, expected: np.ndarray) -> float:
    """Max-abs difference of two logit arrays, relative to their magnitude when that exceeds 1."""
    return float(np.abs(got - expected).max()) / max(1.0, float(np.abs(expected).max()))


def _closest(names: list[str], values: dict[str, np.ndarray], target: np.ndarray) -> str:
    """The tensor name whose ONNX Runtime value is nearest (max-abs) to ``target``."""
    def distance(name: str) -> float:
        value = values[name]
        return float(np.abs(value - target).max()) if value.shape == target.shape else float("inf")
    return min(names, key=distance)


def _locate_sites(functional: Any, torch_model: Any, probe: np.ndarray) -> list[PluginSite]:
    """Match each function-call node to its module and to the module's forward-argument order.

    The exporter orders a function's inputs by first use, not by ``forward``'s signature, so for
    multi-input seams (CC Attention: X, Q, K, V) the node's input tensors are matched to the
    arguments PyTorch passed (captured by pre-hooks on the same probe batch) by value.
    """
    import onnx
    import torch

    modules = _plugin_modules(torch_model)
    calls = [n for n in functional.graph.node if any(f.name == n.op_type and f.domain == n.domain
                                                      for f in functional.functions)]
    # the exporter lifts constants used inside a function (e.g. reduction axes) to extra inputs
    constants = {t.name for t in functional.graph.initializer} | {
        o for n in functional.graph.node if n.op_type == "Constant" for o in n.output}
    data_inputs = {n.name: [i for i in n.input if i not in constants] for n in calls}
    sites: list[PluginSite] = []
    captured: dict[str, list[np.ndarray]] = {}
    handles: list[Any] = []
    for node in calls:
        scope = node.name.rsplit("/", 1)[0]
        if scope not in modules:
            raise ExportError(f"function node {node.name!r} matches no plugin module (scopes: {sorted(modules)})")
    def capture(scope: str) -> Callable[..., None]:
        def hook(_module: Any, args: tuple[Any, ...]) -> None:  # returns None: arguments stay unchanged
            captured.setdefault(scope, [a.detach().numpy() for a in args])
        return hook

    for scope, module in modules.items():
        handles.append(module.register_forward_pre_hook(capture(scope)))
    try:
        with torch.no_grad():
            torch_model(torch.from_numpy(probe))
    finally:
        for handle in handles:
            handle.remove()
    wanted = sorted({name for node in calls if len(data_inputs[node.name]) > 1 for name in data_inputs[node.name]})
    values: dict[str, np.ndarray] = {}
    if wanted:
        probed = onnx.ModelProto()
        probed.CopyFrom(functional)
        probed.graph.output.extend(onnx.helper.make_empty_tensor_value_info(name) for name in wanted)
        outputs = onnx_session(probed).run(wanted, {INPUT_NAME: probe})
        values = dict(zip(wanted, outputs))
    for node in calls:
        scope = node.name.rsplit("/", 1)[0]
        module, args = modules[scope], captured.get(scope)
        inputs = data_inputs[node.name]
        if args is None or len(args) != len(inputs):
            raise ExportError(f"{scope}: its graph region takes {len(inputs)} tensors but the module was called "
                              f"with {None if args is None else len(args)} during export")
        order = inputs
        if len(order) > 1:
            order = [_closest(inputs, values, arg) for arg in args]
            if len(set(order)) != len(order):
                raise ExportError(f"{scope}: cannot tell its inputs apart (two arguments carry equal values)")
        sites.append(PluginSite(node.name, str(type(module).plugin_op), dict(module.plugin_attrs()), order,
                                list(node.output)))
    return sites


def export_model(model: Any, spec: InputSpec, batch: BatchRange, opset: int = 17, faces: np.ndarray | None = None,
                 faces_source: str = "synthetic", parity_atol: float = 1e-4) -> ExportResult:
    """Export ``model`` (a zoo ``nn.Module``) to the portable and, where it has plugin seams, plugin form.

    ``faces`` is a preprocessed NCHW float32 batch (real faces where available, see
    :func:`fer_edge.builder.calibration.parity_faces`); the portable graph must match PyTorch on it
    within ``parity_atol`` (max-abs, relative to the logits' magnitude when that exceeds 1),
    else :class:`ExportError`.
    """
    import onnx
    import onnx.inliner
    import torch

    timings: dict[str, float] = {}
    model = model.eval()
    height, width = spec.size
    if faces is None:
        faces = np.random.default_rng(0).standard_normal((4, 3, height, width)).astype(np.float32)
    seam_classes = {type(m) for m in _plugin_modules(model).values()}
    buffer = io.BytesIO()
    example = torch.from_numpy(faces[:2])

    def trace() -> None:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(model, (example,), buffer,  # type: ignore[arg-type]
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              opset_version=opset, dynamo=False, do_constant_folding=True,
                              dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                              export_modules_as_functions=seam_classes or False)

    try:
        _timed(timings, "trace", trace)
    except Exception as exc:  # torch raises many types here; the message is what helps
        raise ExportError(f"torch.onnx.export failed for {type(model).__name__}: {exc}") from exc
    raw = onnx.load_from_string(buffer.getvalue())
    functional = _timed(timings, "simplify", lambda: _simplify(raw))
    portable = functional
    if functional.functions:
        portable = _timed(timings, "inline", lambda: _simplify(onnx.inliner.inline_local_functions(functional)))
        prune_opsets(portable)
    portable = fold_space_to_depth(portable)[0]  # exact; the parity check below covers it
    _timed(timings, "check", lambda: onnx.checker.check_model(portable, full_check=True))

    def parity() -> float:
        with torch.no_grad():
            expected = model(torch.from_numpy(faces)).numpy()
        session = onnx_session(portable)
        got = session.run([OUTPUT_NAME], {INPUT_NAME: faces})[0]
        single = session.run([OUTPUT_NAME], {INPUT_NAME: faces[:1]})[0]  # the dynamic batch really is dynamic
        return max(relative_max_diff(got, expected), relative_max_diff(single, expected[:1]))

    err = _timed(timings, "parity", parity)
    if not np.isfinite(err) or err > parity_atol:
        raise ExportError(f"ONNX Runtime output differs from PyTorch by {err:.3g} (> tolerance {parity_atol:g}) "
                          f"on {len(faces)} {faces_source} faces: the export is not faithful")
    plugin = None
    sites: list[PluginSite] = []
    if functional.functions:
        sites = _timed(timings, "locate_plugins", lambda: _locate_sites(functional, model, faces[:2]))
        plugin = _timed(timings, "surgery", lambda: fold_space_to_depth(to_plugin_form(functional, sites))[0])
    return ExportResult(portable, plugin, opset, batch, err, faces_source, sites, timings)


FP16_WEIGHTS_RTOL = 1e-2  # stated tolerance of an fp16-stored FP32 graph vs the FP32 graph (relative max-abs)


def store_weights_fp16(model: Any, faces: np.ndarray, min_elements: int = 1024) -> tuple[Any, float]:
    """The graph with its large float initializers stored as float16, each behind a Cast.

    Why: it halves the file (the shipped models must fit the package budget) while compute stays
    FP32 — ONNX Runtime and TensorRT fold a Cast of an initializer at load time. In an INT8 graph
    this stores the weights of the ops kept in FP32; the inputs of Quantize/DequantizeLinear
    (int8 weights, scales) stay as they are, since ORT fuses Q/DQ only around initializers. Weight
    rounding changes the logits slightly, so the result is compared with ``model`` on ``faces``
    and must agree within :data:`FP16_WEIGHTS_RTOL` (relative to the logits' magnitude); returns
    the graph and that measured difference.
    """
    import onnx
    from onnx import helper, numpy_helper

    stored = onnx.ModelProto()
    stored.CopyFrom(model)
    graph = stored.graph
    initializers, casts = [], []
    quantizer_inputs = {name for node in graph.node if node.op_type in ("QuantizeLinear", "DequantizeLinear")
                        for name in node.input}
    for init in graph.initializer:
        if (init.data_type != onnx.TensorProto.FLOAT or int(np.prod(init.dims)) < min_elements
                or init.name in quantizer_inputs):
            initializers.append(init)
            continue
        half_name = f"{init.name}__fp16"
        initializers.append(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), half_name))
        casts.append(helper.make_node("Cast", [half_name], [init.name], name=f"{init.name}__to_fp32",
                                      to=onnx.TensorProto.FLOAT))
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(stored, full_check=True)
    expected = onnx_session(model).run([OUTPUT_NAME], {INPUT_NAME: faces})[0]
    got = onnx_session(stored).run([OUTPUT_NAME], {INPUT_NAME: faces})[0]
    err = relative_max_diff(got, expected)
    if not np.isfinite(err) or err > FP16_WEIGHTS_RTOL:
        raise ExportError(f"float16 weight storage changes the logits by {err:.3g} (> {FP16_WEIGHTS_RTOL:g}); "
                          "build without --fp16-weights")
    return stored, err
