"""TensorRT backend: a serialized engine from a package, run with the name-based v3 API.

``set_input_shape`` / ``set_tensor_address`` / ``execute_async_v3`` exist from TensorRT 8.5 to 11,
so one execution path covers every supported version; what differs between versions (plugin
registry calls) is decided by :mod:`fer_edge.trt_compat`, the one version shim. CUDA memory
comes from cuda-python (``cuda.bindings.runtime``; ``cuda.cudart`` on cuda-python < 12.6), with
pinned host buffers so copies are truly asynchronous.

Threads: an execution context is not thread-safe (TRT#1300), so each calling thread gets its own
context, stream and buffers, created on its first call and freed by :meth:`TensorRTEngine.close`.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from fer_edge.engines.base import BackendManager, Engine, register_backend
from fer_edge.errors import BackendUnavailableError, EngineMismatchError, PackageError, PluginLibraryError
from fer_edge.package import ModelPackage, Sidecar
from fer_edge.trt_compat import TrtVersion, api_for, cuda_runtime, installed_version


def _cudart() -> Any:
    """cuda-python's runtime module (:func:`fer_edge.trt_compat.cuda_runtime`)."""
    return cuda_runtime()


def _check(result: Any) -> Any:
    """Unpack a cuda-python ``(error, value...)`` tuple, raising on any CUDA error."""
    cudart = _cudart()
    error, *values = result if isinstance(result, tuple) else (result,)
    if error != cudart.cudaError_t.cudaSuccess:
        raise BackendUnavailableError(f"CUDA call failed: {cudart.cudaGetErrorName(error)[1]!r}")
    return values[0] if len(values) == 1 else values


