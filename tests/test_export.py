"""Export of every zoo model (edge variant, small input) in both forms, checked on ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fer_edge.builder.calibration import parity_faces
from fer_edge.builder.export import _scope_of, export_model
from fer_edge.builder.quantize import predict
from fer_edge.builder.recipes import list_recipes, load_recipe
from fer_edge.errors import ExportError, ModelNotFoundError
from fer_edge.models import create_model, list_models
from fer_edge.package import BatchRange, InputSpec

SPEC = InputSpec(size=(48, 48))


@pytest.fixture(scope="module", params=list_models())
def exported(request: pytest.FixtureRequest):
    torch.manual_seed(0)
    model = create_model(request.param, variant="edge", in_size=SPEC.size).eval()
    faces, origin = parity_faces(SPEC, count=4)
    return request.param, model, faces, export_model(model, SPEC, BatchRange(1, 4, 8), 17, faces, origin)


def test_portable_form_runs_on_onnxruntime_and_matches_pytorch(exported) -> None:
    _, model, faces, result = exported
    graph = result.portable.graph
    assert [i.name for i in graph.input] == ["input"] and [o.name for o in graph.output] == ["logits"]
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch
    assert {o.domain for o in result.portable.opset_import} <= {"", "ai.onnx"}
    assert all(n.domain in ("", "ai.onnx") for n in graph.node), "the portable form must use standard ops only"
    assert result.opset == 17 and any(o.version == 17 for o in result.portable.opset_import if o.domain == "")
    with torch.no_grad():
        expected = model(torch.from_numpy(faces)).numpy()
    for batch in (1, 3):
        got = predict(result.portable, faces[:batch])
        assert np.abs(got - expected[:batch]).max() < 1e-4
    assert result.parity_max_abs < 1e-4


def test_plugin_form_matches_the_recipe(exported) -> None:
    model_id, _, _, result = exported
    wanted = load_recipe(model_id).plugins
    if not wanted:
        assert result.plugin is None
        return
    ops = {n.op_type for n in result.plugin.graph.node if n.domain == "fer_edge"}
    assert ops == set(wanted)


def test_recipes_exist_for_every_zoo_model() -> None:
    assert set(list_models()) <= set(list_recipes())
    with pytest.raises(ModelNotFoundError, match="did you mean simam_resnet"):
        load_recipe("simam_resnett")


def test_scope_names_follow_the_torchscript_exporter() -> None:
    assert _scope_of("simam_first") == "/simam_first"
    assert _scope_of("layers.0.simam") == "/layers/layers.0/simam"
    assert _scope_of("stages.2.blocks.1.cc.core") == "/stages/stages.2/blocks/blocks.1/cc/core"


def test_parity_failure_is_an_export_error() -> None:
    class Drifting(torch.nn.Module):
        """Different in eval calls: tracing sees one value, the parity run another."""

        def __init__(self) -> None:
            super().__init__()
            self.calls = 0
            self.fc = torch.nn.Linear(3, 7)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            return self.fc(x.mean(dim=(2, 3))) + float(self.calls)

    faces = np.zeros((2, 3, 16, 16), np.float32)
    with pytest.raises(ExportError, match="differs from PyTorch"):
        export_model(Drifting(), InputSpec(size=(16, 16)), BatchRange(1, 2, 4), faces=faces)


def test_fp16_weight_storage_halves_the_file_and_keeps_fp32_compute(exported) -> None:
    from fer_edge.builder.export import FP16_WEIGHTS_RTOL, store_weights_fp16

    _, _, faces, result = exported
    stored, err = store_weights_fp16(result.portable, faces)
    import onnx

    large = [i for i in stored.graph.initializer if np.prod(i.dims) >= 1024]
    assert large and all(i.data_type == onnx.TensorProto.FLOAT16 for i in large)
    assert stored.ByteSize() < result.portable.ByteSize()
    casts = [n for n in stored.graph.node if n.op_type == "Cast"]
    assert casts and all(a.i == 1 for n in casts for a in n.attribute if a.name == "to")  # back to FLOAT
    got, expected = predict(stored, faces), predict(result.portable, faces)
    assert err <= FP16_WEIGHTS_RTOL
    assert np.abs(got - expected).max() / max(1.0, np.abs(expected).max()) == pytest.approx(err, rel=1e-3, abs=1e-7)
    assert (got.argmax(1) == expected.argmax(1)).mean() >= 0.75
