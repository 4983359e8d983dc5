"""Q/DQ INT8 graphs: symmetric (zero points 0), per-channel weights on axis 0, opset kept;
and INT8 accuracy within 1 point of FP32 for the trained default model."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from fer_edge.builder import calibration
from fer_edge.builder.export import export_model
from fer_edge.builder.quantize import op_groups, predict, quantize_int8
from fer_edge.builder.surgery import region_nodes
from fer_edge.engines.onnxruntime import default_threads, shard_count
from fer_edge.errors import ExportError
from fer_edge.models import create_model
from fer_edge.package import BatchRange, InputSpec

SPEC = InputSpec(size=(32, 32))


def conv_weight_dequantizers(model: onnx.ModelProto) -> tuple[dict[str, np.ndarray], list[onnx.NodeProto]]:
    """``model``'s initializers as arrays, and its DequantizeLinear nodes of 4-D (convolution) weights."""
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return inits, [n for n in model.graph.node
                   if n.op_type == "DequantizeLinear" and n.input[0] in inits and inits[n.input[0]].ndim == 4]


@pytest.fixture(scope="module")
def quantized():
    torch.manual_seed(0)
    model = create_model("simam_resnet", variant="edge", in_size=SPEC.size).eval()
    faces, origin = calibration.parity_faces(SPEC, count=4)
    result = export_model(model, SPEC, BatchRange(1, 4, 8), 17, faces, origin)
    rng = np.random.default_rng(0)
    calib = rng.standard_normal((24, 3, *SPEC.size)).astype(np.float32)
    return result, calib, quantize_int8(result.portable, calib, method="minmax", sites=result.sites)


def test_qdq_graph_is_symmetric_per_channel_and_keeps_the_opset(quantized) -> None:
    _result, calib, quant = quantized
    model = quant.model
    inits, weight_dq = conv_weight_dequantizers(model)
    qnodes = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert qnodes, "no Q/DQ nodes: the graph was not quantized"
    for node in qnodes:
        if len(node.input) > 2 and node.input[2] in inits:
            assert not inits[node.input[2]].any(), f"{node.name}: zero point must be 0 (symmetric)"
            assert inits[node.input[2]].dtype in (np.int8, np.int32)
    assert weight_dq, "no quantized conv weights"
    for node in weight_dq:
        axis = {a.name: a.i for a in node.attribute}.get("axis", 1)
        assert axis == 0 and inits[node.input[1]].size == inits[node.input[0]].shape[0]
    acts = [n for n in qnodes if n.op_type == "QuantizeLinear"]
    assert all(inits[n.input[1]].size == 1 for n in acts if n.input[1] in inits), "activations per-tensor"
    assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    onnx.checker.check_model(model)
    got = predict(model, calib[:4])
    assert got.shape == (4, 7) and np.isfinite(got).all()
    assert set(quant.agreement) == {"all_int8", "regions_float"}  # both choices were measured


def test_regions_can_be_kept_float(quantized) -> None:
    result, calib, _ = quantized
    kept = quantize_int8(result.portable, calib, method="minmax", sites=result.sites, keep_regions_float=True)
    assert kept.excluded_regions
    region = {name for site in result.sites for name in region_nodes(result.portable, site)}
    sigmoid_inputs = {n.input[0] for n in kept.model.graph.node if n.op_type == "Sigmoid" and n.name in region}
    dq_outputs = {n.output[0] for n in kept.model.graph.node if n.op_type == "DequantizeLinear"}
    assert sigmoid_inputs and not sigmoid_inputs & dq_outputs, "SimAM's sigmoid must stay in float"


def test_bad_method_and_empty_set_are_refused(quantized) -> None:
    result, calib, _ = quantized
    with pytest.raises(ExportError, match="unknown calibration method"):
        quantize_int8(result.portable, calib, method="kl")
    with pytest.raises(ExportError, match="empty"):
        quantize_int8(result.portable, calib[:0])


