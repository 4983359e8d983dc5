"""Latency statistics and memory probes shared by every benchmark.

Percentiles, not means, are what a deployment is sized by: a robot that must answer within a
frame cares about p99. Memory is read from the OS (peak RSS) and, on a GPU, from the CUDA driver,
so it covers what the frameworks allocate outside Python too.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from fer_edge.errors import BackendUnavailableError, InvalidInputError


@dataclass(frozen=True)
class LatencyStats:
    """Wall-clock latency of ``iters`` timed calls, in milliseconds."""

    iters: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float

    @classmethod
    def from_seconds(cls, samples: Sequence[float]) -> LatencyStats:
        if len(samples) == 0:
            raise InvalidInputError("latency statistics need at least one timed call")
        ms = np.asarray(samples, dtype=np.float64) * 1e3
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        return cls(len(ms), float(ms.mean()), float(p50), float(p90), float(p99), float(ms.min()), float(ms.max()))

    def to_dict(self) -> dict[str, Any]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def check_counts(warmup: int, iters: int) -> None:
    """Reject counts that would give no measurement (or a negative warm-up)."""
    if warmup < 0 or iters < 1:
        raise InvalidInputError(f"need --warmup >= 0 and --iters >= 1, got warmup={warmup}, iters={iters}")


def time_calls(fn: Callable[[int], object], warmup: int, iters: int) -> LatencyStats:
    """Call ``fn(i)`` ``warmup`` times untimed (first-run allocations, lazy kernel selection), then
    ``iters`` times timed one by one; ``i`` counts timed and untimed calls together."""
    check_counts(warmup, iters)
    for i in range(warmup):
        fn(i)
    samples = []
    for i in range(warmup, warmup + iters):
        start = time.perf_counter()
        fn(i)
        samples.append(time.perf_counter() - start)
    return LatencyStats.from_seconds(samples)


def _proc_status_mb(field: str) -> float | None:
    """A ``VmXXX`` line of /proc/self/status in MiB, or None where /proc is missing (not Linux)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024  # kB
    except (OSError, IndexError, ValueError):
        return None
    return None


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (MiB).

    Linux: ``VmHWM``, the high-water mark of this program's own memory. Not ``ru_maxrss``: the
    kernel carries that across ``exec``, so a benchmark started by a big parent would report
    the parent's peak. Elsewhere ``ru_maxrss`` is the best there is.
    """
    peak = _proc_status_mb("VmHWM")
    if peak is not None:
        return peak
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024  # bytes on macOS, KiB elsewhere


def current_rss_mb() -> float:
    """Resident memory now (MiB); the peak where /proc is missing."""
    current = _proc_status_mb("VmRSS")
    return peak_rss_mb() if current is None else current


def device_memory_used_mb(device: str | None) -> float | None:
    """Memory in use on the CUDA device named by ``device`` (``"cuda[:N]"``/``"tensorrt[:N]"``), MiB.

    None on CPU or without cuda-python: the host-only path has nothing to report.
    """
    kind, _, index = (device or "cpu").partition(":")
    if kind not in ("cuda", "tensorrt"):
        return None
    from fer_edge.engines.tensorrt import _check, _cudart  # the one cuda-python shim

    try:
        cudart = _cudart()
        _check(cudart.cudaSetDevice(int(index or 0)))
        free, total = _check(cudart.cudaMemGetInfo())
    except BackendUnavailableError:
        return None
    return float(total - free) / 2**20
