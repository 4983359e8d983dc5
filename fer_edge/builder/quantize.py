"""Explicit INT8: Q/DQ ONNX from the portable graph with ONNX Runtime static quantization.

Symmetric int8 (zero point 0) everywhere, per-channel weights (axis 0), per-tensor activations:
the form ONNX Runtime runs as INT8 on CPU and TensorRT >= 10 compiles to INT8. The graph first
goes through ``quant_pre_process`` (BatchNorm folding, shape inference): FACTS.md measured that
step as most of the CPU speed-up. SimAM / CC Attention regions (sums of squares, softmax) can be
kept in float; :func:`quantize_int8` measures both choices and keeps the better one.

INT8 is not faster for every op on a CPU: ONNX Runtime's depthwise ``QLinearConv`` ran 2-5x slower
than MLAS's blocked FP32 depthwise conv here, so an all-int8 han_pff was slower than FP32 (bench/README.md).
For the ONNX Runtime target the build therefore *measures* which op groups (narrow-input stems,
depthwise, grouped, 1x1, kxk convolutions, Gemm, MatMul) to keep in FP32: :func:`keep_fast_groups`.
"""

from __future__ import annotations

import inspect
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fer_edge.bench.stats import ForeignLoad
from fer_edge.builder.surgery import PluginSite, region_nodes
from fer_edge.errors import ExportError

METHODS = ("entropy", "percentile", "minmax")
# The Q/DQ form each target runs fast. TensorRT needs symmetric int8 (zero point 0) on every
# tensor, and float biases: its dequantize layer takes INT8/FP8/INT4 inputs only, so ONNX
# Runtime's default INT32 bias DequantizeLinear fails to parse (onnx/onnx-tensorrt#850; TensorRT
# fuses the float bias into the INT8 convolution itself). ONNX Runtime's x86 kernels turn
# DQ -> Conv -> Q into an int8 convolution only with uint8 activations, and Q/DQ around
# element-wise ops only adds work: on the default model at batch 8 (2 threads) int8 activations
# ran 25.5 ms, uint8 activations on Conv/Gemm only 4.4 ms, FP32 8.4 ms. Relu is the exception: with
# it in the list the quantizer gives a Conv -> Relu pair the Relu output's scale and drops the
# Relu, so ORT fuses the pair into one QLinearConv; without it each pair kept a DequantizeLinear
# -> QuantizeLinear requantisation of the conv output (the default's INT8 at batch 8 ran 11 % faster).
REMOVABLE_ACTIVATIONS = ("Relu",)
# The op selection's timings mislead above this share of the CPU taken by other processes: builds
# made while two training jobs ran on this 2-core machine (a share of about 0.5) recorded trial
# ratios off by up to 2x, and one kept han_pff's depthwise convs in FP32 and ran at 0.75x of FP32.
QUIET_SHARE = 0.25
FLAVOURS: dict[str, dict[str, Any]] = {
    "tensorrt": {"activation": "int8", "op_types": None, "quantize_bias": False, "reduce_range": False},
    # reduce_range: 7-bit weights. ONNX Runtime's uint8 x int8 kernels on x86 CPUs without VNNI (AVX2,
    # AVX-512F) add pairs of products in int16 (VPMADDUBSW), which saturates for 8-bit weights
    # (2 * 255 * 127 > 32767): measured on an AVX2-only EPYC, packages built with 8-bit weights on a VNNI
    # CPU lost up to 6 pt (han_pff INT8 87.05 -> 80.78 % on FER+ valid). 7 bits keep every pair sum in range.
    "onnxruntime": {"activation": "uint8", "op_types": ["Conv", "Gemm", "MatMul", *REMOVABLE_ACTIVATIONS],
                    "quantize_bias": True, "reduce_range": True},
}


