"""TensorRT engine build, version-bridged through :mod:`fer_edge.trt_compat` (8.5/8.6, 10.x, 11.x).

8.x: explicit-batch network, FP16/INT8 builder flags, legacy entropy calibrator. 10.x: Q/DQ ONNX
(explicit INT8) or flags, progress monitor. 11.x: strongly typed only — precision comes from the
ONNX, so INT8 needs Q/DQ and FP16 is refused (fer_edge exports FP32 graphs). All: optimisation
profile from the batch range, workspace limit, DLA, timing cache, ``build_serialized_network``.
The GPU is queried before the build, so no engine is written that its sidecar cannot describe.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fer_edge.errors import BackendUnavailableError, ExportError
from fer_edge.fileio import atomic_write
from fer_edge.package import BatchRange
from fer_edge.trt_compat import TrtApi, api_for, check_precision, cuda_runtime


@dataclass(frozen=True)
class EngineOptions:
    precision: str  # "fp32" | "fp16" | "int8"
    batch: BatchRange
    input_shape: tuple[int, int, int]  # C, H, W
    input_name: str = "input"
    workspace_mb: int = 1024
    dla_core: int | None = None
    timing_cache: Path | None = None
    calibration: np.ndarray | None = None  # legacy calibrator input (TRT 8.5/8.6/10, non-Q/DQ graphs)
    calibration_cache: Path | None = None
    plugin_library: Path | None = None


def load_plugin_library(trt: Any, api: TrtApi, path: Path) -> str:
    """Register the fer_edge plugin creators (once per process); return the library's version."""
    from fer_edge.plugins import load_into_tensorrt

    return load_into_tensorrt(trt, api, path)


def _cuda(result: Any, what: str) -> Any:
    """Unpack a cuda-python ``(error, value...)`` result, raising :class:`ExportError` on any CUDA error."""
    error, *values = result if isinstance(result, tuple) else (result,)
    if int(error) != 0:
        raise ExportError(f"{what} failed during the TensorRT build: CUDA error {error}")
    return values[0] if len(values) == 1 else (values or None)


def _make_calibrator(trt: Any, tensors: np.ndarray, cache: Path | None, batch: int) -> Any:
    """An IInt8EntropyCalibrator2 over preprocessed faces; only built where ``api.calibrator``.

    Every CUDA call is checked; :meth:`close` frees the device buffer (``build_engine`` calls it).
    """
    cudart = cuda_runtime()
    if len(tensors) < batch:
        raise ExportError(f"INT8 calibration needs at least one batch of {batch} faces, got {len(tensors)}")

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self._index = 0
            self.error: ExportError | None = None
            self._device: Any = _cuda(cudart.cudaMalloc(tensors[:batch].nbytes), "cudaMalloc (calibration batch)")

        def get_batch_size(self) -> int:
            return batch

        def get_batch(self, names: list[str]) -> list[int] | None:
            if self._index + batch > len(tensors) or self.error is not None:
                return None
            chunk = np.ascontiguousarray(tensors[self._index:self._index + batch], dtype=np.float32)
            self._index += batch
            try:
                _cuda(cudart.cudaMemcpy(self._device, chunk.ctypes.data, chunk.nbytes,
                                        cudart.cudaMemcpyKind.cudaMemcpyHostToDevice), "cudaMemcpy (calibration batch)")
            except ExportError as exc:  # TensorRT would swallow it: end calibration, re-raised after the build
                self.error = exc
                return None
            return [int(self._device)]

        def read_calibration_cache(self) -> bytes | None:
            return cache.read_bytes() if cache is not None and cache.is_file() else None

        def write_calibration_cache(self, data: Any) -> None:
            if cache is not None:
                with atomic_write(cache) as handle:
                    handle.write(bytes(data))

        def close(self) -> None:
            if self._device is not None:
                device, self._device = self._device, None
                _cuda(cudart.cudaFree(device), "cudaFree (calibration batch)")

    return EntropyCalibrator()


def _progress_monitor(trt: Any) -> Any:
    """Print build phases as they start and finish (builds take minutes; never build silently)."""

    class Monitor(trt.IProgressMonitor):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._start: dict[str, float] = {}

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            self._start[phase_name] = time.perf_counter()
            print(f"  [tensorrt] {phase_name} ({num_steps} steps)", file=sys.stderr, flush=True)

        def step_complete(self, phase_name: str, step: int) -> bool:
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            took = time.perf_counter() - self._start.pop(phase_name, time.perf_counter())
            print(f"  [tensorrt] {phase_name} done in {took:.1f} s", file=sys.stderr, flush=True)

    return Monitor()


