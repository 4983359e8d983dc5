"""The TensorRT flavour of INT8 Q/DQ, scanned on every zoo model: the graph TensorRT's ONNX parser
would get from ``fer-edge build --int8 --target tensorrt`` (or ``--onnx-only``).

TensorRT's dequantize layer takes INT8 (FP8, INT4) inputs only and wants symmetric quantization,
so: every DequantizeLinear input is INT8 (no INT32 bias DQ, onnx/onnx-tensorrt#850), every zero
point is 0, and Conv/Gemm weights are per-channel on axis 0 (output channels). This checks the
graph's structure here; whether TensorRT then builds it is checked only on a GPU machine
(``tools/gpu_check.sh``). Input 48x48 and min-max calibration on a few faces keep it fast: the
structure does not depend on either.
"""

from __future__ import annotations

import collections

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from fer_edge.builder.calibration import parity_faces
from fer_edge.builder.export import export_model
from fer_edge.builder.quantize import quantize_int8
from fer_edge.models import create_model, list_models
from fer_edge.package import BatchRange, InputSpec

SPEC = InputSpec(size=(48, 48))
WEIGHTED = {"Conv": 1, "Gemm": 1, "MatMul": 1}  # op -> input index of its weight


def _tensorrt_qdq(model_id: str, keep_regions_float: bool = False) -> onnx.ModelProto:
    torch.manual_seed(0)
    model = create_model(model_id, variant="edge", in_size=SPEC.size).eval()
    faces, origin = parity_faces(SPEC, count=8)
    exported = export_model(model, SPEC, BatchRange(1, 2, 4), 17, faces, origin)
    return quantize_int8(exported.portable, faces, None, "minmax", exported.sites,
                         keep_regions_float=keep_regions_float, target="tensorrt").model


@pytest.mark.parametrize("model_id", list_models())
def test_every_dequantize_is_symmetric_int8_and_weights_per_channel(model_id: str) -> None:
    model = _tensorrt_qdq(model_id)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producer = {out: node for node in model.graph.node for out in node.output}
    consumers = collections.defaultdict(list)
    for node in model.graph.node:
        for index, name in enumerate(node.input):
            consumers[name].append((node, index))
    dequantize = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    quantize = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert dequantize and quantize, "no Q/DQ nodes: the graph was not quantized"
    weights = 0
    for node in dequantize:
        source = node.input[0]
        if source in inits:
            assert inits[source].dtype == np.int8, f"{node.name}: DequantizeLinear of a {inits[source].dtype} tensor"
        else:
            assert producer[source].op_type == "QuantizeLinear", f"{node.name} dequantizes {producer[source].op_type}"
        assert len(node.input) == 3, f"{node.name}: no zero point (ONNX's default zero point is uint8)"
        zero = inits[node.input[2]]
        assert zero.dtype == np.int8 and not zero.any(), f"{node.name}: zero point {zero} is not int8 0"
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        for consumer, index in consumers[node.output[0]]:
            if WEIGHTED.get(consumer.op_type) == index and source in inits:
                weights += 1
                scale = inits[node.input[1]]
                out_axis = 0
                if consumer.op_type == "Gemm":
                    trans_b = next((a.i for a in consumer.attribute if a.name == "transB"), 0)
                    assert trans_b == 1, f"{consumer.name}: weight (K, N) would need per-channel axis 1"
                assert consumer.op_type != "MatMul", f"{consumer.name}: MatMul weight (use Gemm for TensorRT axis 0)"
                assert axis == out_axis and scale.shape == (inits[source].shape[out_axis],), (
                    f"{consumer.name}: weights must be per channel on axis 0, got axis {axis}, scale {scale.shape}")
    for node in quantize:
        zero = inits[node.input[2]]
        assert zero.dtype == np.int8 and not zero.any(), f"{node.name}: activations must be symmetric int8"
    weighted = sum(1 for n in model.graph.node if n.op_type in WEIGHTED)
    assert weights >= weighted, f"{weights} quantized weights for {weighted} Conv/Gemm/MatMul nodes"
    for node in model.graph.node:
        if node.op_type in ("Conv", "Gemm") and len(node.input) > 2:
            bias = node.input[2]
            assert bias in inits and inits[bias].dtype == np.float32, f"{node.name}: bias must stay float32"


def test_the_onnxruntime_flavour_still_quantizes_biases() -> None:
    """The ONNX Runtime CPU form keeps INT32 biases (its int8 convolution wants them); only TensorRT's drops them."""
    torch.manual_seed(0)
    model = create_model("simam_resnet", variant="edge", in_size=SPEC.size).eval()
    faces, origin = parity_faces(SPEC, count=8)
    exported = export_model(model, SPEC, BatchRange(1, 2, 4), 17, faces, origin)
    qdq = quantize_int8(exported.portable, faces, None, "minmax", exported.sites, keep_regions_float=False,
                        target="onnxruntime").model
    int32 = [i for i in qdq.graph.initializer if i.data_type == onnx.TensorProto.INT32]
    assert int32, "expected INT32 bias initializers in the ONNX Runtime flavour"
