"""Stream benchmark: tracking-driven detection vs full-frame detection on every frame.

    python bench/stream_bench.py                       # one moving face 640x480 + 4 faces 1280x720
    python bench/stream_bench.py --memory-only --out bench/results/stream_memory.json
                                                       # peak RSS over 18,000 frames (10 min of 30 fps video)
    python bench/stream_bench.py --quick               # tiny counts: checks the script runs

Videos are synthetic, built from real photos with a fixed seed (``fer_edge.bench.video``): the
astronaut (``examples/astronaut.jpg``) panned and zoomed over a textured background at 640x480,
30 fps, and for several faces a 1280x720 clip with four real faces on a 2x2 grid, each drifting a
few pixels: the astronaut, skimage's cameraman, and two FER+ valid faces (majority anger and
surprise votes, upscaled 4x with a replicated border); without FER+ the last two are mirrored
copies of the first two. Frames are made in memory first; only ``next(stream)`` is timed
(its own per-stage timings give the breakdown). Label agreement compares each face the
tracking stream reports with the full-frame stream's face on the same frame (box IoU >= 0.5).
Tracking mode is timed twice: as is, and pipelined (``pipeline=True``, alignment and inference on a second thread
while the next frame is detected), whose results must equal the first's.
Writes a JSON report (``--out``) and prints a Markdown summary.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# FER2013Valid faces with a clear majority (anger 7/10, surprise 8/10 votes) that YuNet finds in every frame of
# the 4-face clip at the default 320 px detection size (of the first 40 valid faces, several upscaled ones scored
# near the 0.6 threshold and came and went)
FERPLUS_FACES = ("fer0028649.png", "fer0028653.png")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime and OpenCV threads")
    parser.add_argument("--clip", type=int, default=300, help="frames in the (periodic) clip, cycled")
    parser.add_argument("--iters", type=int, default=600, help="frames timed per mode")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--detect-every", type=int, default=None, help="tracking mode's N (default: the SDK's)")
    parser.add_argument("--margin", type=float, default=None, help="tracking mode's margin (default: the SDK's)")
    parser.add_argument("--multi-iters", type=int, default=300)
    parser.add_argument("--memory-frames", type=int, default=0, help="also stream this many frames, sampling RSS")
    parser.add_argument("--realtime", action="store_true", help="memory run at a camera's 30 fps pace (wall clock)")
    parser.add_argument("--memory-only", action="store_true",
                        help="only the memory run (default 18000 frames), in a process holding no clips")
    parser.add_argument("--ferplus", type=Path, default=Path(os.environ.get("FER_EDGE_FERPLUS", REPO.parent / "shared"
                                                                            / "data" / "ferplus")))
    parser.add_argument("--out", type=Path, default=HERE / "results" / "stream.json")
    parser.add_argument("--quick", action="store_true", help="tiny counts")
    parser.add_argument("--spinning", action="store_true", help="also time the one-face clip with ORT threads spinning")
    parser.add_argument("--note", default="", help="free text stored with the results (e.g. machine load)")
    return parser.parse_args()


def percentiles(values: list[float]) -> dict[str, float]:
    import numpy as np

    ms = np.asarray(values, dtype=np.float64) * 1e3
    if ms.size == 0:
        return {"n": 0}
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {"n": int(ms.size), "mean_ms": round(float(ms.mean()), 3), "p50_ms": round(float(p50), 3),
            "p90_ms": round(float(p90), 3), "p99_ms": round(float(p99), 3)}


def run_mode(rec: Any, frames: list[Any], warmup: int, iters: int, **options: Any) -> dict[str, Any]:
    """Time ``iters`` frames of a stream over ``frames`` (cycled) after ``warmup`` untimed ones."""
    stream = rec.stream(itertools.cycle(frames), fps=30, **options)
    totals: list[float] = []
    stages: dict[str, list[float]] = {}
    detect_by_pass: dict[str, list[float]] = {}
    results = []
    for i in range(warmup + iters):
        start = time.perf_counter()
        result = next(stream)
        elapsed = time.perf_counter() - start
        if i < warmup:
            continue
        totals.append(elapsed)
        for stage, seconds in stream.stage_seconds.items():
            stages.setdefault(stage, []).append(seconds)
        detect_by_pass.setdefault(stream.last_pass, []).append(stream.stage_seconds["detect"])
        results.append(result)
    total = percentiles(totals)
    report: dict[str, Any] = {}
    if options.get("pipeline"):  # a frame is prepared in one call and returned by the next: at most both
        report["latency_at_most"] = percentiles([a + b for a, b in itertools.pairwise(totals)])
    return {"options": {"policy": stream.policy.policy, "detect_every": stream.policy.detect_every,
                        "margin": stream.policy.margin, "pipeline": bool(options.get("pipeline"))},
            **report, "total": total, "fps": round(1e3 / total["mean_ms"], 1),
            "stages": {k: percentiles(v) for k, v in stages.items()},
            "detect_by_pass": {k: percentiles(v) for k, v in detect_by_pass.items()},
            "passes": {k: len(v) for k, v in detect_by_pass.items()},
            "faces_per_frame": round(sum(len(r.faces) for r in results) / max(len(results), 1), 3),
            "_results": results}


def agreement(full: list[Any], tracked: list[Any]) -> dict[str, Any]:
    """Per full-frame face: found by the tracking stream (IoU >= 0.5) and with the same label.

    Also the full-frame answer's margin (top probability minus the second) on the faces whose labels
    differ, and the agreement on faces answered with a margin of at least 0.2: a label that flips on
    a sub-pixel landmark shift between the two detections is an ambiguous face, not a tracking fault.
    """
    import numpy as np

    from fer_edge.recognizer.tracking import iou_matrix

    faces = found = same = frames_same = 0
    shifts, margins, differing = [], [], []
    for a, b in zip(full, tracked):
        frame_ok = len(a.faces) == len(b.faces)
        for fa in a.faces:
            faces += 1
            iou = iou_matrix(np.array([fa.box]), np.array([f.box for f in b.faces]).reshape(-1, 4))[0]
            if iou.size == 0 or iou.max() < 0.5:
                frame_ok = False
                continue
            fb = b.faces[int(np.argmax(iou))]
            found += 1
            agrees = fa.label == fb.label
            same += agrees
            frame_ok &= agrees
            top = sorted(fa.probabilities.values(), reverse=True)
            margins.append(top[0] - top[1])
            differing.append(not agrees)
            if fa.landmarks and fb.landmarks:
                eyes = np.linalg.norm(np.subtract(fa.landmarks[0], fa.landmarks[1]))
                shifts.append(np.abs(np.subtract(fa.landmarks, fb.landmarks)).max() / max(eyes, 1e-6))
        frames_same += frame_ok
    differing_margins = [m for m, d in zip(margins, differing) if d]
    confident = [d for m, d in zip(margins, differing) if m >= 0.2]
    return {"frames": len(full), "frames_same_labels": frames_same,
            "frames_same_pct": round(100 * frames_same / max(len(full), 1), 2),
            "faces": faces, "found": found, "same_label": same,
            "same_label_pct_of_found": round(100 * same / max(found, 1), 2),
            "differing_margin_median": round(float(np.median(differing_margins)), 3) if differing_margins else None,
            "same_label_pct_margin_0.2": round(100 * (1 - sum(confident) / len(confident)), 2) if confident else None,
            "landmark_shift_median_iod": round(float(np.median(shifts)), 4) if shifts else None,
            "landmark_shift_p99_iod": round(float(np.percentile(shifts, 99)), 4) if shifts else None}


def four_faces(ferplus: Path) -> tuple[list[Any], str]:
    import cv2
    import numpy as np
    from skimage import data

    from fer_edge.recognizer.sources import read_image

    # crops with the face about half the crop's height, so at 1280x720 each face is ~150 px tall
    astronaut = np.ascontiguousarray(read_image(REPO / "examples" / "astronaut.jpg")[20:250, 110:340])
    cameraman = cv2.cvtColor(data.camera()[70:230, 150:300], cv2.COLOR_GRAY2BGR)
    files = [ferplus / "FER2013Valid" / name for name in FERPLUS_FACES]
    if all(f.is_file() for f in files):
        extra = []
        for file in files:
            gray = cv2.cvtColor(read_image(file), cv2.COLOR_BGR2GRAY)
            face = cv2.resize(gray, (192, 192), interpolation=cv2.INTER_CUBIC)
            extra.append(cv2.cvtColor(cv2.copyMakeBorder(face, 48, 48, 48, 48, cv2.BORDER_REPLICATE),
                                      cv2.COLOR_GRAY2BGR))
        return [astronaut, cameraman, *extra], f"astronaut, cameraman, FER+ valid {', '.join(FERPLUS_FACES)}"
    return [astronaut, cameraman, astronaut[:, ::-1], cameraman[:, ::-1]], "astronaut, cameraman, both mirrored"


def memory_run(rec: Any, face: Any, clip: int, total: int, every: int = 500, realtime: bool = False) -> dict[str, Any]:
    """Stream ``total`` frames (tracking mode), sampling resident memory; slope of RSS after 10 %.

    Frames are made on the fly, clip after clip (nothing cached), so the process holds only the
    stream's own state and the frame in flight.
    """
    import numpy as np

    from fer_edge.bench.stats import current_rss_mb, peak_rss_mb
    from fer_edge.bench.video import moving_face_video

    endless: Any = (frame for _ in itertools.count() for frame in moving_face_video(face, clip, (480, 640), seed=0))
    if realtime:  # a camera's pace: frame i is handed over no earlier than i / 30 s after the start
        endless = paced(endless, 30.0)
    stream = rec.stream(itertools.islice(endless, total), fps=30)
    samples = []
    start = time.perf_counter()
    for result in stream:
        if result.frame_index % every == 0 or result.frame_index == total - 1:
            samples.append((result.frame_index, time.perf_counter() - start, current_rss_mb(), peak_rss_mb()))
    wall = time.perf_counter() - start
    arr = np.array(samples)
    warm = arr[arr[:, 0] >= total // 10]
    slope = float(np.polyfit(warm[:, 0], warm[:, 2], 1)[0]) * 1000 if len(warm) > 1 else 0.0
    return {"frames": total, "video_seconds_at_30fps": round(total / 30, 1), "wall_s": round(wall, 1),
            "realtime": realtime,
            "rss_first_mb": round(float(warm[0, 2]), 1), "rss_last_mb": round(float(arr[-1, 2]), 1),
            "peak_rss_mb": round(float(arr[-1, 3]), 1), "peak_after_warmup_growth_mb": round(
                float(arr[-1, 3] - warm[0, 3]), 2), "rss_slope_mb_per_1000_frames": round(slope, 4),
            "tracks_live_at_end": len(stream.tracker.tracks), "samples": arr.round(2).tolist()}


def paced(frames: Any, fps: float) -> Any:
    start = time.perf_counter()
    for index, frame in enumerate(frames):
        delay = start + index / fps - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        yield frame


def summary_md(report: dict[str, Any]) -> str:
    lines = [(f"Measured {report['when']} on {report['machine']}, load average at start {report['load_start']}, "
             f"at end {report['load_end']}; {report['threads']} threads; model {report['model']}."), ""]
    for clip in ("one_face", "one_face_spinning", "four_faces", "four_faces_640"):
        part = report.get(clip)
        if not part:
            continue
        lines += [f"**{part['title']}** ({part['frames_made']} frames made, {part['timed']} timed per mode)", "",
                  ("| mode | p50 ms | p90 ms | p99 ms | mean ms | frames/s | detect p50 | align p50 | preprocess p50 "
                  "| infer p50 | postprocess p50 | passes |"), "|---|" + "---:|" * 10 + "---|"]
        for mode in ("full", "track", "track_pipelined"):
            if mode not in part:
                continue
            m = part[mode]
            st = m["stages"]
            passes = ", ".join(f"{k} {v}" for k, v in m["passes"].items())
            lines.append(f"| {mode} | {m['total']['p50_ms']:.2f} | {m['total']['p90_ms']:.2f} | "
                         f"{m['total']['p99_ms']:.2f} | {m['total']['mean_ms']:.2f} | {m['fps']:.0f} | "
                         + " | ".join(f"{st[s]['p50_ms']:.2f}" for s in ("detect", "align", "preprocess", "infer",
                                                                          "postprocess")) + f" | {passes} |")
        if "track_pipelined" in part:
            piped = part["track_pipelined"]
            lines += ["", (f"Pipelined (`stream(..., pipeline=True)`: alignment and inference on a second thread while "
                           f"the next frame is detected): same results as `track`: {piped['same_results_as_track']}; a frame's "
                           f"latency is at most two calls, p50 {piped['latency_at_most']['p50_ms']:.2f} ms.")]
        by_pass = part["track"]["detect_by_pass"]
        lines += ["", "Tracking mode's detect stage by pass: " + ", ".join(
            f"{k} p50 {v['p50_ms']:.2f} ms (n={v['n']})" for k, v in by_pass.items()) + ".",
                  f"Agreement with full-frame detection: {part['agreement']}", ""]
    if report.get("memory"):
        mem = {k: v for k, v in report["memory"].items() if k != "samples"}
        lines += [f"Memory: {mem}", ""]
    return "\n".join(lines)


def main() -> int:
    args = parse()
    os.environ["FER_EDGE_THREADS"] = str(args.threads)
    import cv2

    cv2.setNumThreads(args.threads)
    from fer_edge import Recognizer
    from fer_edge.bench import machine_info
    from fer_edge.bench.video import astronaut_head, moving_face_video, multi_face_video
    from fer_edge.recognizer.sources import read_image
    from fer_edge.vision.detector import YuNetDetector

    if args.quick:
        args.clip, args.iters, args.warmup, args.multi_iters = 40, 40, 2, 20
        args.memory_frames = min(args.memory_frames, 200)
    options = {k: v for k, v in (("detect_every", args.detect_every), ("margin", args.margin)) if v is not None}
    rec = Recognizer(args.model)
    info = machine_info()
    report: dict[str, Any] = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                              "machine": f"{info.get('cpu', '?')} ({info.get('cores', '?')} cores)",
                              "load_start": [round(v, 2) for v in os.getloadavg()], "threads": args.threads,
                              "model": f"{rec.info()['model_id']} {rec.info()['engine'].get('precision')} on "
                                       f"{rec.info()['backend']}", "note": args.note,
                              "command": " ".join([Path(sys.executable).name, *sys.argv])}
    face = astronaut_head(read_image(REPO / "examples" / "astronaut.jpg"))
    if args.memory_only:
        report["memory"] = memory_run(rec, face, args.clip, args.memory_frames or 18000, realtime=args.realtime)
        report["load_end"] = [round(v, 2) for v in os.getloadavg()]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
        print(summary_md(report))
        return 0
    clips: dict[str, tuple[str, list[Any], int]] = {"one_face": ("640x480, one moving face (astronaut), 30 fps",
                          list(moving_face_video(face, args.clip, (480, 640), seed=0)), args.iters)}
    faces, which = four_faces(args.ferplus)
    many = list(multi_face_video(faces, args.clip, (720, 1280), seed=0))
    clips["four_faces"] = (f"1280x720, four faces drifting ({which}), default detector (320 px)", many,
                           args.multi_iters)
    clips["four_faces_640"] = ("1280x720, the same four faces, YuNet at detect_size=640", many, args.multi_iters)
    for name, (title, frames, iters) in clips.items():
        print(f"[{time.strftime('%H:%M:%S')}] {title}", file=sys.stderr, flush=True)
        runner = rec if not name.endswith("_640") else Recognizer(args.model, detector=YuNetDetector(detect_size=640))
        full = run_mode(runner, frames, args.warmup, iters, policy="full")
        track = run_mode(runner, frames, args.warmup, iters, policy="track", **options)
        pipelined = run_mode(runner, frames, args.warmup, iters, policy="track", pipeline=True, **options)
        same = [a.to_dict() for a in track["_results"]] == [b.to_dict() for b in pipelined.pop("_results")]
        report[name] = {"title": title, "frames_made": len(frames), "timed": iters,
                        "agreement": agreement(full.pop("_results"), track.pop("_results")),
                        "full": full, "track": track, "track_pipelined": {**pipelined, "same_results_as_track": same}}
    if args.spinning:  # the same one-face clip with ORT's spinning threads (the default before issue 15)
        os.environ["FER_EDGE_ORT_SPINNING"] = "1"
        spinning = Recognizer(args.model)
        del os.environ["FER_EDGE_ORT_SPINNING"]
        frames = clips["one_face"][1]
        print(f"[{time.strftime('%H:%M:%S')}] one face, ORT threads spinning", file=sys.stderr, flush=True)
        full = run_mode(spinning, frames, args.warmup, args.iters, policy="full")
        track = run_mode(spinning, frames, args.warmup, args.iters, policy="track", **options)
        report["one_face_spinning"] = {"title": "640x480, one moving face, FER_EDGE_ORT_SPINNING=1 (ORT's default)",
                                       "frames_made": len(frames), "timed": args.iters,
                                       "agreement": agreement(full.pop("_results"), track.pop("_results")),
                                       "full": full, "track": track}
        del spinning
    if args.memory_frames:
        print(f"[{time.strftime('%H:%M:%S')}] memory: {args.memory_frames} frames", file=sys.stderr, flush=True)
        report["memory"] = memory_run(rec, face, args.clip, args.memory_frames)
    report["load_end"] = [round(v, 2) for v in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(summary_md(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