@dataclass
class QuantResult:
    """The chosen Q/DQ model and the measurements that chose it."""

    model: Any  # onnx.ModelProto
    method: str
    excluded_regions: bool
    agreement: dict[str, float] = field(default_factory=dict)  # variant -> top-1 agreement with FP32
    accuracy: dict[str, float] = field(default_factory=dict)  # variant -> accuracy on labelled calib faces
    selection: dict[str, Any] | None = None  # op groups kept FP32 and the timings that chose them


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
    """Q/DQ ``pre`` into ``out``; calibration ranges are cached beside ``pre`` where ONNX Runtime can."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    flavour = FLAVOURS[target]
    signed = flavour["activation"] == "int8"
    cache = {"calibration_cache_path": str(pre.with_name(f"ranges_{method}_{target}.json"))} \
        if "calibration_cache_path" in inspect.signature(quantize_static).parameters else {}
    quantize_static(str(pre), str(out), _Reader(tensors, input_name), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8 if signed else QuantType.QUInt8, weight_type=QuantType.QInt8,
                    per_channel=True, reduce_range=flavour["reduce_range"], calibrate_method=_calibrate_method(method),
                    nodes_to_exclude=exclude,
                    op_types_to_quantize=flavour["op_types"],
                    extra_options={"ActivationSymmetric": signed, "WeightSymmetric": True,
                                   "QuantizeBias": flavour["quantize_bias"],
                                   "CalibMovingAverage": method == "minmax"}, **cache)
    return onnx.load(str(out))


def op_groups(model: Any, op_types: Sequence[str]) -> dict[str, list[str]]:
    """Node names of ``op_types`` in ``model`` by the kind of kernel ONNX Runtime runs for them.

    Convolutions split by shape (``Conv_narrow_input`` for <= 4 input channels, ``Conv_depthwise``,
    ``Conv_grouped``, ``Conv_1x1``, ``Conv_kxk``): their int8 kernels differ in speed far more than
    the op type says.
    """
    weights = {init.name: tuple(init.dims) for init in model.graph.initializer}
    groups: dict[str, list[str]] = {}
    for node in model.graph.node:
        if node.op_type not in op_types:
            continue
        kind = node.op_type
        dims = weights.get(node.input[1]) if node.op_type == "Conv" and len(node.input) > 1 else None
        if dims is not None:
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            if dims[1] * group <= 4:
                kind = "Conv_narrow_input"  # a stem on 1-3 channel faces: int8 im2col cannot fill its lanes
            elif group > 1:
                kind = "Conv_depthwise" if dims[1] == 1 else "Conv_grouped"
            else:
                kind = "Conv_1x1" if dims[2:] == (1, 1) else "Conv_kxk"
        groups.setdefault(kind, []).append(node.name)
    return groups


def latency_ms(models: Sequence[Any], probe: np.ndarray, input_name: str = "input", threads: int | None = None,
               shards: int | Sequence[int] = 1, rounds: int = 7, iters: int = 8) -> list[float]:
    """Best-of-rounds latency (ms per run on ``probe``) of each model, timed interleaved.

    Each model runs as ``OnnxRuntimeEngine`` runs it: one session of ``threads`` intra-op threads,
    or with ``shards`` > 1 (one count for all models, or one per model) the batch split over that
    many sessions of ``threads // shards`` threads in parallel (the engine's INT8 form). Interleaving the candidates round by round makes their
    *ratio* robust to load that comes and goes; the absolute numbers are only as good as the
    machine is quiet.
    """
    from concurrent.futures import ThreadPoolExecutor

    from fer_edge.engines.onnxruntime import cpu_session, default_threads, run_in_shards

    threads = threads or default_threads()
    feed = np.ascontiguousarray(probe)  # with one shard, run_in_shards is one plain run

    def run(session: Any, batch: np.ndarray) -> np.ndarray:
        return session.run(None, {input_name: batch})[0]

    counts = [shards] * len(models) if isinstance(shards, int) else list(shards)
    engines = [[cpu_session(m.SerializeToString(), max(1, threads // n)) for _ in range(n)] for m, n in zip(models, counts)]
    with ThreadPoolExecutor(max_workers=max(1, max(counts, default=1) - 1)) as pool:
        for sessions in engines:
            for _ in range(3):
                run_in_shards(run, sessions, pool, feed)
        best = [float("inf")] * len(engines)
        for _ in range(rounds):
            for i, sessions in enumerate(engines):
                start = time.perf_counter()
                for _ in range(iters):
                    run_in_shards(run, sessions, pool, feed)
                best[i] = min(best[i], (time.perf_counter() - start) / iters * 1e3)
    return best


def keep_fast_groups(pre: Path, fp32: Any, int8: Any, tensors: np.ndarray, input_name: str, method: str,
                     exclude: list[str], target: str, batch: int, reference: np.ndarray,
                     min_gain: float = 0.08, min_agreement: float = 0.97) -> tuple[Any, dict[str, Any]]:
    """Keep in FP32 each op group whose int8 form is slower, then any that costs agreement.

    Speed: one pass over the groups, each tried in FP32 on top of the choices so far and kept there
    when the whole graph gets at least ``min_gain`` faster (timed at ``batch`` against the current
    choice) in two separate timings, since on a loaded machine one timing can mislead. Every
    candidate is timed as the engine runs INT8 (sharded over single-thread sessions, spinning off)
    and FP32 as one session: timing INT8 as one 2-thread session once kept the default's stem in
    int8, where in the sharded engine its FP32 form is 10 % faster. Accuracy:
    while top-1 agreement with FP32 on the calibration faces is below ``min_agreement``, the group
    whose FP32 form raises agreement most (by >= 0.5 pt) goes to FP32, as long as the graph stays
    faster than FP32. Returns the model and the record of it.
    """
    import onnx

    from fer_edge.engines.onnxruntime import default_threads, shard_count

    selectable = [t for t in FLAVOURS[target]["op_types"] if t not in REMOVABLE_ACTIVATIONS]
    groups = op_groups(onnx.load(str(pre)), selectable)
    probe = np.ascontiguousarray(np.resize(tensors, (batch, *tensors.shape[1:])))
    shards = shard_count("int8", default_threads(), "cpu")  # INT8 is timed in the engine's sharded form

    def int8_ms(*models: Any) -> list[float]:
        return latency_ms(models, probe, input_name, shards=shards)

    def fp32_and_int8_ms(int8_model: Any) -> list[float]:  # interleaved, each in its engine's form
        return latency_ms([fp32, int8_model], probe, input_name, shards=(1, shards))

    fp32_ms, current_ms = fp32_and_int8_ms(int8)
    trials: dict[str, float] = {}
    kept: list[str] = []

    def variant(extra: list[str]) -> Any:
        names = exclude + [n for g in extra for n in groups[g]]
        return _quantize(pre, pre.with_name(f"int8_{'+'.join(extra) or 'all'}.onnx"), tensors, input_name, method,
                         names, target)

    for group in sorted(groups, key=lambda g: -len(groups[g])):
        trial = variant(kept + [group])
        current_ms, trial_ms = int8_ms(int8, trial)
        trials[group] = round(trial_ms / current_ms, 3)
        if trial_ms < (1 - min_gain) * current_ms:
            again_current, again_trial = int8_ms(int8, trial)  # a gain must repeat
            if again_trial < (1 - min_gain) * again_current:
                kept.append(group)
                int8, current_ms = trial, again_trial
    agreement = float((predict(int8, tensors, input_name).argmax(1) == reference).mean())
    while agreement < min_agreement and len(kept) < len(groups):
        scored = []
        for group in (g for g in groups if g not in kept):
            trial = variant(kept + [group])
            scored.append((float((predict(trial, tensors, input_name).argmax(1) == reference).mean()), group, trial))
        best_agreement, group, trial = max(scored, key=lambda item: item[0])
        fp32_now, trial_ms = fp32_and_int8_ms(trial)
        if best_agreement < agreement + 0.005 or trial_ms >= fp32_now:
            break
        kept.append(group)
        int8, agreement, current_ms, fp32_ms = trial, best_agreement, trial_ms, fp32_now
    record = {"float_op_groups": kept, "groups": {g: len(n) for g, n in groups.items()},
              "trial_ratio_vs_current": trials, "batch": batch, "fp32_ms": round(fp32_ms, 3),
              "int8_ms": round(current_ms, 3), "int8_shards": shards, "speedup": round(fp32_ms / current_ms, 3),
              "agreement": round(agreement, 4)}
    return int8, record


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
                  input_name: str = "input", target: str = "tensorrt", select_ops: bool | None = None,
                  batch: int = 8) -> QuantResult:
    """Quantize ``portable`` with ``calibration`` faces (preprocessed NCHW float32).

    ``keep_regions_float``: True keeps the plugin regions (``sites``) in float, False quantizes
    them, None tries both and keeps the variant with the higher accuracy on the labelled
    calibration faces (or top-1 agreement with FP32 where there are no labels). ``target``
    picks the Q/DQ form (:data:`FLAVOURS`): ``"tensorrt"`` is symmetric int8 everywhere,
    ``"onnxruntime"`` uint8 activations on Conv/Gemm/MatMul only (weights stay symmetric int8,
    per channel). ``select_ops`` (default: on for ``"onnxruntime"``; TensorRT picks its own kernels
    per layer) keeps in FP32 the op groups that :func:`keep_fast_groups` measures as slower in int8
    at ``batch``, or as costing agreement; the record of that choice says what share of the CPU other
    processes took while it was timed (``foreign_cpu_share``, :class:`~fer_edge.bench.stats.ForeignLoad`).
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
        if (target == "onnxruntime") if select_ops is None else select_ops:
            exclude = [n for s in sites for n in region_nodes(pre_model, s)] if result.excluded_regions else []
            with ForeignLoad() as load:  # the timings, and so the choice, may be wrong above QUIET_SHARE
                result.model, selection = keep_fast_groups(pre, portable, result.model, calibration, input_name,
                                                           method, exclude, target, batch, reference)
            result.selection = {**selection, "foreign_cpu_share": load.share}
    return result
