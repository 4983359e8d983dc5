"""Where an INT8 package's time goes, per op type, at 1 and 2 threads, and what thread spinning does.

    python bench/int8_profile.py [--package fer_edge/data/models/fer_default_int8.json] [--batch 8]

ONNX Runtime's own profiler (``enable_profiling``) sums kernel time per op type over ``--runs``
runs at each thread count, so the ops that do not scale to the second thread show; then the INT8
and the FP32 package (the sidecar's name without ``_int8``) are timed interleaved with spinning off
(fer_edge's setting) and on. Prints markdown; numbers move with the machine's load.
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from fer_edge.package import load_package


def _session(model: Path, threads: int, spinning: bool = False, profile: str | None = None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    if profile:
        options.enable_profiling, options.profile_file_prefix = True, profile
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def op_times(model: Path, batch: np.ndarray, threads: int, runs: int) -> collections.Counter[str]:
    """Mean kernel microseconds per run, by op type."""
    with tempfile.TemporaryDirectory() as folder:
        session = _session(model, threads, profile=str(Path(folder) / "profile"))
        name = session.get_inputs()[0].name
        for _ in range(runs):
            session.run(None, {name: batch})
        events = json.loads(Path(session.end_profiling()).read_text())
    totals: collections.Counter[str] = collections.Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            totals[event["args"]["op_name"]] += event["dur"] / runs
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", default="fer_edge/data/models/fer_default_int8.json")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    int8 = load_package(args.package)
    fp32 = load_package(Path(args.package).with_name(Path(args.package).name.replace("_int8", "")))
    size = int8.sidecar.input.size
    batch = np.random.default_rng(0).random((args.batch, 3, *size), dtype=np.float32)
    one, two = (op_times(int8.model_path, batch, t, args.runs) for t in (1, 2))
    print(f"{int8.model_path.name}, batch {args.batch}: kernel time per run by op type\n")
    print("| op | 1 thread us | 2 threads us | share at 2 threads |\n|---|---:|---:|---:|")
    for op, us in one.most_common(12):
        print(f"| {op} | {us:.0f} | {two[op]:.0f} | {100 * two[op] / sum(two.values()):.0f} % |")
    print(f"| all kernels | {sum(one.values()):.0f} | {sum(two.values()):.0f} | |")
    configs = [(pkg, t, spin) for pkg in (fp32, int8) for t in (1, 2) for spin in (False, True)]
    sessions = [_session(pkg.model_path, t, spin) for pkg, t, spin in configs]
    times: list[list[float]] = [[] for _ in configs]
    for _ in range(args.runs):
        for session, samples in zip(sessions, times):
            start = time.perf_counter()
            session.run(None, {session.get_inputs()[0].name: batch})
            samples.append(time.perf_counter() - start)
    print("\n| package | threads | spinning | p50 ms |\n|---|---:|---|---:|")
    for (pkg, t, spin), samples in zip(configs, times):
        print(f"| {pkg.model_path.name} | {t} | {'on' if spin else 'off'} | {1000 * np.median(samples):.2f} |")


if __name__ == "__main__":
    main()
