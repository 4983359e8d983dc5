"""ONNX Runtime backend: the default everywhere (CPU), with CUDA and TensorRT providers on GPUs.

``InferenceSession.run`` is thread-safe, so one engine serves many threads. The intra-op thread
count is always set explicitly: several sessions each grabbing every core oversubscribe the CPU
(ORT#3099, USERS.md); it defaults to ``FER_EDGE_THREADS`` or min(4, cores).

Intra-op threads do not spin-wait between runs unless ``FER_EDGE_ORT_SPINNING=1``: in the
Recognizer, OpenCV (detection, alignment) runs between inferences, and ORT workers spinning for
the next run took the cores it needed. On the 2-core benchmark machine (under load) spinning off
made full-frame detection + inference of a 640x480 frame 1.6-1.9x faster (p50) and batch-8
inference alone faster too; batch 1 alone was ~0.1 ms slower, and streams in tracking mode
were about the same either way (bench/README.md, "Streams").

INT8 packages on the CPU run a batch of two or more faces as shards, one single-thread session
per intra-op thread, in parallel: ORT's INT8 convolutions barely scale from one intra-op thread to
two, so two half-batches on one thread each beat one batch on two (measured at batch 8 on 2 cores,
spinning off: the default INT8 8.60 -> 6.56 ms, faer INT8 11.98 -> 7.04 ms; the FP32 default gains
nothing, 13.49 vs 13.65 ms). A single face still runs on the full-thread session.
``FER_EDGE_ORT_SHARDS=N`` sets the shard count for any package (1: off).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

import numpy as np

from fer_edge.engines.base import BackendManager, Engine, register_backend
from fer_edge.errors import BackendUnavailableError, PackageError
from fer_edge.package import ModelPackage

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}


def default_threads() -> int:
    """Intra-op threads: ``FER_EDGE_THREADS`` when set, else min(4, cores)."""
    env = os.environ.get("FER_EDGE_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else min(4, os.cpu_count() or 1)


def allow_spinning() -> bool:
    """Whether ORT's intra-op threads spin-wait between runs: only with ``FER_EDGE_ORT_SPINNING=1``."""
    return os.environ.get("FER_EDGE_ORT_SPINNING", "0").strip() == "1"


