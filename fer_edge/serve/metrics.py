"""Counters and latency histograms in the Prometheus text format (``GET /metrics``).

Written here rather than with ``prometheus_client`` because the format needs only counters,
gauges and fixed-bucket histograms (one screen of code), and a scraper reads it the same way.
One lock guards everything: the recognition thread and the event loop both update it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

COUNTERS = {
    "frames_total": "frames the recognizer processed",
    "faces_total": "faces found in processed frames",
    "dropped_frames_total": "camera frames dropped because the recognizer was busy (oldest first)",
    "dropped_clients_total": "socket clients disconnected because they could not keep up",
    "requests_total": "POST /v1/recognize requests answered, by status",
}


def _labels(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else ""


class Metrics:
    """Process-wide numbers of one server; ``gauges`` are read when ``/metrics`` is scraped."""

    def __init__(self, gauges: dict[str, tuple[str, Callable[[], float]]] | None = None) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._hist: dict[str, list[float]] = {}  # stage -> bucket counts, then sum, then count
        self.gauges = gauges or {}

    def add(self, name: str, value: float = 1.0, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._counts[key] = self._counts.get(key, 0.0) + value

    def count(self, name: str, **labels: str) -> float:
        with self._lock:
            return self._counts.get((name, tuple(sorted(labels.items()))), 0.0)

    def observe(self, stage: str, seconds: float) -> None:
        """One latency sample of ``stage`` (a recognizer stage, or ``recognize`` for a request)."""
        with self._lock:
            row = self._hist.setdefault(stage, [0.0] * (len(BUCKETS) + 2))
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    row[i] += 1
            row[-2] += seconds
            row[-1] += 1

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for name, help_text in COUNTERS.items():
                lines += [f"# HELP fer_edge_{name} {help_text}", f"# TYPE fer_edge_{name} counter"]
                rows = [(dict(k[1]), v) for k, v in self._counts.items() if k[0] == name] or [({}, 0.0)]
                lines += [f"fer_edge_{name}{_labels(labels)} {value:g}" for labels, value in rows]
            lines += ["# HELP fer_edge_stage_seconds time per stage of a frame or request",
                      "# TYPE fer_edge_stage_seconds histogram"]
            for stage, row in self._hist.items():
                for bound, n in zip((*map(str, BUCKETS), "+Inf"), (*row[:len(BUCKETS)], row[-1])):
                    lines.append(f'fer_edge_stage_seconds_bucket{{stage="{stage}",le="{bound}"}} {n:g}')
                lines += [f'fer_edge_stage_seconds_sum{{stage="{stage}"}} {row[-2]:.6f}',
                          f'fer_edge_stage_seconds_count{{stage="{stage}"}} {row[-1]:g}']
        for name, (help_text, read) in self.gauges.items():
            lines += [f"# HELP fer_edge_{name} {help_text}", f"# TYPE fer_edge_{name} gauge",
                      f"fer_edge_{name} {read():g}"]
        return "\n".join(lines) + "\n"