def test_onnxruntime_flavour_uses_uint8_activations_on_convolutions_only(quantized) -> None:
    result, calib, tensorrt_form = quantized
    ort_form = quantize_int8(result.portable, calib, method="minmax", sites=result.sites, target="onnxruntime",
                             select_ops=False).model
    init, ort_weight_dq = conv_weight_dequantizers(ort_form)
    activation_zero_points = [init[n.input[2]] for n in ort_form.graph.node
                              if n.op_type == "QuantizeLinear" and n.input[0] not in init]
    assert activation_zero_points and all(z.dtype == np.uint8 for z in activation_zero_points)
    weight_zero_points = [init[n.input[2]] for n in ort_weight_dq]
    assert weight_zero_points and all(z.dtype == np.int8 and not z.any() for z in weight_zero_points)
    # 7-bit weights: ONNX Runtime's uint8 x int8 kernels on x86 CPUs without VNNI add pairs of products
    # in int16, which 8-bit weights saturate (2 * 255 * 127 > 32767, 2 * 255 * 64 = 32640 is in range);
    # TensorRT's form keeps 8 bits
    for form, widest in ((ort_form, 64), (tensorrt_form.model, 127)):
        inits, weight_dq = conv_weight_dequantizers(form)
        assert max(int(np.abs(inits[n.input[0]].astype(np.int32)).max()) for n in weight_dq) == widest

    def count(model, op: str) -> int:  # type: ignore[no-untyped-def]
        return sum(n.op_type == op for n in model.graph.node)

    assert count(ort_form, "QuantizeLinear") < count(tensorrt_form.model, "QuantizeLinear")  # element-wise ops stay float
    with pytest.raises(ExportError, match="unknown INT8 target"):
        quantize_int8(result.portable, calib, target="openvino")