def shard_count(precision: str, threads: int, device: str | None) -> int:
    """Sessions a batch is split over: ``FER_EDGE_ORT_SHARDS`` when set, else one per thread for
    INT8 on the CPU (see the module docstring), else 1."""
    env = os.environ.get("FER_EDGE_ORT_SHARDS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    on_cpu = (device or "cpu").lower().partition(":")[0] == "cpu"  # the device forms providers_for takes
    return threads if precision == "int8" and on_cpu else 1


def cpu_session(model: str | bytes, threads: int, providers: Sequence[Any] = ("CPUExecutionProvider",)) -> Any:
    """An ``InferenceSession`` of ``model`` (a path or serialized bytes) set up as every fer_edge engine
    runs one: ``threads`` intra-op threads, one inter-op thread, all graph optimisations, spinning per
    :func:`allow_spinning`. The INT8 build times its candidates through it, so it measures what runs."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning() else "0")
    return ort.InferenceSession(model, options, providers=list(providers))


def run_in_shards(run: Callable[[Any, np.ndarray], np.ndarray], sessions: Sequence[Any], pool: Executor,
                  batch: np.ndarray) -> np.ndarray:
    """``batch`` split over ``sessions`` in parallel (the caller's thread takes the first part; ``pool``
    the others), the outputs concatenated in order."""
    parts = np.array_split(batch, min(len(sessions), len(batch)))
    pending = [pool.submit(run, s, np.ascontiguousarray(p)) for s, p in zip(sessions[1:], parts[1:])]
    first = run(sessions[0], np.ascontiguousarray(parts[0]))
    return np.concatenate([first, *(f.result() for f in pending)])


def providers_for(device: str | None, available: list[str]) -> list[Any]:
    """ORT providers for ``device`` ("cpu", "cuda[:N]", "tensorrt[:N]"), CPU always last as fallback."""
    kind, _, index = (device or "cpu").lower().partition(":")
    if kind not in PROVIDERS:
        raise BackendUnavailableError(f"unknown ONNX Runtime device {device!r}; use 'cpu', 'cuda[:N]' or 'tensorrt[:N]'")
    if PROVIDERS[kind] not in available:
        raise BackendUnavailableError(f"ONNX Runtime here has no {PROVIDERS[kind]} (available: {available}); "
                                      "install onnxruntime-gpu for CUDA/TensorRT, or use device='cpu'")
    options = {"device_id": int(index)} if index.isdigit() else {}
    chain: list[Any] = [(PROVIDERS[kind], options)] if kind != "cpu" else []
    if kind == "tensorrt" and PROVIDERS["cuda"] in available:
        chain.append((PROVIDERS["cuda"], options))
    return chain + ["CPUExecutionProvider"]


class OnnxRuntimeEngine(Engine):
    backend = "onnxruntime"

    def __init__(self, package: ModelPackage, device: str | None = None, threads: int | None = None) -> None:
        import onnxruntime as ort

        if package.sidecar.graph_form == "plugin":
            raise PackageError(f"{package.model_path.name} holds fer_edge TensorRT plugin nodes (prepared with "
                               "--onnx-only): ONNX Runtime cannot run it; build its engine on the device with "
                               f"`fer-edge build --model {package.sidecar_path.name} --target tensorrt`")
        super().__init__(package, package.sidecar.batch.max)
        self.threads = threads or default_threads()
        providers = providers_for(device, ort.get_available_providers())

        def session(intra_op_threads: int) -> Any:
            try:
                return cpu_session(str(package.model_path), intra_op_threads, providers)
            except Exception as exc:  # ORT raises its own exception types for unreadable or invalid graphs
                raise PackageError(f"ONNX Runtime cannot load {package.model_path}: {exc}") from exc

        self.session = session(self.threads)
        shards = shard_count(package.sidecar.precision, self.threads, device)
        self.shards = [session(max(1, self.threads // shards)) for _ in range(shards)] if shards > 1 else []
        self._pool = ThreadPoolExecutor(max_workers=shards - 1) if shards > 1 else None
        self.spinning = allow_spinning()
        self.providers = self.session.get_providers()
        self._check_io()

    def _check_io(self) -> None:
        """Refuse a graph whose input/output disagree with the sidecar (the package was mixed up)."""
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        spec, path = self.input_spec, self.package.model_path.name
        if len(inputs) != 1:
            raise PackageError(f"{path} has {len(inputs)} inputs; fer_edge models take exactly one image batch")
        shape = inputs[0].shape
        expected = [3, *spec.size]
        if len(shape) != 4 or any(isinstance(d, int) and d != e for d, e in zip(shape[1:], expected)):
            raise PackageError(f"{path} takes input {shape} but its sidecar says (N, 3, {spec.size[0]}, "
                               f"{spec.size[1]}): the sidecar belongs to another model; rebuild the package")
        names = [o.name for o in outputs]
        if self.package.sidecar.output_name not in names:
            raise PackageError(f"{path} has outputs {names}, not {self.package.sidecar.output_name!r} from its sidecar")
        self._input_name = inputs[0].name
        self._output_name = self.package.sidecar.output_name
        width = outputs[names.index(self._output_name)].shape[-1]
        if isinstance(width, int) and width != len(self.classes):
            raise PackageError(f"{path} outputs {width} logits but its sidecar lists {len(self.classes)} classes")

    def _run(self, session: Any, batch: np.ndarray) -> np.ndarray:
        return np.asarray(session.run([self._output_name], {self._input_name: batch})[0])

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        if self._pool is None or len(batch) < 2:
            return self._run(self.session, batch)
        return run_in_shards(self._run, self.shards, self._pool, batch)

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "providers": self.providers, "threads": self.threads,
                "spinning": self.spinning, "shards": max(1, len(self.shards))}


@register_backend
class OnnxRuntimeManager(BackendManager):
    name = "onnxruntime"
    formats = ("onnx",)
    module = "onnxruntime"

    @classmethod
    def providers(cls) -> list[str]:
        """Execution providers this ONNX Runtime build offers (CUDA needs onnxruntime-gpu)."""
        import onnxruntime

        return list(onnxruntime.get_available_providers())

    @classmethod
    def load(cls, package: ModelPackage, device: str | None = None, threads: int | None = None) -> Engine:
        if not cls.is_available():
            raise BackendUnavailableError("ONNX Runtime is not installed: pip install onnxruntime")
        cls.check_format(package)
        return OnnxRuntimeEngine(package, device, threads)
