"""Benchmarks: engine latency/throughput/memory per batch size, and the whole Recognizer per frame.

``fer-edge bench`` is the command; ``bench/run_suite.py`` in the repository runs the published
suite with it. Nothing here imports torch unless a zoo model id is measured.
"""

from fer_edge.bench.e2e import E2EBench, bench_recognizer, load_frames, open_recognizer, synthetic_frame
from fer_edge.bench.engine import BatchResult, EngineBench, bench_engine, benchmark, machine_info, parse_batches
from fer_edge.bench.stats import LatencyStats, time_calls

__all__ = ["BatchResult", "E2EBench", "EngineBench", "LatencyStats", "bench_engine", "bench_recognizer", "benchmark",
           "load_frames", "machine_info", "open_recognizer", "parse_batches", "synthetic_frame", "time_calls"]
