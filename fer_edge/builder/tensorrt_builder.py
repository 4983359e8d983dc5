"""TensorRT engine build, version-bridged through :mod:`fer_edge.trt_compat` (8.5/8.6, 10.x, 11.x).

8.x: explicit-batch network, FP16/INT8 builder flags, legacy entropy calibrator. 10.x: Q/DQ ONNX
(explicit INT8) or flags, progress monitor. 11.x: strongly typed only — precision comes from the
ONNX, so an FP16 build needs an FP16 ONNX and INT8 needs Q/DQ. All: optimisation profile from
the batch range, workspace limit, DLA, timing cache, ``build_serialized_network``.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fer_edge.errors import BackendUnavailableError, ExportError, PluginLibraryError
from fer_edge.fileio import atomic_write
from fer_edge.package import BatchRange
from fer_edge.trt_compat import TrtApi, api_for


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


def load_plugin_library(trt: Any, api: TrtApi, path: Path) -> None:
    """Register the fer_edge plugin creators: ``load_library`` on 10+, ``dlopen`` on 8.x."""
    if not path.is_file():
        raise PluginLibraryError(f"plugin library {path} does not exist; build it with `pip install -e .` "
                                 "on a machine with CUDA and TensorRT headers")
    if api.registry_load_library:
        handle = trt.get_plugin_registry().load_library(str(path))
        if handle is None:
            raise PluginLibraryError(f"TensorRT could not load the plugin library {path}")
    else:
        import ctypes

        ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)  # creators register on load (REGISTER_TENSORRT_PLUGIN)


def _make_calibrator(trt: Any, tensors: np.ndarray, cache: Path | None, batch: int) -> Any:
    """An IInt8EntropyCalibrator2 over preprocessed faces; only built where ``api.calibrator``."""
    from cuda.bindings import runtime as cudart  # lazy: only a TensorRT build machine has it

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self._index = 0
            err, self._device = cudart.cudaMalloc(tensors[:batch].nbytes)
            if int(err) != 0:
                raise ExportError(f"cudaMalloc for the calibrator failed: {err}")

        def get_batch_size(self) -> int:
            return batch

        def get_batch(self, names: list[str]) -> list[int] | None:
            if self._index + batch > len(tensors):
                return None
            chunk = np.ascontiguousarray(tensors[self._index:self._index + batch])
            self._index += batch
            cudart.cudaMemcpy(self._device, chunk.ctypes.data, chunk.nbytes,
                              cudart.cudaMemcpyKind.cudaMemcpyHostToDevice)
            return [int(self._device)]

        def read_calibration_cache(self) -> bytes | None:
            return cache.read_bytes() if cache is not None and cache.is_file() else None

        def write_calibration_cache(self, data: Any) -> None:
            if cache is not None:
                with atomic_write(cache) as handle:
                    handle.write(bytes(data))

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
    from cuda.bindings import runtime as cudart

    err, props = cudart.cudaGetDeviceProperties(0)
    if int(err) != 0:
        raise BackendUnavailableError(f"no usable CUDA GPU for a TensorRT build: {err}")
    name = props.name.decode(errors="replace").rstrip("\x00") if isinstance(props.name, bytes) else str(props.name)
    return {"gpu_name": name, "compute_capability": f"{props.major}.{props.minor}"}


def build_engine(onnx_path: Path, engine_path: Path, options: EngineOptions) -> dict[str, Any]:
    """Build and atomically write a serialized engine; return its sidecar ``tensorrt`` record."""
    import tensorrt as trt

    api = api_for(trt.__version__)
    logger = trt.Logger(trt.Logger.WARNING)
    if options.plugin_library is not None:
        load_plugin_library(trt, api, options.plugin_library)
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
    if api.precision_flags:
        if options.precision in ("fp16", "int8"):
            config.set_flag(trt.BuilderFlag.FP16)  # INT8 layers fall back to FP16, not FP32
        if options.precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)
            if options.calibration is not None and api.calibrator:
                config.int8_calibrator = _make_calibrator(trt, options.calibration, options.calibration_cache,
                                                          options.batch.opt)
    profile = builder.create_optimization_profile()
    c, h, w = options.input_shape
    b = options.batch
    profile.set_shape(options.input_name, trt.Dims([b.min, c, h, w]), trt.Dims([b.opt, c, h, w]),
                      trt.Dims([b.max, c, h, w]))
    config.add_optimization_profile(profile)
    if options.dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = options.dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    cache_blob = options.timing_cache.read_bytes() if options.timing_cache and options.timing_cache.is_file() else b""
    timing_cache = config.create_timing_cache(cache_blob)
    config.set_timing_cache(timing_cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None or serialized.nbytes == 0:
        raise ExportError(f"TensorRT {api.version} failed to build an engine from {onnx_path} (see its log above)")
    with atomic_write(engine_path) as handle:
        handle.write(memoryview(serialized))
    if options.timing_cache is not None:
        with atomic_write(options.timing_cache) as handle:
            handle.write(memoryview(config.get_timing_cache().serialize()))
    return {"version": str(api.version), **device_info(),
            "plugin_library": os.fspath(options.plugin_library) if options.plugin_library else None}
