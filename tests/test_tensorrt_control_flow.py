"""fer_edge's own branching around TensorRT, with small FAKE ``tensorrt`` and ``cuda`` modules.

These fakes record what our code asks for and return what a test chooses; they are not TensorRT
and prove nothing about TensorRT itself (``tools/gpu_check.sh`` runs the real thing on a GPU).
What they do test: FP16 on TensorRT 11 refused before any work, the cuda-python import fallback,
the GPU queried before an engine is written, plugin-library load failures as PluginLibraryError
(once per process), the plugin library version check, the calibration profile, calibrator buffer
and CUDA error checks, the timing cache never overwritten when rejected, and the device half of
the ``--onnx-only`` workflow.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fer_edge.constants import EXPRESSIONS_7
from fer_edge.errors import BackendUnavailableError, EngineMismatchError, ExportError, PluginLibraryError
from fer_edge.package import BatchRange, InputSpec, Sidecar, load_package, write_package


@dataclass
class Calls:
    """What the fakes were asked to do."""

    log: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)
    freed: list[int] = field(default_factory=list)
    calibration_profile: Any = None


def fake_cuda(calls: Calls, *, device_error: int = 0, memcpy_error: int = 0) -> types.ModuleType:
    """A FAKE cuda-python runtime module: (error, value) tuples like the real one."""
    rt = types.ModuleType("fake_cudart")
    rt.cudaError_t = types.SimpleNamespace(cudaSuccess=0)  # type: ignore[attr-defined]
    rt.cudaMemcpyKind = types.SimpleNamespace(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2)  # type: ignore[attr-defined]
    props = types.SimpleNamespace(name=b"Fake GPU\x00", major=8, minor=7)

    def get_properties(device: int) -> tuple:
        calls.log.append("cudaGetDeviceProperties")
        return (device_error, props)

    rt.cudaGetDeviceProperties = get_properties  # type: ignore[attr-defined]
    rt.cudaSetDevice = lambda device: (0,)  # type: ignore[attr-defined]
    rt.cudaGetErrorName = lambda err: (0, b"fakeError")  # type: ignore[attr-defined]
    rt.cudaMalloc = lambda n: (calls.log.append("cudaMalloc"), (0, 4096))[1]  # type: ignore[attr-defined]
    rt.cudaMemcpy = lambda dst, src, n, kind: (memcpy_error,)  # type: ignore[attr-defined]
    rt.cudaFree = lambda ptr: (calls.freed.append(ptr), (0,))[1]  # type: ignore[attr-defined]
    return rt


def install_cuda(monkeypatch: pytest.MonkeyPatch, runtime: types.ModuleType, new_layout: bool = True) -> None:
    """Put ``runtime`` where cuda-python >= 12.6 (``cuda.bindings.runtime``) or older (``cuda.cudart``) has it."""
    package = types.ModuleType("cuda")
    package.__path__ = []  # type: ignore[attr-defined]
    if new_layout:
        bindings = types.ModuleType("cuda.bindings")
        bindings.__path__ = []  # type: ignore[attr-defined]
        bindings.runtime = runtime  # type: ignore[attr-defined]
        package.bindings = bindings  # type: ignore[attr-defined]
        modules = {"cuda": package, "cuda.bindings": bindings, "cuda.bindings.runtime": runtime, "cuda.cudart": None}
    else:
        package.cudart = runtime  # type: ignore[attr-defined]
        modules = {"cuda": package, "cuda.bindings": None, "cuda.bindings.runtime": None, "cuda.cudart": runtime}
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)


def fake_tensorrt(version: str, calls: Calls, *, load_ok: bool = True, creators: bool = True,
                  cache_ok: bool = True) -> types.ModuleType:
    """A FAKE ``tensorrt`` module with just the calls fer_edge makes; every call is recorded."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version  # type: ignore[attr-defined]

    class Logger:
        WARNING = 2

        def __init__(self, level: int) -> None:
            pass

    class Registry:
        def load_library(self, path: str) -> object | None:
            calls.loaded.append(path)
            return object() if load_ok else None

        def get_creator(self, name: str, version: str, namespace: str = "") -> object | None:
            return object() if creators else None

        get_plugin_creator = get_creator

    registry = Registry()

    class Cache:
        def __init__(self, blob: bytes) -> None:
            self.blob = blob

        def serialize(self) -> bytes:
            return b"fresh timing cache"

    class Config:
        def __init__(self) -> None:
            self.int8_calibrator: Any = None
            self.progress_monitor = None
            self._cache: Cache | None = None

        def set_memory_pool_limit(self, pool: int, size: int) -> None:
            pass

        def set_flag(self, flag: str) -> None:
            calls.flags.append(flag)

        def add_optimization_profile(self, profile: object) -> None:
            pass

        def set_calibration_profile(self, profile: object) -> None:
            calls.calibration_profile = profile

        def create_timing_cache(self, blob: bytes) -> Cache:
            return Cache(bytes(blob))

        def set_timing_cache(self, cache: Cache, ignore_mismatch: bool) -> bool:
            accepted = cache_ok or cache.blob == b""
            self._cache = cache if accepted else self._cache
            return accepted

        def get_timing_cache(self) -> Cache:
            assert self._cache is not None
            return self._cache

    class Profile:
        def set_shape(self, name: str, *shapes: Any) -> None:
            self.shapes = shapes

    class HostMemory(bytes):
        @property
        def nbytes(self) -> int:
            return len(self)

    class Builder:
        def __init__(self, logger: Logger) -> None:
            calls.log.append("Builder")

        def create_network(self, flags: int) -> object:
            return object()

        def create_builder_config(self) -> Config:
            return Config()

        def create_optimization_profile(self) -> Profile:
            return Profile()

        def build_serialized_network(self, network: object, config: Config) -> HostMemory:
            calls.log.append("build_serialized_network")
            if config.int8_calibrator is not None:  # what TensorRT does with a calibrator: drain it
                while config.int8_calibrator.get_batch(["input"]) is not None:
                    pass
            return HostMemory(b"serialized engine")

    class OnnxParser:
        num_errors = 0

        def __init__(self, network: object, logger: Logger) -> None:
            pass

        def parse_from_file(self, path: str) -> bool:
            calls.log.append("parse")
            return True

    class Base:
        def __init__(self) -> None:
            pass

    for name, value in {
        "Logger": Logger, "Builder": Builder, "OnnxParser": OnnxParser, "get_plugin_registry": lambda: registry,
        "init_libnvinfer_plugins": lambda logger, ns: True, "Dims": tuple, "IProgressMonitor": Base,
        "IInt8EntropyCalibrator2": Base,
        "MemoryPoolType": types.SimpleNamespace(WORKSPACE=0),
        "BuilderFlag": types.SimpleNamespace(FP16="FP16", INT8="INT8", GPU_FALLBACK="GPU_FALLBACK"),
        "NetworkDefinitionCreationFlag": types.SimpleNamespace(EXPLICIT_BATCH=0, STRONGLY_TYPED=1),
        "DeviceType": types.SimpleNamespace(DLA="DLA"),
    }.items():
        setattr(trt, name, value)
    return trt


