"""Explicit INT8: Q/DQ ONNX from the portable graph with ONNX Runtime static quantization.

Symmetric int8 (zero point 0) everywhere, per-channel weights (axis 0), per-tensor activations:
the form ONNX Runtime runs as INT8 on CPU and TensorRT >= 10 compiles to INT8. The graph first
goes through ``quant_pre_process`` (BatchNorm folding, shape inference): FACTS.md measured that
step as most of the CPU speed-up. SimAM / CC Attention regions (sums of squares, softmax) can be
kept in float; :func:`quantize_int8` measures both choices and keeps the better one.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fer_edge.builder.surgery import PluginSite, region_nodes
from fer_edge.errors import ExportError

METHODS = ("entropy", "percentile", "minmax")
# The Q/DQ form each target runs fast. TensorRT needs symmetric int8 (zero point 0) on every
# tensor, and float biases: its dequantize layer takes INT8/FP8/INT4 inputs only, so ONNX
# Runtime's default INT32 bias DequantizeLinear fails to parse (onnx/onnx-tensorrt#850; TensorRT
# fuses the float bias into the INT8 convolution itself). ONNX Runtime's x86 kernels turn
# DQ -> Conv -> Q into an int8 convolution only with uint8 activations, and Q/DQ around
# element-wise ops only adds work: on the default model at batch 8 (2 threads) int8 activations
# ran 25.5 ms, uint8 activations on Conv/Gemm only 4.4 ms, FP32 8.4 ms.
FLAVOURS: dict[str, dict[str, Any]] = {
    "tensorrt": {"activation": "int8", "op_types": None, "quantize_bias": False},
    "onnxruntime": {"activation": "uint8", "op_types": ["Conv", "Gemm", "MatMul"], "quantize_bias": True},
}


@dataclass
class QuantResult:
    """The chosen Q/DQ model and the measurements that chose it."""

    model: Any  # onnx.ModelProto
    method: str
    excluded_regions: bool
    agreement: dict[str, float] = field(default_factory=dict)  # variant -> top-1 agreement with FP32
    accuracy: dict[str, float] = field(default_factory=dict)  # variant -> accuracy on labelled calib faces


class _Reader:
    """ONNX Runtime's CalibrationDataReader protocol over an in-memory batch.

    All batches have the same size (the largest divisor of the set size up to ``max_batch``):
    ONNX Runtime's entropy and percentile calibrators stack per-batch outputs and fail on a
    shorter last batch.
    """

    def __init__(self, tensors: np.ndarray, input_name: str, max_batch: int = 16) -> None:
        batch = max(b for b in range(1, max_batch + 1) if len(tensors) % b == 0)
        self._batches = iter([{input_name: tensors[i:i + batch]} for i in range(0, len(tensors), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def _calibrate_method(method: str) -> Any:
    from onnxruntime.quantization import CalibrationMethod

    if method not in METHODS:
        raise ExportError(f"unknown calibration method {method!r}; choose one of {', '.join(METHODS)}")
    return {"entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile,
            "minmax": CalibrationMethod.MinMax}[method]


def _quantize(pre: Path, out: Path, tensors: np.ndarray, input_name: str, method: str, exclude: list[str],
              target: str) -> Any:
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    flavour = FLAVOURS[target]
    signed = flavour["activation"] == "int8"
    quantize_static(str(pre), str(out), _Reader(tensors, input_name), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8 if signed else QuantType.QUInt8, weight_type=QuantType.QInt8,
                    per_channel=True, calibrate_method=_calibrate_method(method), nodes_to_exclude=exclude,
                    op_types_to_quantize=flavour["op_types"],
                    extra_options={"ActivationSymmetric": signed, "WeightSymmetric": True,
                                   "QuantizeBias": flavour["quantize_bias"],
                                   "CalibMovingAverage": method == "minmax"})
    return onnx.load(str(out))


def predict(model: Any, tensors: np.ndarray, input_name: str = "input", threads: int = 1) -> np.ndarray:
    """Logits of ``model`` (ModelProto) on ``tensors`` with ONNX Runtime CPU."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, {input_name: tensors[i:i + 64]})[0] for i in range(0, len(tensors), 64)])


def quantize_int8(portable: Any, calibration: np.ndarray, labels: np.ndarray | None = None, method: str = "entropy",
                  sites: Sequence[PluginSite] = (), keep_regions_float: bool | None = None,
                  input_name: str = "input", target: str = "tensorrt") -> QuantResult:
    """Quantize ``portable`` with ``calibration`` faces (preprocessed NCHW float32).

    ``keep_regions_float``: True keeps the plugin regions (``sites``) in float, False quantizes
    them, None tries both and keeps the variant with the higher accuracy on the labelled
    calibration faces (or top-1 agreement with FP32 where there are no labels). ``target``
    picks the Q/DQ form (:data:`FLAVOURS`): ``"tensorrt"`` is symmetric int8 everywhere,
    ``"onnxruntime"`` uint8 activations on Conv/Gemm/MatMul only (weights stay symmetric int8,
    per channel).
    """
    if target not in FLAVOURS:
        raise ExportError(f"unknown INT8 target {target!r}; choose one of {', '.join(FLAVOURS)}")
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    _calibrate_method(method)
    if len(calibration) == 0:
        raise ExportError("INT8 quantization needs calibration faces; the calibration set is empty")
    choices = [False, True] if keep_regions_float is None and sites else [bool(keep_regions_float and sites)]
    reference = predict(portable, calibration, input_name).argmax(1)
    result: QuantResult | None = None
    with tempfile.TemporaryDirectory(prefix="fer_edge_quant_") as tmp:
        raw, pre = Path(tmp) / "fp32.onnx", Path(tmp) / "fp32_pre.onnx"
        onnx.save(portable, str(raw))
        quant_pre_process(str(raw), str(pre), skip_symbolic_shape=False)
        pre_model = onnx.load(str(pre))
        candidates = {}
        for keep in choices:
            exclude = [n for s in sites for n in region_nodes(pre_model, s)] if keep else []
            name = "regions_float" if keep else "all_int8"
            model = _quantize(pre, Path(tmp) / f"{name}.onnx", calibration, input_name, method, exclude, target)
            pred = predict(model, calibration, input_name).argmax(1)
            candidates[name] = (keep, model)
            agreement = float((pred == reference).mean())
            accuracy = float((pred == labels).mean()) if labels is not None and (labels >= 0).all() else agreement
            if result is None:
                result = QuantResult(model, method, keep)
            result.agreement[name] = agreement
            result.accuracy[name] = accuracy
    assert result is not None
    best = max(result.accuracy, key=lambda k: (result.accuracy[k], k == "all_int8"))  # ties: the faster graph
    result.excluded_regions, result.model = candidates[best]
    return result
