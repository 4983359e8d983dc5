"""The plugins inside real TensorRT engines: a one-node ONNX graph per plugin against the CPU
reference, and the plugin against the portable (standard-op) graph the export would otherwise emit.

Needs the ``tensorrt`` and ``cuda-python`` packages, an NVIDIA GPU and the built plugin library;
skipped with the reason otherwise (this is the only place the CUDA kernels actually run).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.tensorrt

trt = pytest.importorskip("tensorrt", reason="TensorRT's Python package is not installed")
onnx = pytest.importorskip("onnx")
helper, TensorProto = onnx.helper, onnx.TensorProto

from fer_edge.builder.tensorrt_builder import load_plugin_library
from fer_edge.engines.tensorrt import _check, _cudart
from fer_edge.errors import BackendUnavailableError
from fer_edge.plugins import cc_attention_reference, plugin_library_path, simam_reference
from fer_edge.trt_compat import api_for

OPSET = 17  # TensorRT 8.5/8.6 parsers accept opset <= 17
LAMBDA = 1e-4
SHAPES = [(2, 3, 7, 5), (1, 4, 1, 1), (3, 8, 14, 14)]
MAX_BATCH = 4


@pytest.fixture(scope="module")
def plugin_lib() -> Path:
    try:
        if _check(_cudart().cudaGetDeviceCount()) < 1:
            pytest.skip("no NVIDIA GPU visible to CUDA")
    except BackendUnavailableError as exc:
        pytest.skip(f"no usable CUDA runtime: {exc}")
    path = plugin_library_path()
    if path is None:
        pytest.skip("the plugin library is not built (pip install -e . with nvcc and TensorRT_ROOT)")
    load_plugin_library(trt, api_for(trt.__version__), path)
    return path


def onnx_dtype(dtype: type) -> int:
    return TensorProto.FLOAT16 if dtype == np.float16 else TensorProto.FLOAT


def graph(nodes: list[Any], inputs: list[str], shape: tuple[int, ...], dtype: type,
          initializers: tuple[Any, ...] = ()) -> bytes:
    dims: list[Any] = ["N", *shape[1:]]
    vis = [helper.make_tensor_value_info(n, onnx_dtype(dtype), dims) for n in inputs]
    out = [helper.make_tensor_value_info("y", onnx_dtype(dtype), dims)]
    model = helper.make_model(helper.make_graph(nodes, "g", vis, out, list(initializers)),
                              opset_imports=[helper.make_opsetid("", OPSET)])
    return model.SerializeToString()


def plugin_graph(op: str, inputs: list[str], shape: tuple[int, ...], dtype: type, **fields: float) -> bytes:
    node = helper.make_node(op, inputs, ["y"], plugin_version="1", plugin_namespace="", **fields)
    return graph([node], inputs, shape, dtype)


def const(name: str, value: float, dtype: type) -> Any:
    return helper.make_tensor(name, onnx_dtype(dtype), [], np.array([value], dtype).tobytes(), raw=True)


def simam_portable(shape: tuple[int, ...], dtype: type) -> bytes:
    hw = shape[2] * shape[3]
    make = helper.make_node
    nodes = [
        make("ReduceMean", ["x"], ["mu"], axes=[2, 3]), make("Sub", ["x", "mu"], ["d"]),
        make("Mul", ["d", "d"], ["d2"]), make("ReduceMean", ["d2"], ["m2"], axes=[2, 3]),
        make("Mul", ["m2", "ratio"], ["var"]), make("Add", ["var", "lam"], ["vl"]),
        make("Mul", ["vl", "four"], ["den"]), make("Div", ["d2", "den"], ["q"]),
        make("Add", ["q", "half"], ["e"]), make("Sigmoid", ["e"], ["s"]), make("Mul", ["x", "s"], ["y"]),
    ]
    consts = [const("ratio", hw / max(hw - 1, 1), dtype), const("lam", LAMBDA, dtype),
              const("four", 4.0, dtype), const("half", 0.5, dtype)]
    return graph(nodes, ["x"], shape, dtype, tuple(consts))


def cc_portable(shape: tuple[int, ...], dtype: type) -> bytes:
    make = helper.make_node
    flat = helper.make_tensor("flat", TensorProto.INT64, [3], [0, 0, -1])
    nodes = [
        make("ReduceMean", ["x"], ["m"], axes=[2, 3]), make("Mul", ["k", "m"], ["km"]),
        make("Add", ["km", "q"], ["logits"]), make("Reshape", ["logits", "flat"], ["l3"]),
        make("Softmax", ["l3"], ["r3"], axis=-1), make("Shape", ["x"], ["xs"]),
        make("Reshape", ["r3", "xs"], ["r"]), make("Mul", ["r", "v"], ["rv"]), make("Add", ["x", "rv"], ["y"]),
    ]
    return graph(nodes, ["x", "q", "k", "v"], shape, dtype, (flat,))


def build(onnx_bytes: bytes, shape: tuple[int, ...], inputs: list[str], dtype: type) -> Any:
    api = api_for(trt.__version__)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(api.network_flags(trt, strongly_typed=api.strongly_typed_flag))
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(onnx_bytes), [str(parser.get_error(i)) for i in range(parser.num_errors)]
    config = builder.create_builder_config()
    if dtype == np.float16 and api.precision_flags and not api.strongly_typed_flag:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for name in inputs:
        profile.set_shape(name, (1, *shape[1:]), shape, (MAX_BATCH, *shape[1:]))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    assert serialized is not None, "engine build failed (see the TensorRT log)"
    return trt.Runtime(logger).deserialize_cuda_engine(serialized)


def run(engine: Any, feeds: dict[str, np.ndarray]) -> np.ndarray:
    cudart = _cudart()
    context = engine.create_execution_context()
    first = next(iter(feeds.values()))
    out = np.empty_like(first)
    buffers = []
    try:
        for name, array in [*feeds.items(), ("y", out)]:
            ptr = _check(cudart.cudaMalloc(array.nbytes))
            buffers.append(ptr)
            context.set_tensor_address(name, ptr)
            if name != "y":
                context.set_input_shape(name, array.shape)
                _check(cudart.cudaMemcpy(ptr, array.ctypes.data, array.nbytes,
                                         cudart.cudaMemcpyKind.cudaMemcpyHostToDevice))
        stream = _check(cudart.cudaStreamCreate())
        assert context.execute_async_v3(stream)
        _check(cudart.cudaStreamSynchronize(stream))
        _check(cudart.cudaStreamDestroy(stream))
        _check(cudart.cudaMemcpy(out.ctypes.data, buffers[-1], out.nbytes, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost))
    finally:
        for ptr in buffers:
            cudart.cudaFree(ptr)
    return out


def assert_close(actual: np.ndarray, expected: np.ndarray) -> None:
    scale = float(np.abs(expected).max()) + 1.0
    tol = 2e-3 * scale if actual.dtype == np.float16 else 1e-5 * scale
    np.testing.assert_allclose(actual.astype(np.float64), expected.astype(np.float64), rtol=0, atol=tol)


# op -> (plugin graph, portable graph, input names, CPU reference, plugin fields)
CASES: dict[str, tuple[Callable[..., bytes], Callable[..., bytes], list[str], Callable[..., np.ndarray],
                       dict[str, float]]] = {
    "SimAM_TRT": (plugin_graph, simam_portable, ["x"], lambda x: simam_reference(x, LAMBDA), {"lambda": LAMBDA}),
    "CCAttention_TRT": (plugin_graph, cc_portable, ["x", "q", "k", "v"], cc_attention_reference, {}),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("op", sorted(CASES))
def test_plugin_engine_matches_reference_and_portable_graph(
    plugin_lib: Path, op: str, shape: tuple[int, ...], dtype: type
) -> None:
    make_plugin, make_portable, inputs, reference, fields = CASES[op]
    rng = np.random.default_rng(0)
    plugin = build(make_plugin(op, inputs, shape, dtype, **fields), shape, inputs, dtype)
    portable = build(make_portable(shape, dtype), shape, inputs, dtype)
    for batch in (1, shape[0], MAX_BATCH):  # dynamic batch through one engine
        feeds: dict[str, np.ndarray] = {n: (rng.standard_normal((batch, *shape[1:])) * 3).astype(dtype) for n in inputs}
        got = run(plugin, feeds)
        assert_close(got, reference(*feeds.values()))
        assert_close(got, run(portable, feeds))