def parse_compute_capability(value: Any) -> tuple[int, int]:
    """``"8.7"``, ``[8, 7]`` or ``87`` -> (8, 7)."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return int(value[0]), int(value[1])
    text = str(value)
    if "." in text:
        major, minor = text.split(".", 1)
        return int(major), int(minor)
    return int(text[:-1]), int(text[-1])


def check_engine_compat(sidecar: Sidecar, running: TrtVersion, compute_capability: tuple[int, int],
                        gpu_name: str) -> None:
    """Refuse an engine built for another TensorRT version or GPU, saying what to rebuild.

    A serialized engine is only valid on the TensorRT version and GPU architecture that built it;
    loading it anyway fails deep inside TensorRT or, worse, runs wrong kernels.
    """
    built = sidecar.tensorrt or {}
    rebuild = f"rebuild it here with `fer-edge build --model {sidecar.model_id} --target tensorrt`"
    if "version" not in built or "compute_capability" not in built:
        raise PackageError(f"engine package {sidecar.file} lacks tensorrt.version / compute_capability in its "
                           f"sidecar; {rebuild}")
    built_version = TrtVersion.parse(str(built["version"]))
    if built_version != running:
        raise EngineMismatchError(f"{sidecar.file} was built with TensorRT {built_version}, this machine runs "
                                  f"TensorRT {running}; {rebuild}")
    built_cc = parse_compute_capability(built["compute_capability"])
    if built_cc != compute_capability:
        raise EngineMismatchError(
            f"{sidecar.file} was built for a GPU of compute capability {built_cc[0]}.{built_cc[1]} "
            f"({built.get('gpu_name', 'unknown')}), this GPU is {gpu_name} ({compute_capability[0]}."
            f"{compute_capability[1]}); {rebuild}")


def needs_plugin_library(sidecar: Sidecar) -> bool:
    """Plugin-form engines contain fer_edge plugin layers and cannot deserialize without the library."""
    return sidecar.graph_form == "plugin" or bool((sidecar.tensorrt or {}).get("plugin_library"))


def load_plugin_library(trt: Any, api: Any, sidecar: Sidecar) -> str:
    """Load fer_edge's plugin library into TensorRT's registry (once per process); return its path.

    Raises :class:`PluginLibraryError` when it is missing or TensorRT cannot load it, and
    :class:`EngineMismatchError` when the sidecar records another plugin library version (the
    engine's serialized plugins belong to that one).
    """
    from fer_edge.plugins import load_into_tensorrt, plugin_library_path

    path = plugin_library_path()
    if path is None:
        raise PluginLibraryError("this engine uses fer_edge plugins (SimAM_TRT / CCAttention_TRT) but the plugin "
                                 "library was not built: reinstall fer_edge with CMake, CUDA and TensorRT present, "
                                 "or rebuild the model in portable form")
    version = load_into_tensorrt(trt, api, path)
    recorded = (sidecar.tensorrt or {}).get("plugin_library_version")
    if recorded is not None and str(recorded) != version:
        raise EngineMismatchError(f"{sidecar.file} was built with fer_edge plugin library {recorded}, this one is "
                                  f"{version} ({path}); rebuild it with `fer-edge build --model {sidecar.model_id} "
                                  "--target tensorrt`")
    return str(path)


def gpu_properties(device: int) -> tuple[str, tuple[int, int]]:
    """Name and compute capability of CUDA device ``device``."""
    cudart = _cudart()
    props = _check(cudart.cudaGetDeviceProperties(device))
    name = props.name.decode(errors="replace").rstrip("\x00") if isinstance(props.name, bytes) else str(props.name)
    return name, (int(props.major), int(props.minor))


@dataclass
class _Slot:
    """One thread's execution context, stream and (pinned host, device) buffer pairs."""

    context: Any
    stream: Any
    host: dict[str, np.ndarray]
    device: dict[str, int]
    host_ptrs: list[int]


class TensorRTEngine(Engine):
    backend = "tensorrt"

    def __init__(self, package: ModelPackage, device: str | None = None) -> None:
        import tensorrt as trt

        api = api_for(installed_version())
        self.device_index = int((device or "cuda:0").partition(":")[2] or 0)
        cudart = _cudart()
        _check(cudart.cudaSetDevice(self.device_index))
        gpu_name, cc = gpu_properties(self.device_index)
        check_engine_compat(package.sidecar, api.version, cc, gpu_name)
        self._logger = trt.Logger(trt.Logger.WARNING)
        trt.init_libnvinfer_plugins(self._logger, "")
        self.plugin_library = load_plugin_library(trt, api, package.sidecar) if needs_plugin_library(
            package.sidecar) else None
        self._runtime = trt.Runtime(self._logger)
        engine = self._runtime.deserialize_cuda_engine(package.model_path.read_bytes())
        if engine is None:
            raise EngineMismatchError(f"TensorRT {api.version} could not deserialize {package.model_path.name}; "
                                      f"rebuild it with `fer-edge build --model {package.sidecar.model_id} "
                                      "--target tensorrt`")
        self._engine = engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if len(inputs) != 1 or package.sidecar.output_name not in names:
            raise PackageError(f"{package.model_path.name} has tensors {names}; expected one input and output "
                               f"{package.sidecar.output_name!r}")
        self._input, self._output = inputs[0], package.sidecar.output_name
        profile_max = engine.get_tensor_profile_shape(self._input, 0)[2]
        super().__init__(package, min(package.sidecar.batch.max, int(profile_max[0])))
        self._dtypes = {n: np.dtype(trt.nptype(engine.get_tensor_dtype(n))) for n in (self._input, self._output)}
        self._local = threading.local()
        self._slots: list[_Slot] = []
        self._lock = threading.Lock()
        self.gpu_name, self.tensorrt_version = gpu_name, str(api.version)

    def _slot(self) -> _Slot:
        slot: _Slot | None = getattr(self._local, "slot", None)
        if slot is not None:
            return slot
        cudart = _cudart()
        _check(cudart.cudaSetDevice(self.device_index))
        height, width = self.input_spec.size
        shapes = {self._input: (self.max_batch, 3, height, width), self._output: (self.max_batch, len(self.classes))}
        host, dev, host_ptrs = {}, {}, []
        for name, shape in shapes.items():
            nbytes = int(np.prod(shape)) * self._dtypes[name].itemsize
            ptr = int(_check(cudart.cudaMallocHost(nbytes)))
            host_ptrs.append(ptr)
            buffer = (ctypes.c_byte * nbytes).from_address(ptr)
            host[name] = np.frombuffer(buffer, dtype=self._dtypes[name]).reshape(shape)
            dev[name] = int(_check(cudart.cudaMalloc(nbytes)))
        context = self._engine.create_execution_context()
        for name, ptr in dev.items():
            context.set_tensor_address(name, ptr)
        slot = _Slot(context, _check(cudart.cudaStreamCreate()), host, dev, host_ptrs)
        with self._lock:
            self._slots.append(slot)
        self._local.slot = slot
        return slot

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        cudart = _cudart()
        slot = self._slot()
        n = len(batch)
        inp, out = slot.host[self._input][:n], slot.host[self._output][:n]
        inp[...] = batch
        slot.context.set_input_shape(self._input, tuple(inp.shape))
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        _check(cudart.cudaMemcpyAsync(slot.device[self._input], inp.ctypes.data, inp.nbytes, h2d, slot.stream))
        if not slot.context.execute_async_v3(int(slot.stream)):
            raise BackendUnavailableError(f"TensorRT failed to run {self.package.model_path.name} (see its log)")
        _check(cudart.cudaMemcpyAsync(out.ctypes.data, slot.device[self._output], out.nbytes, d2h, slot.stream))
        _check(cudart.cudaStreamSynchronize(slot.stream))
        return np.array(out, dtype=np.float32)

    def close(self) -> None:
        """Free every thread's context, stream and buffers (the engine is unusable afterwards)."""
        cudart = _cudart()
        with self._lock:
            slots, self._slots = self._slots, []
        for slot in slots:
            del slot.context
            cudart.cudaStreamDestroy(slot.stream)
            for ptr in slot.device.values():
                cudart.cudaFree(ptr)
            for ptr in slot.host_ptrs:
                cudart.cudaFreeHost(ptr)

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "gpu": self.gpu_name, "tensorrt": self.tensorrt_version,
                "plugin_library": self.plugin_library}