@pytest.fixture(autouse=True)
def _fresh_plugin_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    import fer_edge.plugins

    monkeypatch.setattr(fer_edge.plugins, "_LOADED", {})


def _options(**kw: Any) -> Any:
    from fer_edge.builder.tensorrt_builder import EngineOptions

    return EngineOptions(**{"precision": "fp32", "batch": BatchRange(1, 2, 4), "input_shape": (3, 48, 48), **kw})


def _setup(monkeypatch: pytest.MonkeyPatch, version: str, **kw: Any) -> Calls:
    calls = Calls()
    cuda_kw = {k: kw.pop(k) for k in ("device_error", "memcpy_error") if k in kw}
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(version, calls, **kw))
    install_cuda(monkeypatch, fake_cuda(calls, **cuda_kw))
    return calls


@pytest.fixture(scope="module")
def tiny_plugin_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A shared library exporting only ferEdgePluginVersion() = "9.9.9" (stands in for ours)."""
    if shutil.which("c++") is None:
        pytest.skip("c++ missing")
    folder = tmp_path_factory.mktemp("lib")
    src = folder / "lib.cpp"
    src.write_text('extern "C" const char* ferEdgePluginVersion() { return "9.9.9"; }\n')
    lib = folder / "libfer_edge_plugins.so"
    subprocess.run(["c++", "-shared", "-fPIC", str(src), "-o", str(lib)], check=True, capture_output=True)
    return lib


# --- precision ---------------------------------------------------------------------------------------------

def test_fp16_on_tensorrt_11_is_refused_before_anything_loads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from fer_edge.builder import pipeline

    calls = _setup(monkeypatch, "11.1.0")
    monkeypatch.setattr(pipeline, "load_source", lambda *a, **k: pytest.fail("the model must not even be loaded"))
    with pytest.raises(ExportError, match="strongly typed"):
        pipeline.build("simam_resnet", "fp16", "tensorrt", str(tmp_path / "m.engine"), log=lambda _: None)
    from fer_edge.builder.tensorrt_builder import build_engine

    with pytest.raises(ExportError, match="strongly typed"):
        build_engine(tmp_path / "m.onnx", tmp_path / "m.engine", _options(precision="fp16"))
    assert "Builder" not in calls.log and not (tmp_path / "m.engine").exists()


@pytest.mark.parametrize("version, flags", [("10.3.0", ["FP16"]), ("8.6.1", ["FP16"]), ("11.1.0", [])])
def test_precision_flags_per_version(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, version: str,
                                     flags: list[str]) -> None:
    from fer_edge.builder.tensorrt_builder import build_engine

    calls = _setup(monkeypatch, version)
    precision = "fp32" if version.startswith("11") else "fp16"
    record = build_engine(tmp_path / "m.onnx", tmp_path / "m.engine", _options(precision=precision))
    assert calls.flags == flags and record["version"].startswith(version[:4])


# --- cuda-python ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("new_layout", [True, False], ids=["cuda.bindings", "cuda.cudart"])
def test_cuda_runtime_under_either_cuda_python_layout(monkeypatch: pytest.MonkeyPatch, new_layout: bool) -> None:
    from fer_edge.builder.tensorrt_builder import device_info
    from fer_edge.trt_compat import cuda_runtime

    runtime = fake_cuda(Calls())
    install_cuda(monkeypatch, runtime, new_layout)
    assert cuda_runtime() is runtime
    assert device_info() == {"gpu_name": "Fake GPU", "compute_capability": "8.7"}


def test_no_cuda_python_is_a_typed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from fer_edge.trt_compat import cuda_runtime

    for name in ("cuda", "cuda.bindings", "cuda.bindings.runtime", "cuda.cudart"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(BackendUnavailableError, match="cuda-python"):
        cuda_runtime()


def test_the_gpu_is_queried_before_an_engine_is_written(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from fer_edge.builder.tensorrt_builder import build_engine

    calls = _setup(monkeypatch, "10.3.0", device_error=100)
    with pytest.raises(BackendUnavailableError, match="no usable CUDA GPU"):
        build_engine(tmp_path / "m.onnx", tmp_path / "m.engine", _options())
    assert "build_serialized_network" not in calls.log and not (tmp_path / "m.engine").exists()


# --- plugin library ----------------------------------------------------------------------------------------

def test_a_failed_load_library_is_a_plugin_library_error(monkeypatch: pytest.MonkeyPatch,
                                                         tiny_plugin_library: Path) -> None:
    from fer_edge.builder.tensorrt_builder import load_plugin_library
    from fer_edge.trt_compat import api_for

    calls = _setup(monkeypatch, "10.3.0", load_ok=False)
    with pytest.raises(PluginLibraryError, match="could not load"):
        load_plugin_library(sys.modules["tensorrt"], api_for("10.3.0"), tiny_plugin_library)
    _setup(monkeypatch, "10.3.0", creators=False)
    with pytest.raises(PluginLibraryError, match="no creator for SimAM_TRT"):
        load_plugin_library(sys.modules["tensorrt"], api_for("10.3.0"), tiny_plugin_library)
    assert calls.loaded == [str(tiny_plugin_library.resolve())]


def test_the_plugin_library_loads_once_per_process(monkeypatch: pytest.MonkeyPatch, tiny_plugin_library: Path) -> None:
    from fer_edge.builder.tensorrt_builder import load_plugin_library
    from fer_edge.trt_compat import api_for

    calls = _setup(monkeypatch, "10.3.0")
    trt = sys.modules["tensorrt"]
    assert load_plugin_library(trt, api_for("10.3.0"), tiny_plugin_library) == "9.9.9"
    assert load_plugin_library(trt, api_for("10.3.0"), tiny_plugin_library) == "9.9.9"
    assert len(calls.loaded) == 1, "TensorRT refuses a second loadLibrary of already registered creators"


def test_tensorrt_8_dlopens_and_a_non_library_is_a_plugin_library_error(monkeypatch: pytest.MonkeyPatch,
                                                                         tmp_path: Path) -> None:
    from fer_edge.builder.tensorrt_builder import load_plugin_library
    from fer_edge.trt_compat import api_for

    calls = _setup(monkeypatch, "8.6.1")
    not_a_library = tmp_path / "libfer_edge_plugins.so"
    not_a_library.write_bytes(b"not an ELF file")
    with pytest.raises(PluginLibraryError, match="cannot load"):
        load_plugin_library(sys.modules["tensorrt"], api_for("8.6.1"), not_a_library)
    assert calls.loaded == [], "8.x has no IPluginRegistry.load_library path in fer_edge (it registers on dlopen)"


def _engine_package(tmp_path: Path, plugin_version: str | None) -> Any:
    (tmp_path / "m.engine").write_bytes(b"serialized engine")
    record = {"version": "10.3.0", "compute_capability": "8.7", "gpu_name": "Fake GPU"}
    if plugin_version is not None:
        record["plugin_library_version"] = plugin_version
    sidecar = Sidecar(model_id="simam_resnet", variant="edge", classes=EXPRESSIONS_7, input=InputSpec(size=(48, 48)),
                      format="tensorrt", file="m.engine", graph_form="plugin", tensorrt=record)
    write_package(tmp_path / "m.engine", sidecar)
    return load_package(tmp_path / "m.json")


def test_runtime_plugin_load_failure_is_not_read_as_a_stale_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                  tiny_plugin_library: Path) -> None:
    from fer_edge.engines.tensorrt import TensorRTEngine

    monkeypatch.setenv("FER_EDGE_PLUGIN_LIBRARY", str(tiny_plugin_library))
    _setup(monkeypatch, "10.3.0", load_ok=False)
    with pytest.raises(PluginLibraryError):
        TensorRTEngine(_engine_package(tmp_path, "9.9.9"))


def test_runtime_refuses_an_engine_built_with_another_plugin_library(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                    tiny_plugin_library: Path) -> None:
    from fer_edge.engines.tensorrt import TensorRTEngine

    monkeypatch.setenv("FER_EDGE_PLUGIN_LIBRARY", str(tiny_plugin_library))
    _setup(monkeypatch, "10.3.0")
    with pytest.raises(EngineMismatchError, match="plugin library 0.0.1, this one is 9.9.9"):
        TensorRTEngine(_engine_package(tmp_path, "0.0.1"))


def test_engine_build_records_the_loaded_plugin_library_version(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                               tiny_plugin_library: Path) -> None:
    from fer_edge.builder.tensorrt_builder import build_engine

    _setup(monkeypatch, "10.3.0")
    record = build_engine(tmp_path / "m.onnx", tmp_path / "m.engine", _options(plugin_library=tiny_plugin_library))
    assert record["plugin_library_version"] == "9.9.9"


# --- calibrator (TensorRT 8.x implicit INT8) ---------------------------------------------------------------

def test_calibrator_profile_buffer_freed_and_cuda_errors_raised(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from fer_edge.builder.tensorrt_builder import build_engine

    faces = np.zeros((6, 3, 48, 48), np.float32)
    calls = _setup(monkeypatch, "8.6.1")
    build_engine(tmp_path / "m.onnx", tmp_path / "m.engine", _options(precision="int8", calibration=faces))
    assert calls.calibration_profile is not None, "dynamic batch needs a calibration profile on 8.x"
    assert calls.freed == [4096], "the calibrator's device buffer is freed after the build"
    calls = _setup(monkeypatch, "8.6.1", memcpy_error=1)
    with pytest.raises(ExportError, match="cudaMemcpy"):
        build_engine(tmp_path / "m2.onnx", tmp_path / "m2.engine", _options(precision="int8", calibration=faces))
    assert calls.freed == [4096] and not (tmp_path / "m2.engine").exists()


# --- timing cache ------------------------------------------------------------------------------------------

def test_a_rejected_timing_cache_is_never_overwritten(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from fer_edge.builder.tensorrt_builder import build_engine

    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"cache of another GPU")
    _setup(monkeypatch, "10.3.0", cache_ok=False)
    with pytest.warns(UserWarning, match="rejected the timing cache"):
        build_engine(tmp_path / "m.onnx", tmp_path / "m.engine", _options(timing_cache=cache))
    assert cache.read_bytes() == b"cache of another GPU" and (tmp_path / "m.engine").is_file()
    _setup(monkeypatch, "10.3.0")
    build_engine(tmp_path / "m.onnx", tmp_path / "m.engine", _options(timing_cache=cache))
    assert cache.read_bytes() == b"fresh timing cache"


# --- the device half of --onnx-only ------------------------------------------------------------------------

def _prepared(tmp_path: Path, precision: str = "int8", activations: str = "int8") -> Path:
    import onnx

    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["input"], ["logits"])], "g",
                                   [onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1, 3, 48, 48])],
                                   [onnx.helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, [1, 7])])
    onnx.save(onnx.helper.make_model(graph), str(tmp_path / "M.onnx"))
    sidecar = Sidecar(model_id="simam_resnet", variant="edge", classes=EXPRESSIONS_7, input=InputSpec(size=(48, 48)),
                      format="onnx", file="M.onnx", precision=precision, opset=17, tensorrt={"onnx_only": True},
                      calibration={"activations": activations, "method": "entropy"} if precision == "int8" else None)
    return write_package(tmp_path / "M.onnx", sidecar).sidecar_path


def test_device_build_of_a_prepared_int8_onnx(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from fer_edge.builder.pipeline import build

    calls = _setup(monkeypatch, "10.3.0")
    package = build(str(_prepared(tmp_path)), "fp32", "tensorrt", str(tmp_path / "M.engine"), log=lambda _: None)
    side = load_package(package.sidecar_path).sidecar
    assert (side.format, side.precision, side.graph_form) == ("tensorrt", "int8", "portable")
    assert side.calibration["activations"] == "int8" and side.tensorrt["gpu_name"] == "Fake GPU"
    assert calls.log.count("parse") == 1 and calls.flags == ["FP16", "INT8"], "the Q/DQ graph as prepared, INT8 on"


def test_a_prepared_onnx_is_for_tensorrt_only_and_onnx_runtime_int8_is_not_prepared(monkeypatch: pytest.MonkeyPatch,
                                                                                    tmp_path: Path) -> None:
    from fer_edge.builder.pipeline import build

    _setup(monkeypatch, "10.3.0")
    with pytest.raises(ExportError, match="--target tensorrt"):
        build(str(_prepared(tmp_path)), "fp32", "onnxruntime", log=lambda _: None)
    uint8 = tmp_path / "u8"
    uint8.mkdir()
    with pytest.raises(ExportError, match="not in TensorRT's Q/DQ form"):
        build(str(_prepared(uint8, activations="uint8")), "int8", "tensorrt", str(uint8 / "M.engine"),
              log=lambda _: None)


def test_onnx_only_needs_no_tensorrt_and_refuses_what_it_cannot_prepare(monkeypatch: pytest.MonkeyPatch) -> None:
    from fer_edge.builder.pipeline import build

    monkeypatch.setitem(sys.modules, "tensorrt", None)  # no TensorRT at all
    with pytest.raises(ExportError, match="FP32 or INT8"):
        build("simam_resnet", "fp16", "tensorrt", onnx_only=True, log=lambda _: None)
    with pytest.raises(ExportError, match="needs --target tensorrt"):
        build("simam_resnet", "fp32", "onnxruntime", onnx_only=True, log=lambda _: None)


def test_trtexec_flags_per_version() -> None:
    from fer_edge.trt_compat import trtexec_flags

    assert trtexec_flags("8.5.2", "int8", "L") == ["--int8", "--fp16", "--plugins=L"]
    assert trtexec_flags("8.6.1", "fp16", "L") == ["--fp16", "--staticPlugins=L"]
    assert trtexec_flags("10.3.0", "fp32", "L") == ["--dynamicPlugins=L"]
    assert trtexec_flags("11.1.0", "int8", None) == []
    with pytest.raises(ExportError, match="strongly typed"):
        trtexec_flags("11.1.0", "fp16", None)
