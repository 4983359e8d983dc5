"""The plugin form: exactly the expected custom nodes, with the attributes the plugin creators read,
wired to the right tensors (checked numerically against the plugin formulas on the portable graph)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from fer_edge.builder.calibration import parity_faces
from fer_edge.builder.export import export_model
from fer_edge.builder.recipes import load_recipe
from fer_edge.builder.surgery import PLUGIN_INPUTS, plugin_nodes, region_nodes
from fer_edge.models import create_model, list_models
from fer_edge.package import BatchRange, InputSpec

SPEC = InputSpec(size=(32, 32))
PLUGIN_MODELS = [m for m in list_models() if load_recipe(m).plugins]


def _export(model_id: str):
    torch.manual_seed(0)
    model = create_model(model_id, variant="edge", in_size=SPEC.size).eval()
    faces, origin = parity_faces(SPEC, count=2)
    expected_modules = [m for m in model.modules() if isinstance(getattr(type(m), "plugin_op", None), str)]
    return export_model(model, SPEC, BatchRange(1, 2, 4), 17, faces, origin), expected_modules, faces


def _values(model: onnx.ModelProto, names: list[str], faces: np.ndarray) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    probed = onnx.ModelProto()
    probed.CopyFrom(model)
    probed.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in names)
    session = ort.InferenceSession(probed.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip(names, session.run(names, {"input": faces})))


def _simam(x: np.ndarray, lam: float) -> np.ndarray:
    n = max(x.shape[2] * x.shape[3] - 1, 1)
    d2 = (x - x.mean(axis=(2, 3), keepdims=True)) ** 2
    e = d2 / (4 * (d2.sum(axis=(2, 3), keepdims=True) / n + lam)) + 0.5
    return x / (1 + np.exp(-e))


def _cc(x: np.ndarray, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    logits = (k * x.mean(axis=(2, 3), keepdims=True) + q).reshape(*x.shape[:2], -1)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return x + weights.reshape(x.shape) * v


@pytest.mark.parametrize("model_id", PLUGIN_MODELS)
def test_plugin_nodes_attributes_and_wiring(model_id: str) -> None:
    result, modules, faces = _export(model_id)
    nodes = plugin_nodes(result.plugin)
    assert sorted(n.op_type for n in nodes) == sorted(type(m).plugin_op for m in modules)
    assert {o.domain: o.version for o in result.plugin.opset_import}.get("fer_edge") == 1
    assert not result.plugin.functions, "no local functions may remain in the plugin form"
    onnx.checker.check_model(result.plugin)
    for node in nodes:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert attrs.pop("plugin_version") == b"1" and attrs.pop("plugin_namespace") == b""
        assert len(node.input) == PLUGIN_INPUTS[node.op_type] and len(node.output) == 1
        if node.op_type == "SimAM_TRT":
            kind = next(a for a in node.attribute if a.name == "lambda").type
            assert kind == onnx.AttributeProto.FLOAT and set(attrs) == {"lambda"}
        else:
            assert attrs == {}
    # each plugin node's inputs (in the creator's order) and output exist in the portable graph:
    # the plugin formula applied to those inputs must reproduce the portable output
    for site in result.sites:
        values = _values(result.portable, site.inputs + site.outputs, faces)
        inputs = [values[n] for n in site.inputs]
        want = _simam(inputs[0], site.attrs["lambda"]) if site.op == "SimAM_TRT" else _cc(*inputs)
        assert np.abs(want - values[site.outputs[0]]).max() < 1e-4 * max(1.0, np.abs(want).max())
        assert region_nodes(result.portable, site)


def test_models_without_plugin_seams_have_no_plugin_form() -> None:
    plain = [m for m in list_models() if not load_recipe(m).plugins]
    if not plain:
        pytest.skip("every zoo model has plugin seams")
    result, modules, _ = _export(plain[0])
    assert modules == [] and result.plugin is None and result.sites == []
