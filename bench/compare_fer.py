"""fer_edge's default pipeline vs the `fer` package, side by side on the same 640x480 frames.

Both run in turn on this machine with their default threading: fer_edge in this process through
``recognizer(frame)``, `fer` in its own venv (``bench/setup_fer_venv.sh``) through
``FER().detect_emotions(frame)``, as a subprocess reading the very same frames from a .npy file.
The ratio is fer's p50 over fer_edge's p50 per frame (target: >= 3). If `fer` cannot run, the
exact reason is reported and FACTS.md's earlier measurement (33-36 ms p50) is given as a
reference, labelled as not measured in this run.

    python bench/compare_fer.py [--model default] [--frames synthetic|VIDEO|FOLDER] [--iters 100]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from fer_edge.bench import bench_recognizer, load_frames, open_recognizer

HERE = Path(__file__).resolve().parent
FER_PYTHON = HERE / ".venv-fer" / "bin" / "python"
FER_REFERENCE_MS = (33.0, 36.0)  # FACTS.md: fer's p50 per 640x480 frame, earlier session, same machine kind
FER_REFERENCE = {"p50_ms_range": list(FER_REFERENCE_MS), "source": "FACTS.md (earlier session, 2 threads)",
                 "measured_in_this_run": False}
TARGET_RATIO = 3.0


def run_fer(frames: list[np.ndarray], warmup: int, iters: int, timeout: float = 600) -> dict[str, Any]:
    """`fer` timed in its venv; ``{"error": why}`` when it cannot run."""
    if not FER_PYTHON.is_file():
        return {"error": f"{FER_PYTHON} not found: run bench/setup_fer_venv.sh first"}
    with tempfile.TemporaryDirectory(prefix="fer_compare_") as tmp:
        path = Path(tmp) / "frames.npy"
        np.save(path, np.stack(frames))
        proc = subprocess.run([str(FER_PYTHON), str(HERE / "fer_worker.py"), str(path), str(warmup), str(iters)],
                              check=False, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        return {"error": f"fer_worker.py exited {proc.returncode}: {proc.stderr.strip()[-2000:]}"}
    try:
        return dict(json.loads(proc.stdout.strip().splitlines()[-1]))
    except (json.JSONDecodeError, IndexError):
        return {"error": f"fer_worker.py printed no JSON: {proc.stdout[-500:]!r} {proc.stderr[-1500:]!r}"}


def compare(model: str = "default", source: str = "synthetic", warmup: int = 10, iters: int = 100,
            precision: str = "auto") -> dict[str, Any]:
    frames = [np.ascontiguousarray(f) for f in load_frames(source, 50)]
    if len({f.shape for f in frames}) != 1:
        raise SystemExit("compare_fer.py needs frames of one size (they are stacked into one .npy for fer)")
    recognizer, load_s = open_recognizer(model, precision=precision)
    ours = bench_recognizer(recognizer, frames, warmup, iters, source=source, load_s=load_s).to_dict()
    fer = run_fer(frames, warmup, iters)
    report: dict[str, Any] = {"frames": source, "frame_size": list(frames[0].shape[:2]), "fer_edge": ours, "fer": fer,
                              "target_ratio": TARGET_RATIO}
    ours_p50 = ours["latency"]["p50_ms"]
    if "error" in fer:
        low, high = FER_REFERENCE_MS
        report["fer_reference"] = FER_REFERENCE
        report["ratio_vs_reference"] = [round(low / ours_p50, 2), round(high / ours_p50, 2)]
        report["ratio_p50"] = None
    else:
        report["ratio_p50"] = round(fer["latency"]["p50_ms"] / ours_p50, 2)
        report["ratio_mean"] = round(fer["latency"]["mean_ms"] / ours["latency"]["mean_ms"], 2)
        report["target_met"] = report["ratio_p50"] >= TARGET_RATIO
    return report


def summary(report: dict[str, Any]) -> str:
    ours = report["fer_edge"]
    lines = [(f"fer_edge ({ours['recognizer']['model_id']}, {ours['recognizer']['engine']['precision']}): "
             f"p50 {ours['latency']['p50_ms']:.2f} ms/frame, {ours['faces_per_frame']:.2f} faces/frame")]
    fer = report["fer"]
    if "error" in fer:
        lines.append(f"fer: NOT MEASURED in this run: {fer['error']}")
        low, high = report["ratio_vs_reference"]
        lines.append(f"ratio vs FACTS.md's 33-36 ms reference (not measured here): {low}-{high}x")
    else:
        lines.append(f"fer {fer['fer']} (TF {fer['tensorflow']}, OpenCV {fer['opencv']}): p50 "
                     f"{fer['latency']['p50_ms']:.2f} ms/frame, {fer['faces_per_frame']:.2f} faces/frame")
        lines.append(f"ratio (fer p50 / fer_edge p50): {report['ratio_p50']}x; target >= {TARGET_RATIO}x: "
                     f"{'met' if report['target_met'] else 'NOT met'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default",
                        help="fer_edge model: 'default' (the shipped pipeline) or a package")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "int8"))
    parser.add_argument("--frames", default="synthetic", help="'synthetic' (one face, 640x480), a video or a folder")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the full report here")
    args = parser.parse_args(argv)
    report = compare(args.model, args.frames, args.warmup, args.iters, args.precision)
    if args.json:
        from fer_edge.fileio import write_json_atomic

        write_json_atomic(args.json, report)
    print(summary(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
