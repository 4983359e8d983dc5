"""Synthetic videos built from real face photos, for stream tests and benchmarks.

A real photo (by default ``examples/astronaut.jpg``) is panned and zoomed along a smooth path
over a textured background; an optional second face slides in from the right edge, stays, and
leaves. Everything is drawn from one seed, and the motion is periodic (whole cycles over
``frames``), so a clip can be cycled without a jump at the seam.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from fer_edge.errors import InvalidInputError

# Head and shoulders of examples/astronaut.jpg (512x512): the face box YuNet finds is about
# (179, 63, 90, 112), so this crop has the face near its centre with context around it.
ASTRONAUT_HEAD = (100, 0, 360, 300)  # x0, y0, x1, y1


def background(size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A smooth, textured BGR background of ``size`` (H, W): blurred noise over a colour gradient."""
    height, width = size
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(40, 215, (max(2, height // 40), max(2, width // 40), 3)).astype(np.float32)
    coarse = 0.5 * coarse + 0.5 * coarse.mean(axis=2, keepdims=True)  # half desaturated: less garish
    base = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    grain = cv2.GaussianBlur(rng.normal(0, 12, (height, width, 3)).astype(np.float32), (0, 0), 1.5)
    return np.clip(base + grain, 0, 255).astype(np.uint8)


def _paste(frame: np.ndarray, patch: np.ndarray, cx: float, cy: float) -> None:
    """Blend ``patch`` into ``frame`` centred at (cx, cy) with a feathered elliptical edge; clipped at the borders."""
    ph, pw = patch.shape[:2]
    x0, y0 = round(cx - pw / 2), round(cy - ph / 2)
    fx0, fy0 = max(0, x0), max(0, y0)
    fx1, fy1 = min(frame.shape[1], x0 + pw), min(frame.shape[0], y0 + ph)
    if fx1 <= fx0 or fy1 <= fy0:
        return
    yy, xx = np.mgrid[0:ph, 0:pw].astype(np.float32)
    radius = np.hypot((xx - pw / 2) / (pw / 2), (yy - ph / 2) / (ph / 2))
    alpha = np.clip((1.0 - radius) / 0.15, 0.0, 1.0)[..., None]  # 1 inside, fading over the outer 15 %
    sub = (slice(fy0 - y0, fy1 - y0), slice(fx0 - x0, fx1 - x0))
    region = frame[fy0:fy1, fx0:fx1].astype(np.float32)
    frame[fy0:fy1, fx0:fx1] = (alpha[sub] * patch[sub] + (1 - alpha[sub]) * region).astype(np.uint8)


@dataclass(frozen=True)
class SecondFace:
    """A second face that slides in from the right edge at ``enter`` (a fraction of the clip),
    stays at ``x`` (fraction of the width) and slides out again from ``leave``."""

    image: np.ndarray
    enter: float = 0.3
    leave: float = 0.7
    height: float = 0.45  # patch height as a fraction of the frame height
    x: float = 0.8
    slide: float = 0.05  # duration of each slide, fraction of the clip


def moving_face_video(face: np.ndarray, frames: int = 300, size: tuple[int, int] = (480, 640), seed: int = 0,
                      height: float = 0.55, zoom: float = 0.2, second: SecondFace | None = None
                      ) -> Iterator[np.ndarray]:
    """``frames`` BGR frames of ``size`` (H, W): ``face`` (a BGR photo) moving and zooming over a background.

    The patch is ``height`` of the frame tall (times 1 +- ``zoom``); its centre follows a sum of
    two sinusoids per axis with seeded phases and whole cycles per clip, roughly 1-4 px per frame
    at 640x480. Frames are made one at a time (a long clip costs no memory).
    """
    if frames < 1 or not 0 < height <= 1 or not 0 <= zoom < 1:
        raise InvalidInputError(f"need frames >= 1, 0 < height <= 1, 0 <= zoom < 1; got {frames}, {height}, {zoom}")
    rows, cols = size
    rng = np.random.default_rng(seed)
    back = background(size, seed)
    phases = rng.uniform(0, 2 * np.pi, 6)
    cycles = rng.integers(1, 3, 6)  # whole cycles per clip: periodic motion
    for index in range(frames):
        t = 2 * np.pi * index / frames
        scale = 1 + zoom * np.sin(cycles[4] * t + phases[4])
        patch_h = max(8, round(rows * height * scale))
        patch = cv2.resize(face, (max(8, round(face.shape[1] * patch_h / face.shape[0])), patch_h),
                           interpolation=cv2.INTER_AREA)
        span_x = max(0.0, (cols - patch.shape[1]) / 2 - 4)
        span_y = max(0.0, (rows - patch.shape[0]) / 2 - 4)
        cx = cols / 2 + span_x * (0.7 * np.sin(cycles[0] * t + phases[0]) + 0.3 * np.sin(cycles[1] * 2 * t + phases[1]))
        cy = rows / 2 + span_y * (0.7 * np.sin(cycles[2] * t + phases[2]) + 0.3 * np.sin(cycles[3] * 2 * t + phases[3]))
        frame = back.copy()
        _paste(frame, patch, cx, cy)
        if second is not None:
            _paste_second(frame, second, index / frames)
        yield frame


def _paste_second(frame: np.ndarray, second: SecondFace, u: float) -> None:
    rows, cols = frame.shape[:2]
    patch_h = round(rows * second.height)
    patch = cv2.resize(second.image, (round(second.image.shape[1] * patch_h / second.image.shape[0]), patch_h),
                       interpolation=cv2.INTER_AREA)
    if patch.ndim == 2:
        patch = cv2.cvtColor(patch, cv2.COLOR_GRAY2BGR)
    outside, inside = cols + patch.shape[1] / 2 + 2, cols * second.x
    if u < second.enter or u >= second.leave + second.slide:
        return
    if u < second.enter + second.slide:
        cx = outside + (inside - outside) * (u - second.enter) / second.slide
    elif u < second.leave:
        cx = inside
    else:
        cx = inside + (outside - inside) * (u - second.leave) / second.slide
    _paste(frame, patch, cx, rows * 0.5)


def astronaut_head(image: np.ndarray) -> np.ndarray:
    """The head-and-shoulders crop (:data:`ASTRONAUT_HEAD`) of the 512x512 astronaut photo."""
    if image.shape[:2] != (512, 512):
        raise InvalidInputError(f"expected the 512x512 astronaut photo, got shape {image.shape}")
    x0, y0, x1, y1 = ASTRONAUT_HEAD
    return np.ascontiguousarray(image[y0:y1, x0:x1])


def multi_face_video(faces: list[np.ndarray], frames: int = 300, size: tuple[int, int] = (720, 1280), seed: int = 0,
                     height: float = 0.42, drift: float = 12.0) -> Iterator[np.ndarray]:
    """``frames`` frames of ``size`` with each photo in ``faces`` in its own cell of a grid (2x2 for
    four), each drifting up to ``drift`` px on a seeded periodic path; ``frames=1`` gives a still."""
    if not faces or frames < 1:
        raise InvalidInputError("multi_face_video needs at least one face and one frame")
    rows, cols = size
    grid_cols = int(np.ceil(np.sqrt(len(faces))))
    grid_rows = int(np.ceil(len(faces) / grid_cols))
    rng = np.random.default_rng(seed)
    back = background(size, seed)
    patch_h = round(rows * height)
    patches = []
    for face in faces:
        face = cv2.cvtColor(face, cv2.COLOR_GRAY2BGR) if face.ndim == 2 else face
        patches.append(cv2.resize(face, (max(8, round(face.shape[1] * patch_h / face.shape[0])), patch_h),
                                  interpolation=cv2.INTER_AREA))
    phases = rng.uniform(0, 2 * np.pi, (len(faces), 2))
    for index in range(frames):
        t = 2 * np.pi * index / frames
        frame = back.copy()
        for k, patch in enumerate(patches):
            cx = (k % grid_cols + 0.5) * cols / grid_cols + drift * np.sin(t + phases[k, 0])
            cy = (k // grid_cols + 0.5) * rows / grid_rows + drift * np.sin(2 * t + phases[k, 1])
            _paste(frame, patch, cx, cy)
        yield frame
