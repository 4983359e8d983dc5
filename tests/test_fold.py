"""The space-to-depth fold: SC's four sub-grids + 1x1 conv become one 2x2 stride-2 conv, exactly."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from fer_edge.builder.calibration import parity_faces
from fer_edge.builder.export import export_model, store_weights_fp16
from fer_edge.builder.fold import fold_checked, fold_space_to_depth
from fer_edge.builder.quantize import predict
from fer_edge.models import create_model
from fer_edge.package import BatchRange, InputSpec

BIG = 2**62


def _sc_graph(chs: int = 4, size: int = 8, extra_user: bool = False, step: int = 2) -> onnx.ModelProto:
    """input -> 3x3 conv (3 -> chs) -> four sub-grid Slices -> Concat -> 1x1 conv (4 chs -> chs) -> logits."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((chs, 3, 3, 3)).astype(np.float32), "w_stem"),
             numpy_helper.from_array(rng.standard_normal((chs, 4 * chs, 1, 1)).astype(np.float32), "w_sc"),
             numpy_helper.from_array(rng.standard_normal(chs).astype(np.float32), "b_sc"),
             numpy_helper.from_array(np.array([BIG, BIG], np.int64), "ends"),
             numpy_helper.from_array(np.array([2, 3], np.int64), "axes"),
             numpy_helper.from_array(np.array([step, step], np.int64), "steps")]
    nodes = [helper.make_node("Conv", ["input", "w_stem"], ["stem"], pads=[1, 1, 1, 1], name="stem")]
    grids = []
    for row, col in ((0, 0), (1, 0), (0, 1), (1, 1)):
        inits.append(numpy_helper.from_array(np.array([row, col], np.int64), f"start_{row}{col}"))
        nodes.append(helper.make_node("Slice", ["stem", f"start_{row}{col}", "ends", "axes", "steps"], [f"g{row}{col}"]))
        grids.append(f"g{row}{col}")
    nodes += [helper.make_node("Concat", grids, ["cat"], axis=1),
              helper.make_node("Conv", ["cat", "w_sc", "b_sc"], ["sc"], kernel_shape=[1, 1], name="sc_conv"),
              helper.make_node("GlobalAveragePool", ["sc"], ["pooled"]),
              helper.make_node("Flatten", ["pooled"], ["logits"])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", chs])]
    if extra_user:  # the concatenated map is also a graph output: folding would lose it
        outputs.append(helper.make_tensor_value_info("cat", TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "sc", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                          ["batch", 3, size, size])],
                              outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _faces(size: int = 8) -> np.ndarray:
    return np.random.default_rng(1).standard_normal((3, 3, size, size)).astype(np.float32)


def test_fold_turns_subgrids_and_1x1_conv_into_one_strided_conv_with_the_same_logits() -> None:
    model = _sc_graph()
    folded, count = fold_space_to_depth(model)
    onnx.checker.check_model(folded, full_check=True)
    assert count == 1
    ops = [n.op_type for n in folded.graph.node]
    assert "Slice" not in ops and "Concat" not in ops
    conv = next(n for n in folded.graph.node if n.name == "sc_conv")
    attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
    assert attrs["kernel_shape"] == [2, 2] and attrs["strides"] == [2, 2]
    assert {i.name for i in folded.graph.initializer} == {"w_stem", "w_sc", "b_sc"}  # slice constants dropped
    np.testing.assert_allclose(predict(folded, _faces()), predict(model, _faces()), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("change", ["extra_user", "step"])
def test_fold_leaves_other_patterns_alone(change: str) -> None:
    model = _sc_graph(extra_user=change == "extra_user", step=3 if change == "step" else 2)
    assert fold_space_to_depth(model)[1] == 0


def test_fold_rearranges_float16_stored_weights_behind_their_cast() -> None:
    stored, _ = store_weights_fp16(_sc_graph(chs=16), _faces(), min_elements=64)
    assert any(n.op_type == "Cast" for n in stored.graph.node)
    folded, count = fold_checked(stored, _faces())
    assert count == 1
    half = next(i for i in folded.graph.initializer if i.name == "w_sc__fp16")
    assert half.data_type == TensorProto.FLOAT16 and list(half.dims) == [16, 16, 2, 2]
    np.testing.assert_allclose(predict(folded, _faces()), predict(stored, _faces()), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("size", [48, 45])
def test_simam_resnet_exports_its_sc_stem_folded(size: int) -> None:
    """Even and odd inputs (odd ones are padded before the sub-grids): no Slice left, PyTorch parity held."""
    torch.manual_seed(0)
    spec = InputSpec(size=(size, size))
    model = create_model("simam_resnet", variant="edge", in_size=spec.size).eval()
    faces, origin = parity_faces(spec, count=2)
    result = export_model(model, spec, BatchRange(1, 2, 4), 17, faces, origin)
    ops = [n.op_type for n in result.portable.graph.node]
    assert "Slice" not in ops and "Concat" not in ops
    assert any(n.op_type == "Conv" and [2, 2] in [helper.get_attribute_value(a) for a in n.attribute]
               for n in result.portable.graph.node)
    with torch.no_grad():
        expected = model(torch.from_numpy(faces)).numpy()
    assert np.abs(predict(result.portable, faces) - expected).max() < 1e-4
