"""Face detection: the :class:`FaceDetector` protocol and the shipped YuNet detector.

OpenCV 5 has no Haar cascades and nothing may be downloaded at run time, so YuNet
(ShiqiYu/libfacedetection.train, Apache-2.0, see THIRD_PARTY_NOTICES.md) ships as package data
and runs through ``cv2.FaceDetectorYN``. Detection runs on a downscaled copy of the frame (its
cost grows with the pixel count: FACTS.md measured 66 ms at 640x480 vs 15 ms at 320x240) and
boxes and landmarks are mapped back to the caller's pixel coordinates.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from fer_edge.errors import InvalidInputError, ModelNotFoundError

YUNET_DIR = Path(__file__).resolve().parents[1] / "data" / "yunet"
# yunet_s ships: it beat yunet_n on both recall (96.5% vs 95.5% of 400 FER+ faces) and speed
# (16.2 vs 18.3 ms at 640x480) in tools/measure_fer2013_template.py.
YUNET_MODELS = {"s": "yunet_s_640_640.onnx"}


@dataclass(frozen=True)
class Detection:
    """One face: ``box`` (x, y, w, h) and ``landmarks`` (5, 2) in frame pixels, and a score.

    Landmark order is YuNet's: eye, eye, nose tip, mouth corner, mouth corner, each pair with
    the image-left point first.
    """

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float


@runtime_checkable
class FaceDetector(Protocol):
    """What the Recognizer needs from a detector; pass your own object with this method.

    ``detect`` takes a BGR uint8 HxWx3 frame and returns the faces found, best first. Landmarks
    are needed for alignment; a detector without them may return ``np.full((5, 2), np.nan)``
    and faces are then cropped from the box.
    """

    def detect(self, image: np.ndarray) -> list[Detection]: ...


def ensure_bgr(frame: object, rgb: bool = False) -> np.ndarray:
    """Validate a frame and return it as contiguous BGR uint8 HxWx3.

    Gray (HxW or HxWx1) is replicated, 4-channel drops alpha, ``rgb=True`` swaps R and B. Any
    other input raises :class:`InvalidInputError` saying what was wrong.
    """
    if frame is None:
        raise InvalidInputError("frame is None (a camera or cv2.imread that failed returns None)")
    if not isinstance(frame, np.ndarray):
        raise InvalidInputError(f"a frame must be a numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise InvalidInputError(f"a frame must be uint8 (0-255), got dtype {frame.dtype}; convert with "
                                "np.clip(x, 0, 255).astype(np.uint8) (or x * 255 for floats in [0, 1])")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR) if frame.size else frame
    elif frame.ndim == 3 and frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_RGBA2BGR if rgb else cv2.COLOR_BGRA2BGR) if frame.size else frame
    elif frame.ndim == 3 and frame.shape[2] == 3:
        frame = frame[:, :, ::-1] if rgb else frame
    else:
        raise InvalidInputError(f"a frame must be HxW, HxWx1, HxWx3 or HxWx4, got shape {frame.shape}")
    if frame.size == 0 or frame.shape[0] < 2 or frame.shape[1] < 2:
        raise InvalidInputError(f"frame is empty or degenerate (shape {frame.shape})")
    return np.ascontiguousarray(frame)


class YuNetDetector:
    """YuNet through ``cv2.FaceDetectorYN`` with downscaling, ``min_face`` and ``max_faces``.

    ``detect_size`` bounds the longer side of the copy YuNet sees: YuNet finds faces down to
    about 10 px there, so the smallest face found in a frame is about
    ``10 * frame_long_side / detect_size`` px; raise it for far-away faces. Faces whose box is
    smaller than ``min_face`` frame pixels are dropped. One ``cv2.FaceDetectorYN`` is shared
    behind a lock (``setInputSize`` mutates it), so one detector is safe from many threads.
    """

    def __init__(self, model: str = "s", score_threshold: float = 0.6, nms_threshold: float = 0.3,
                 min_face: int = 20, max_faces: int = 16, detect_size: int = 320) -> None:
        path = Path(YUNET_MODELS.get(model, model))
        path = path if path.is_absolute() else YUNET_DIR / path
        if not path.is_file():
            raise ModelNotFoundError(f"YuNet model {path} not found; the package data is incomplete "
                                     "(reinstall fer_edge) or pass model='s' or <path to a YuNet .onnx>")
        if not 0.0 < score_threshold < 1.0 or min_face < 1 or max_faces < 1 or detect_size < 32:
            raise InvalidInputError("need 0 < score_threshold < 1, min_face >= 1, max_faces >= 1, detect_size >= 32")
        self.model_path = path
        self.min_face, self.max_faces, self.detect_size = int(min_face), int(max_faces), int(detect_size)
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # OpenCV 5 warns on every create
        try:
            self._net = cv2.FaceDetectorYN.create(str(path), "", (detect_size, detect_size), float(score_threshold),
                                                  float(nms_threshold), 5000)
        finally:
            cv2.utils.logging.setLogLevel(level)
        self._size: tuple[int, ...] = (detect_size, detect_size)
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in a BGR uint8 frame (validated by :func:`ensure_bgr`), highest score first."""
        image = ensure_bgr(image)
        height, width = image.shape[:2]
        scale = min(1.0, self.detect_size / max(height, width))
        small = image
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        with self._lock:
            if self._size != small.shape[:2]:  # resizing the net costs more than a small frame's detection
                self._net.setInputSize((small.shape[1], small.shape[0]))
                self._size = small.shape[:2]
            _, raw = self._net.detect(small)
        if raw is None:
            return []
        faces = []
        for row in raw[np.argsort(-raw[:, 14])]:
            x, y, w, h = (float(v) / scale for v in row[:4])
            if min(w, h) < self.min_face:
                continue
            landmarks = (row[4:14].reshape(5, 2) / scale).astype(np.float32)
            faces.append(Detection((x, y, w, h), landmarks, float(row[14])))
            if len(faces) == self.max_faces:
                break
        return faces
