"""Latency statistics and memory probes shared by every benchmark.

Percentiles, not means, are what a deployment is sized by: a robot that must answer within a
frame cares about p99. Memory is read from the OS (peak RSS) and, on a GPU, from the CUDA driver,
so it covers what the frameworks allocate outside Python too.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from fer_edge.errors import BackendUnavailableError, InvalidInputError

if TYPE_CHECKING:
    from typing_extensions import Self


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


def _cpu_snapshot() -> tuple[float, float, float, int] | None:
    """(wall s, machine busy CPU s incl. steal, this process's CPU s, CPUs) now; None without /proc/stat."""
    try:
        with open("/proc/stat") as handle:
            lines = handle.read().splitlines()
        fields = [int(v) for v in lines[0].split()[1:9]]  # user nice system idle iowait irq softirq steal
    except (OSError, IndexError, ValueError):
        return None
    cpus = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    busy = sum(fields) - fields[3] - fields[4]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), busy / os.sysconf("SC_CLK_TCK"), usage.ru_utime + usage.ru_stime, max(cpus, 1)


class ForeignLoad:
    """Share of the machine's CPU taken by *other* processes (and by the hypervisor: steal) while a
    block ran, 0-1, in ``share`` after it (None where /proc/stat is missing).

    Why: timings that choose something (the INT8 build's op selection) are only as good as the
    machine is quiet, and a build cannot tell a slow kernel from a busy neighbour; this says
    which it was, so the build can warn and record it. This process's own threads do not count.
    """

    def __init__(self) -> None:
        self.share: float | None = None
        self._start: tuple[float, float, float, int] | None = None

    def __enter__(self) -> Self:
        self._start = _cpu_snapshot()
        return self

    def __exit__(self, *exc: object) -> None:
        end = _cpu_snapshot()
        if self._start is None or end is None or end[0] <= self._start[0]:
            return
        wall, busy, own = (b - a for a, b in zip(self._start[:3], end[:3]))
        self.share = round(min(1.0, max(0.0, (busy - own) / (wall * end[3]))), 3)


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
