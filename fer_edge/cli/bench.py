"""``fer-edge bench``: latency, throughput, memory and load time of a model, or frames/s end to end.

Thin: parses, calls :mod:`fer_edge.bench`, prints a table (or JSON with ``--json``). Timings
depend on everything else the machine runs at the time; the JSON records what ran where.
"""

from __future__ import annotations

import argparse
import json
import sys

from fer_edge.engines.resolve import BACKEND_NAMES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="ID|PACKAGE",
                        help="zoo id (built into a benchmark package with untrained weights), 'default', "
                             "a cached model id, or a package path (.json/.onnx/.engine/.pt)")
    parser.add_argument("--backend", choices=BACKEND_NAMES, default="auto")
    parser.add_argument("--precision", choices=("auto", "fp32", "fp16", "int8"), default="auto")
    parser.add_argument("--device", default=None, help="e.g. cpu, cuda:0 (default: chosen with the backend)")
    parser.add_argument("--variant", choices=("edge", "paper"), default="edge", help="zoo ids only")
    parser.add_argument("--in-size", type=int, default=None, help="zoo ids only: square input size")
    parser.add_argument("--batch", default="1,4,8,16", help="comma-separated batch sizes (engine mode)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed calls first")
    parser.add_argument("--iters", type=int, default=50, help="timed calls per batch size / frames timed")
    parser.add_argument("--e2e", metavar="SOURCE", default=None,
                        help="end-to-end mode on 'synthetic' (one face in a 640x480 frame), a video, a folder "
                             "of images or an image")
    parser.add_argument("--frames", type=int, default=100, help="e2e: at most this many frames decoded and cycled")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of a table")


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from fer_edge.bench import bench_recognizer, benchmark, load_frames, open_recognizer, parse_batches
    from fer_edge.bench.stats import check_counts
    from fer_edge.errors import InvalidInputError

    check_counts(args.warmup, args.iters)
    batches = parse_batches(args.batch)
    if args.in_size is not None and args.in_size < 8:
        raise InvalidInputError(f"--in-size must be at least 8 pixels, got {args.in_size}")
    in_size = (args.in_size, args.in_size) if args.in_size else None
    if args.e2e is not None:
        frames = load_frames(args.e2e, args.frames)
        recognizer, load_s = open_recognizer(args.model, args.backend, args.device, args.precision, args.variant,
                                             in_size, log=_log)
        e2e = bench_recognizer(recognizer, frames, args.warmup, args.iters, source=args.e2e, load_s=load_s)
        if args.json:
            print(json.dumps({"mode": "e2e", **e2e.to_dict()}))
            return 0
        info = e2e.recognizer
        print(f"{info['model_id']} on {info['backend']} [{info['device']}], {info['engine'].get('precision')}; "
              f"{e2e.frames} frame(s) {e2e.frame_size[1]}x{e2e.frame_size[0]} from {e2e.source}, "
              f"{e2e.faces_per_frame:.2f} faces/frame; load {e2e.load_s:.2f} s; peak RSS {e2e.peak_rss_mb:.0f} MiB")
        if e2e.faces_per_frame == 0:
            print("warning: no face was detected: only detection was measured", file=sys.stderr)
        print(f"{'stage':<12}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}")
        for name, stats in [*e2e.stages.items(), ("total", e2e.latency)]:
            print(f"{name:<12}{stats.p50_ms:>9.2f}{stats.p90_ms:>9.2f}{stats.p99_ms:>9.2f}")
        print(f"{e2e.fps:.1f} frames/s (whole recognizer(frame) call, mean)")
        return 0
    result = benchmark(args.model, args.backend, args.precision, args.device, batches, args.warmup, args.iters,
                       args.variant, in_size, log=_log)
    if args.json:
        print(json.dumps({"mode": "engine", **result.to_dict()}))
        return 0
    height, width = result.input_size
    memory = f"peak RSS {result.peak_rss_mb:.0f} MiB"
    if result.device_mem_mb is not None:
        memory += f", device {result.device_mem_mb:.0f} MiB in use"
    print(f"{result.model_id} ({result.variant}, {height}x{width}, {result.precision}) on {result.backend} "
          f"[{result.device}]; load {result.load_s:.3f} s; {memory}" + (f"; {result.note}" if result.note else ""))
    print(f"{'batch':>5}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'faces/s':>11}")
    for b in result.batches:
        print(f"{b.batch:>5}{b.latency.p50_ms:>10.2f}{b.latency.p90_ms:>10.2f}{b.latency.p99_ms:>10.2f}"
              f"{b.throughput:>11.1f}")
    return 0