def _conv(name: str, cin: int, cout: int, k: int, group: int) -> tuple[onnx.NodeProto, onnx.TensorProto]:
    weight = numpy_helper.from_array(np.zeros((cout, cin // group, k, k), np.float32), f"{name}.w")
    return onnx.helper.make_node("Conv", ["x", weight.name], [name], name=name, group=group), weight


def test_op_groups_split_convolutions_by_kernel_kind() -> None:
    made = [_conv("dw", 8, 8, 3, 8), _conv("grouped", 8, 8, 3, 2), _conv("pw", 8, 16, 1, 1), _conv("dense", 8, 4, 3, 1),
            _conv("stem", 3, 16, 3, 1)]
    graph = onnx.helper.make_graph([n for n, _ in made] + [onnx.helper.make_node("Relu", ["x"], ["r"], name="relu")],
                                   "g", [], [], initializer=[w for _, w in made])
    assert op_groups(onnx.helper.make_model(graph), ["Conv", "Gemm"]) == {
        "Conv_depthwise": ["dw"], "Conv_grouped": ["grouped"], "Conv_1x1": ["pw"], "Conv_kxk": ["dense"],
        "Conv_narrow_input": ["stem"]}


def test_measured_selection_keeps_its_float_groups_float_and_records_why(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """han_pff has a stem, depthwise, 1x1 and kxk convolutions and Gemms: every group is timed, and the
    groups the measurement keeps in FP32 have float weights while the others are int8."""
    torch.manual_seed(0)
    spec = InputSpec(size=(48, 48))
    model = create_model("han_pff", variant="edge", in_size=spec.size).eval()
    faces, origin = calibration.parity_faces(spec, count=4)
    portable = export_model(model, spec, BatchRange(1, 4, 8), 17, faces, origin).portable
    calib = np.random.default_rng(0).standard_normal((16, *faces.shape[1:])).astype(np.float32)
    quant = quantize_int8(portable, calib, method="minmax", target="onnxruntime", batch=4)
    record = quant.selection
    assert record is not None and record["batch"] == 4
    assert record["int8_shards"] == shard_count("int8", default_threads(), "cpu")  # timed as the engine runs it
    from onnxruntime.quantization.shape_inference import quant_pre_process

    onnx.save(portable, str(tmp_path / "fp32.onnx"))  # the graph the groups are read from: constants folded
    quant_pre_process(str(tmp_path / "fp32.onnx"), str(tmp_path / "pre.onnx"), skip_symbolic_shape=False)
    groups = op_groups(onnx.load(str(tmp_path / "pre.onnx")), ["Conv", "Gemm", "MatMul"])  # Relu is no group
    assert set(record["groups"]) == set(groups) >= {"Conv_depthwise", "Conv_1x1", "Conv_kxk", "Gemm", "Conv_narrow_input"}
    assert set(record["trial_ratio_vs_current"]) == set(groups)  # every group was timed
    assert set(record["float_op_groups"]) <= set(groups)
    assert record["speedup"] == pytest.approx(record["fp32_ms"] / record["int8_ms"], rel=1e-2)
    inits = {i.name for i in quant.model.graph.initializer}
    dq_outputs = {n.output[0] for n in quant.model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits}
    nodes = {n.name: n for n in quant.model.graph.node}
    for group, names in groups.items():
        int8_weights = [nodes[name].input[1] in dq_outputs for name in names if name in nodes]
        assert int8_weights, f"{group}: its nodes are missing from the quantized graph"
        assert not any(int8_weights) if group in record["float_op_groups"] else all(int8_weights), group
    assert np.isfinite(predict(quant.model, calib[:4])).all()


def test_conv_relu_pairs_become_one_int8_conv_in_onnx_runtime(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The ONNX Runtime flavour quantizes Relu as a removable activation: each Conv -> Relu takes the
    Relu output's scale and ORT runs the pair as one QLinearConv. Before, every pair left a
    DequantizeLinear -> QuantizeLinear requantisation of the conv output in the optimised graph."""
    import onnxruntime as ort

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(16, 16, 3, padding=1),
                              torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 7))
    torch.onnx.export(net.eval(), torch.zeros(1, 3, 16, 16), str(tmp_path / "fp32.onnx"), input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "n"}}, opset_version=17, dynamo=False)
    calib = np.random.default_rng(0).standard_normal((16, 3, 16, 16)).astype(np.float32)
    quant = quantize_int8(onnx.load(str(tmp_path / "fp32.onnx")), calib, method="minmax", target="onnxruntime",
                          select_ops=False)
    assert not [n for n in quant.model.graph.node if n.op_type == "Relu"]
    onnx.save(quant.model, str(tmp_path / "int8.onnx"))
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    ort.InferenceSession(str(tmp_path / "int8.onnx"), options, providers=["CPUExecutionProvider"])
    optimized = onnx.load(str(tmp_path / "optimized.onnx")).graph.node
    producer = {out: n.op_type for n in optimized for out in n.output}
    assert [n.op_type for n in optimized].count("QLinearConv") == 2
    assert not [n for n in optimized if n.op_type == "QuantizeLinear" and producer.get(n.input[0]) == "DequantizeLinear"]
    reference = predict(onnx.load(str(tmp_path / "fp32.onnx")), calib)
    assert np.abs(predict(quant.model, calib) - reference).max() < 0.1 * np.abs(reference).max()


def test_float_weights_an_int8_graph_keeps_are_stored_as_float16_and_folded_at_load(quantized, tmp_path) -> None:
    """The op selection can keep convolutions in FP32 (faer's 1x1s: 13 MB of its INT8 file); their
    weights go to float16 behind a Cast, which ONNX Runtime folds when it loads the graph, while the
    int8 weights and the Q/DQ scales stay as they are."""
    import onnxruntime as ort
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from fer_edge.builder.export import FP16_WEIGHTS_RTOL, store_weights_fp16
    from fer_edge.builder.quantize import _Reader

    result, calib, _ = quantized
    fp32_path, int8_path = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    onnx.save(result.portable, str(fp32_path))
    inits = {i.name: i for i in result.portable.graph.initializer}
    big_convs = [n.name for n in result.portable.graph.node
                 if n.op_type == "Conv" and int(np.prod(inits[n.input[1]].dims)) >= 1024]
    kept_fp32 = big_convs[len(big_convs) // 2]
    quantize_static(str(fp32_path), str(int8_path), _Reader(calib, "input"), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                    nodes_to_exclude=[kept_fp32], op_types_to_quantize=["Conv", "Gemm"])
    int8 = onnx.load(str(int8_path))
    stored, err = store_weights_fp16(int8, calib[:4])
    assert err <= FP16_WEIGHTS_RTOL
    before = {i.name: i.data_type for i in int8.graph.initializer}
    after = {i.name: i.data_type for i in stored.graph.initializer}
    weight = next(n for n in int8.graph.node if n.name == kept_fp32).input[1]
    assert before[weight] == onnx.TensorProto.FLOAT and after[f"{weight}__fp16"] == onnx.TensorProto.FLOAT16
    quantizer_inputs = {i for n in int8.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
                        for i in n.input if i in before}
    assert quantizer_inputs and all(after[name] == before[name] for name in quantizer_inputs)
    assert stored.ByteSize() < int8.ByteSize()
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "as_loaded.onnx")
    ort.InferenceSession(stored.SerializeToString(), options, providers=["CPUExecutionProvider"])
    assert not [n for n in onnx.load(options.optimized_model_filepath).graph.node if n.op_type == "Cast"]
    assert (predict(stored, calib).argmax(1) == predict(int8, calib).argmax(1)).mean() >= 0.9