@register_backend
class TensorRTManager(BackendManager):
    name = "tensorrt"
    formats = ("tensorrt",)
    module = "tensorrt"

    @classmethod
    def is_available(cls) -> bool:
        """TensorRT and cuda-python import and a CUDA device is visible."""
        try:
            import tensorrt  # noqa: F401

            return int(_check(_cudart().cudaGetDeviceCount())) > 0
        except (ImportError, BackendUnavailableError):
            return False

    @classmethod
    def version(cls) -> str | None:
        try:
            return str(installed_version())
        except BackendUnavailableError:
            return None

    @classmethod
    def cuda_versions(cls) -> tuple[str, str] | None:
        """CUDA (runtime, driver) versions such as ("12.6", "12.8"), or None without cuda-python."""
        try:
            cudart = _cudart()
            versions = [int(_check(cudart.cudaRuntimeGetVersion())), int(_check(cudart.cudaDriverGetVersion()))]
        except BackendUnavailableError:
            return None
        runtime, driver = (f"{v // 1000}.{v % 1000 // 10}" for v in versions)
        return runtime, driver

    @classmethod
    def gpu(cls, device: int = 0) -> tuple[str, tuple[int, int]] | None:
        """(name, compute capability) of the GPU, or None without TensorRT/CUDA."""
        if not cls.is_available():
            return None
        return gpu_properties(device)

    @classmethod
    def load(cls, package: ModelPackage, device: str | None = None) -> Engine:
        if not cls.is_available():
            raise BackendUnavailableError("the TensorRT backend needs TensorRT, cuda-python and an NVIDIA GPU; "
                                          "use backend='onnxruntime' here")
        cls.check_format(package)
        return TensorRTEngine(package, device)
