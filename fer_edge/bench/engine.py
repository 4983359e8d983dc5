"""Engine benchmark: load time, latency percentiles and throughput per batch size, memory.

Any package the runtime can load is measured through the same :class:`~fer_edge.engines.base.Engine`
the Recognizer uses (so what is timed is what ships), resolved exactly as ``Recognizer(model=...)``
resolves it; a zoo model id is built into a benchmark package first (:mod:`fer_edge.bench.zoo`).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fer_edge.bench.stats import (
    LatencyStats,
    check_counts,
    current_rss_mb,
    device_memory_used_mb,
    peak_rss_mb,
    time_calls,
)
from fer_edge.engines import get_backend
from fer_edge.engines.base import Engine
from fer_edge.errors import BackendUnavailableError, InvalidInputError

DEFAULT_BATCHES = (1, 4, 8, 16)


@dataclass(frozen=True)
class BatchResult:
    """One batch size: latency per engine call and the faces per second it implies."""

    batch: int
    latency: LatencyStats
    throughput: float  # faces/s = batch / mean latency

    def to_dict(self) -> dict[str, Any]:
        return {"batch": self.batch, **self.latency.to_dict(), "throughput_fps": round(self.throughput, 2)}


@dataclass
class EngineBench:
    """Everything measured for one model / backend / precision."""

    model: str  # as given: id, package path or "default"
    model_id: str
    variant: str
    precision: str
    backend: str
    device: str | None
    input_size: tuple[int, int]
    load_s: float
    batches: list[BatchResult]
    peak_rss_mb: float
    rss_growth_mb: float  # resident memory added by loading and running this engine
    device_mem_mb: float | None = None  # in use on the whole GPU after the run (CUDA context included)
    engine: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "model_id": self.model_id, "variant": self.variant, "precision": self.precision,
                "backend": self.backend, "device": self.device, "input_size": list(self.input_size),
                "load_s": round(self.load_s, 4), "peak_rss_mb": round(self.peak_rss_mb, 1),
                "rss_growth_mb": round(self.rss_growth_mb, 1),
                "device_mem_mb": None if self.device_mem_mb is None else round(self.device_mem_mb, 1),
                "engine": json.loads(json.dumps(self.engine, default=str)), "note": self.note,
                "batches": [b.to_dict() for b in self.batches]}


def parse_batches(text: str) -> tuple[int, ...]:
    """``"1,4,8,16"`` -> (1, 4, 8, 16); anything but positive integers is an error naming the bad item."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items or not all(t.isdigit() and int(t) > 0 for t in items):
        raise InvalidInputError(f"--batch must be comma-separated positive integers such as 1,4,8,16, got {text!r}")
    return tuple(int(t) for t in items)


def bench_engine(engine: Engine, batches: Sequence[int] = DEFAULT_BATCHES, warmup: int = 10, iters: int = 50,
                 seed: int = 0) -> list[BatchResult]:
    """Latency of ``engine.infer`` on a fixed random batch of each size (values do not change the speed)."""
    check_counts(warmup, iters)
    if not batches or min(batches) < 1:
        raise InvalidInputError(f"batch sizes must be positive integers, got {list(batches)}")
    height, width = engine.input_spec.size
    rng = np.random.default_rng(seed)
    results = []
    for batch in batches:
        inputs = rng.standard_normal((batch, 3, height, width)).astype(np.float32)

        def call(_: int, x: np.ndarray = inputs) -> np.ndarray:
            return engine.infer(x)

        stats = time_calls(call, warmup, iters)
        results.append(BatchResult(batch, stats, batch / (stats.mean_ms / 1e3)))
    return results


def is_zoo_id(model: str) -> bool:
    """True for a zoo model id (one with an export recipe) that is not also a path here."""
    from fer_edge.builder.recipes import list_recipes

    return model in list_recipes() and not os.path.exists(model)


def _open(model: str, backend: str, precision: str, device: str | None, variant: str,
          in_size: tuple[int, int] | None, log: Callable[[str], None] | None) -> tuple[Engine, str, float, str]:
    """Load the engine to measure: returns (engine, device, load seconds, note)."""
    if is_zoo_id(model):
        from fer_edge.bench.zoo import zoo_package, zoo_torch_engine

        note = "zoo architecture with untrained weights"
        if backend == "torch":
            start = time.perf_counter()
            engine = zoo_torch_engine(model, variant, in_size)
            return engine, device or "cpu", time.perf_counter() - start, note + " (PyTorch eager)"
        if backend not in ("auto", "onnxruntime"):
            raise BackendUnavailableError(f"a zoo id is benchmarked on onnxruntime or torch; for --backend {backend} "
                                          f"build a package (`fer-edge build --model {model} --target {backend}`) "
                                          "and pass its path")
        package = zoo_package(model, variant, in_size, "fp32" if precision == "auto" else precision, log=log)
        device = device or "cpu"
        start = time.perf_counter()
        engine = get_backend("onnxruntime").load(package, device)
        return engine, device, time.perf_counter() - start, note
    from fer_edge.engines.resolve import choose, find_packages, load_engine

    if model.endswith(".pt"):
        start = time.perf_counter()
        engine, choice = load_engine(model, backend, device, precision)
        return engine, choice.device or "cpu", time.perf_counter() - start, "PyTorch checkpoint"
    choice = choose(find_packages(model), backend, device, precision)
    choice.package.verify_checksum()
    start = time.perf_counter()
    engine = get_backend(choice.backend).load(choice.package, choice.device)
    return engine, choice.device or "cpu", time.perf_counter() - start, choice.reason


def benchmark(model: str, backend: str = "auto", precision: str = "auto", device: str | None = None,
              batches: Sequence[int] = DEFAULT_BATCHES, warmup: int = 10, iters: int = 50, variant: str = "edge",
              in_size: tuple[int, int] | None = None, log: Callable[[str], None] | None = None) -> EngineBench:
    """Load ``model`` (zoo id, package path, ``"default"`` or a cached id) and measure it.

    ``variant`` / ``in_size`` apply to zoo ids only (packages have a fixed input). Load time
    covers creating the engine from the file (graph optimisation, engine deserialisation);
    building a zoo package beforehand is not part of it.
    """
    check_counts(warmup, iters)
    if variant not in ("edge", "paper"):
        raise InvalidInputError(f"variant must be 'edge' or 'paper', got {variant!r}")
    rss_before = current_rss_mb()
    engine, device, load_s, note = _open(model, backend, precision, device, variant, in_size, log)
    results = bench_engine(engine, batches, warmup, iters)
    side = engine.package.sidecar
    if "torch" in sys.modules:  # imported to build a zoo package or to run eager
        note += "; torch is loaded in this process, so peak RSS includes it"
    return EngineBench(model=model, model_id=side.model_id, variant=side.variant, precision=side.precision,
                       backend=engine.backend, device=device, input_size=side.input.size, load_s=load_s,
                       batches=results, peak_rss_mb=peak_rss_mb(), rss_growth_mb=current_rss_mb() - rss_before,
                       device_mem_mb=device_memory_used_mb(device), engine=engine.describe(), note=note)


def machine_info() -> dict[str, Any]:
    """CPU, core count and library versions: a benchmark number means nothing without them."""
    from fer_edge._version import __version__
    from fer_edge.engines import BACKENDS

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    import cv2

    info: dict[str, Any] = {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
                            "python": platform.python_version(), "fer_edge": __version__,
                            "numpy": np.__version__, "opencv": cv2.__version__,
                            "threads_env": os.environ.get("FER_EDGE_THREADS")}
    for name, manager in BACKENDS.items():
        info[name] = manager.version()
    return info
