"""End-to-end benchmark: frames per second of the whole Recognizer, with per-stage timings.

Two passes over the same in-memory frames (decoding is never timed): the total latency comes
from the public call ``recognizer(frame)``, exactly what an application pays; the breakdown
(detect, align, preprocess, infer, postprocess) comes from a second pass that runs the same
steps one at a time. USERS.md: people asked for per-stage timings to see where time goes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fer_edge.bench.engine import is_zoo_id
from fer_edge.bench.stats import LatencyStats, check_counts, peak_rss_mb, time_calls
from fer_edge.errors import ImageReadError, InvalidInputError
from fer_edge.recognizer.recognizer import Recognizer
from fer_edge.recognizer.sources import IMAGE_SUFFIXES, frames_from, read_image
from fer_edge.vision.preprocess import preprocess

STAGES = ("detect", "align", "preprocess", "infer", "postprocess")
SYNTHETIC = "synthetic"
FRAME_SIZE = (480, 640)  # (height, width) of the synthetic frame
EXAMPLE_FACE = Path(__file__).resolve().parents[2] / "examples" / "astronaut.jpg"


@dataclass
class E2EBench:
    """Whole-pipeline latency per frame, the stage breakdown, and what ran."""

    source: str
    frames: int  # distinct frames cycled through
    frame_size: tuple[int, int]  # (height, width) of the first frame
    faces_per_frame: float
    latency: LatencyStats
    stages: dict[str, LatencyStats]
    load_s: float
    peak_rss_mb: float
    recognizer: dict[str, Any]

    @property
    def fps(self) -> float:
        return 1e3 / self.latency.mean_ms

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "frames": self.frames, "frame_size": list(self.frame_size),
                "faces_per_frame": round(self.faces_per_frame, 3), "fps": round(self.fps, 2),
                "latency": self.latency.to_dict(), "stages": {k: v.to_dict() for k, v in self.stages.items()},
                "load_s": round(self.load_s, 4), "peak_rss_mb": round(self.peak_rss_mb, 1),
                "recognizer": {k: v for k, v in self.recognizer.items() if k not in ("classes", "input")}}


def synthetic_frame(face: np.ndarray | None = None, size: tuple[int, int] = FRAME_SIZE) -> np.ndarray:
    """A ``size`` BGR frame (gray background) with one face photo scaled to its height, centred.

    ``face`` defaults to the repository's ``examples/astronaut.jpg`` (a source checkout).
    """
    if face is None:
        if not EXAMPLE_FACE.is_file():
            raise ImageReadError(f"the synthetic frame needs {EXAMPLE_FACE} (a source checkout); "
                                 "pass a video or a folder of frames instead")
        face = read_image(EXAMPLE_FACE)
    height, width = size
    scale = min(height / face.shape[0], width / face.shape[1])
    resized = cv2.resize(face, (round(face.shape[1] * scale), round(face.shape[0] * scale)),
                         interpolation=cv2.INTER_AREA)
    frame = np.full((height, width, 3), 114, np.uint8)
    top, left = (height - resized.shape[0]) // 2, (width - resized.shape[1]) // 2
    frame[top:top + resized.shape[0], left:left + resized.shape[1]] = resized
    return frame


def load_frames(source: str | os.PathLike[str], limit: int = 100) -> list[np.ndarray]:
    """Up to ``limit`` frames decoded into memory from ``"synthetic"``, an image, a folder or a video."""
    if limit < 1:
        raise InvalidInputError(f"frame limit must be >= 1, got {limit}")
    if os.fspath(source) == SYNTHETIC:
        return [synthetic_frame()]
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
        if not files:
            raise ImageReadError(f"folder {path} has no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return [read_image(p) for p in files]
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return [read_image(path)]
    frames = []
    for frame, _ in frames_from(path):
        frames.append(frame)
        if len(frames) == limit:
            break
    return frames


def open_recognizer(model: str, backend: str = "auto", device: str | None = None, precision: str = "auto",
                    variant: str = "edge", in_size: tuple[int, int] | None = None,
                    log: Callable[[str], None] | None = None) -> tuple[Recognizer, float]:
    """A Recognizer for ``model`` (a zoo id is built into a benchmark package first) and its load seconds."""
    if is_zoo_id(model):
        from fer_edge.bench.zoo import zoo_package

        chosen = "fp32" if precision == "auto" else precision
        model = str(zoo_package(model, variant, in_size, chosen, log=log).sidecar_path)
    start = time.perf_counter()
    recognizer = Recognizer(model, backend=backend, device=device, precision=precision)
    return recognizer, time.perf_counter() - start


def _staged(recognizer: Recognizer, frame: np.ndarray, samples: dict[str, list[float]]) -> int:
    """One frame through the Recognizer's steps, timing each; returns the number of faces."""
    marks = [time.perf_counter()]
    image, faces = recognizer.detect(frame)
    marks.append(time.perf_counter())
    crops = [recognizer._crop(image, face) for face in faces]
    quality = [recognizer._quality(image, face) for face in faces]  # as Stream does, in the align stage
    marks.append(time.perf_counter())
    if crops:
        batch = preprocess(crops, recognizer.spec)
        marks.append(time.perf_counter())
        probs = recognizer.classify_batch(batch)
        marks.append(time.perf_counter())
        results = [recognizer._result(face, p, quality=q) for face, p, q in zip(faces, probs, quality)]
        marks.append(time.perf_counter())
    else:  # no face: nothing to classify
        results = []
        marks += [marks[-1]] * 3
    for stage, start, end in zip(STAGES, marks, marks[1:]):
        samples[stage].append(end - start)
    return len(results)


def bench_recognizer(recognizer: Recognizer, frames: list[np.ndarray], warmup: int = 10, iters: int = 100,
                     source: str = "", load_s: float = 0.0) -> E2EBench:
    """Measure ``recognizer`` on ``frames`` (cycled); see the module docstring for the two passes."""
    check_counts(warmup, iters)
    if not frames:
        raise InvalidInputError("the end-to-end benchmark needs at least one frame")
    total = time_calls(lambda i: recognizer(frames[i % len(frames)]), warmup, iters)
    samples: dict[str, list[float]] = {stage: [] for stage in STAGES}
    faces = [_staged(recognizer, frames[i % len(frames)], samples) for i in range(iters)]
    stages = {stage: LatencyStats.from_seconds(values) for stage, values in samples.items()}
    return E2EBench(source=source, frames=len(frames), frame_size=frames[0].shape[:2],
                    faces_per_frame=float(np.mean(faces)), latency=total, stages=stages, load_s=load_s,
                    peak_rss_mb=peak_rss_mb(), recognizer=recognizer.info())