def device_info() -> dict[str, Any]:
    """GPU name and compute capability, recorded in the sidecar (engines are GPU-specific)."""
    cudart = cuda_runtime()
    err, props = cudart.cudaGetDeviceProperties(0)
    if int(err) != 0:
        raise BackendUnavailableError(f"no usable CUDA GPU for a TensorRT build: {err}")
    name = props.name.decode(errors="replace").rstrip("\x00") if isinstance(props.name, bytes) else str(props.name)
    return {"gpu_name": name, "compute_capability": f"{props.major}.{props.minor}"}


def _timing_cache(config: Any, path: Path | None) -> bool:
    """Attach the timing cache at ``path`` (or a fresh one); True when it may be written back.

    A cache TensorRT rejects (made by another TensorRT version or GPU) is left as it is: the build
    runs with a fresh cache and the file is not overwritten.
    """
    blob = path.read_bytes() if path is not None and path.is_file() else b""
    cache = config.create_timing_cache(blob)
    if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
        return path is not None
    if not blob:
        raise ExportError("TensorRT did not accept a fresh timing cache")
    warnings.warn(f"TensorRT rejected the timing cache {path} (made by another TensorRT version or GPU); building "
                  "without it and leaving the file as it is", stacklevel=3)
    if not config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False):
        raise ExportError("TensorRT did not accept a fresh timing cache")
    return False


def build_engine(onnx_path: Path, engine_path: Path, options: EngineOptions) -> dict[str, Any]:
    """Build and atomically write a serialized engine; return its sidecar ``tensorrt`` record."""
    import tensorrt as trt

    api = api_for(trt.__version__)
    check_precision(api, options.precision)
    device = device_info()  # before building: an engine is only written with the GPU its sidecar names
    logger = trt.Logger(trt.Logger.WARNING)
    plugin_version = None
    if options.plugin_library is not None:
        plugin_version = load_plugin_library(trt, api, options.plugin_library)
    builder = trt.Builder(logger)
    network = builder.create_network(api.network_flags(trt, strongly_typed=api.strongly_typed_only))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT {api.version} cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mb << 20)
    if api.progress_monitor:
        config.progress_monitor = _progress_monitor(trt)
    profile = builder.create_optimization_profile()
    c, h, w = options.input_shape
    b = options.batch
    profile.set_shape(options.input_name, trt.Dims([b.min, c, h, w]), trt.Dims([b.opt, c, h, w]),
                      trt.Dims([b.max, c, h, w]))
    config.add_optimization_profile(profile)
    calibrator = None
    if api.precision_flags:
        if options.precision in ("fp16", "int8"):
            config.set_flag(trt.BuilderFlag.FP16)  # INT8 layers fall back to FP16, not FP32
        if options.precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)
            if options.calibration is not None and api.calibrator:
                calibrator = _make_calibrator(trt, options.calibration, options.calibration_cache, b.opt)
                config.int8_calibrator = calibrator
                config.set_calibration_profile(profile)  # dynamic batch: calibrate at the opt shape
    if options.dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = options.dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    write_cache = _timing_cache(config, options.timing_cache)
    try:
        serialized = builder.build_serialized_network(network, config)
    finally:
        if calibrator is not None:
            calibrator.close()
    if calibrator is not None and calibrator.error is not None:
        raise calibrator.error
    if serialized is None or serialized.nbytes == 0:
        raise ExportError(f"TensorRT {api.version} failed to build an engine from {onnx_path} (see its log above)")
    with atomic_write(engine_path) as handle:
        handle.write(memoryview(serialized))
    if write_cache and options.timing_cache is not None:
        with atomic_write(options.timing_cache) as handle:
            handle.write(memoryview(config.get_timing_cache().serialize()))
    record: dict[str, Any] = {"version": str(api.version), **device,
                              "plugin_library": os.fspath(options.plugin_library) if options.plugin_library else None}
    if plugin_version is not None:
        record["plugin_library_version"] = plugin_version
    return record
