"""Face detection: the :class:`FaceDetector` protocol and the shipped YuNet detector.

OpenCV 5 has no Haar cascades and nothing may be downloaded at run time, so YuNet
(ShiqiYu/libfacedetection.train, Apache-2.0, see THIRD_PARTY_NOTICES.md) ships as package data
and runs through ``cv2.FaceDetectorYN``. Detection runs on a downscaled copy of the frame (its
cost grows with the pixel count: FACTS.md measured 66 ms at 640x480 vs 15 ms at 320x240) and
boxes and landmarks are mapped back to the caller's pixel coordinates.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
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


def detect_around(detector: FaceDetector, image: np.ndarray, box: Sequence[float], margin: float) -> list[Detection]:
    """Faces in the square region around ``box`` (x, y, w, h), in frame pixels, best first.

    The region's side is ``max(w, h) * (1 + 2 * margin)``, centred on the box. A detector with
    its own ``detect_around`` (YuNet) runs there at its full-frame scale; any other detector is
    given the cropped region at full resolution and its faces are shifted back. A detector may
    also offer ``regions_pay(shape, boxes, margin) -> bool`` (YuNet does): streams then run a full
    pass instead whenever the regions would cost more.
    """
    method = getattr(detector, "detect_around", None)
    if callable(method):
        return list(method(image, box, margin))
    height, width = image.shape[:2]
    x0, y0, x1, y1 = _square_region(box, margin)
    ix0, iy0 = max(0, math.floor(x0)), max(0, math.floor(y0))
    ix1, iy1 = min(width, math.ceil(x1)), min(height, math.ceil(y1))
    if ix1 - ix0 < 2 or iy1 - iy0 < 2:
        return []
    offset = np.array([ix0, iy0], dtype=np.float32)
    return [Detection((f.box[0] + ix0, f.box[1] + iy0, f.box[2], f.box[3]),
                      np.asarray(f.landmarks, dtype=np.float32) + offset, f.score)
            for f in detector.detect(np.ascontiguousarray(image[iy0:iy1, ix0:ix1]))]


def _square_region(box: Sequence[float], margin: float) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of the square of side ``max(w, h) * (1 + 2 * margin)`` centred on ``box``."""
    x, y, w, h = (float(v) for v in box)
    side = max(w, h) * (1.0 + 2.0 * margin)
    cx, cy = x + w / 2, y + h / 2
    return cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2


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

    :meth:`detect_around` re-detects a face in a small square around its last box, on the same
    downscaled pixels the full-frame pass sees (so boxes and landmarks match it), with one
    small net per region size (multiples of 32, at most ``REGION_NETS`` kept).
    """

    REGION_NETS = 6
    CALL_PIXELS = 2048  # YuNet's fixed cost per call, in pixels of detection work (see regions_pay)

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
        self.score_threshold, self.nms_threshold = float(score_threshold), float(nms_threshold)
        self.min_face, self.max_faces, self.detect_size = int(min_face), int(max_faces), int(detect_size)
        self._net = self._create((self.detect_size, self.detect_size))
        self._size: tuple[int, ...] = (detect_size, detect_size)
        self._lock = threading.Lock()
        self._region_nets: OrderedDict[int, cv2.FaceDetectorYN] = OrderedDict()

    def _create(self, size: tuple[int, int]) -> cv2.FaceDetectorYN:
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # OpenCV 5 warns on every create
        try:
            return cv2.FaceDetectorYN.create(str(self.model_path), "", size, self.score_threshold,
                                             self.nms_threshold, 5000)
        finally:
            cv2.utils.logging.setLogLevel(level)

    def scale_for(self, shape: Sequence[int]) -> float:
        """The factor a frame of ``shape`` (H, W, ...) is downscaled by before YuNet sees it."""
        return min(1.0, self.detect_size / max(int(shape[0]), int(shape[1])))

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in a BGR uint8 frame (validated by :func:`ensure_bgr`), highest score first."""
        image = ensure_bgr(image)
        height, width = image.shape[:2]
        scale = self.scale_for(image.shape)
        small = image
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        with self._lock:
            if self._size != small.shape[:2]:  # resizing the net costs more than a small frame's detection
                self._net.setInputSize((small.shape[1], small.shape[0]))
                self._size = small.shape[:2]
            _, raw = self._net.detect(small)
        return self._faces(raw, scale, 0, 0)

    def detect_around(self, image: np.ndarray, box: Sequence[float], margin: float) -> list[Detection]:
        """Faces in the square around ``box`` (side ``max(w, h) * (1 + 2 * margin)``), best first.

        The square is taken on the full-frame pass's grid: the frame crop is downscaled by the same
        factor as in :meth:`detect`, its corner is moved down to a multiple of 32 detector pixels
        and its side rounded up to one (YuNet's strides divide 32), and parts outside the frame are
        zero, as YuNet pads. When the square would cover most of the frame, this is :meth:`detect`.
        """
        image = ensure_bgr(image)
        height, width = image.shape[:2]
        scale = self.scale_for(image.shape)
        left, top, side = self._region(image.shape, box, margin)
        if side * side >= self._frame_pixels(image.shape) * 0.75:  # about the frame's size: the full pass is as cheap
            return self.detect(image)
        ix0, iy0 = round(left / scale), round(top / scale)
        ix1, iy1 = min(width, round((left + side) / scale)), min(height, round((top + side) / scale))
        crop = image[iy0:iy1, ix0:ix1]
        if crop.shape[0] < 2 or crop.shape[1] < 2:  # a box at or beyond the frame's edge
            return []
        if scale < 1.0:
            crop = cv2.resize(crop, (min(side, max(1, round((ix1 - ix0) * scale))),
                                     min(side, max(1, round((iy1 - iy0) * scale)))), interpolation=cv2.INTER_AREA)
        if crop.shape[0] != side or crop.shape[1] != side:  # the frame is narrower than the square
            crop = cv2.copyMakeBorder(crop, 0, side - crop.shape[0], 0, side - crop.shape[1], cv2.BORDER_CONSTANT,
                                      value=(0, 0, 0))
        with self._lock:
            net = self._region_nets.pop(side, None) or self._create((side, side))
            self._region_nets[side] = net  # most recently used last
            while len(self._region_nets) > self.REGION_NETS:
                self._region_nets.popitem(last=False)
            _, raw = net.detect(crop)
        return self._faces(raw, scale, ix0, iy0)

    def _region(self, shape: Sequence[int], box: Sequence[float], margin: float) -> tuple[int, int, int]:
        """(left, top, side) of the square around ``box`` in detector pixels, on YuNet's grid.

        YuNet's strides divide 32, so a region whose corner sits on a multiple of 32 sees the face
        at the same anchor offsets as the full-frame pass (boxes and landmarks then match it,
        up to what lies outside the region).
        """
        scale = self.scale_for(shape)
        x0, y0, x1, y1 = (v * scale for v in _square_region(box, margin))
        left, top = 32 * max(0, math.floor(x0 / 32)), 32 * max(0, math.floor(y0 / 32))
        return left, top, 32 * max(1, math.ceil(max(x1 - left, y1 - top) / 32))

    def _frame_pixels(self, shape: Sequence[int]) -> int:
        """Pixels YuNet runs on for a full frame of ``shape`` (downscaled, padded to multiples of 32)."""
        scale = self.scale_for(shape)
        w, h = max(1, round(int(shape[1]) * scale)), max(1, round(int(shape[0]) * scale))
        return 32 * math.ceil(w / 32) * 32 * math.ceil(h / 32)

    def regions_pay(self, shape: Sequence[int], boxes: Sequence[Sequence[float]], margin: float) -> bool:
        """Whether re-detecting around ``boxes`` costs less than one full-frame pass on a frame of ``shape``.

        YuNet's time grows with the pixels it sees, plus a fixed cost per call (measured here: about
        as much as 2,000 pixels); regions are used while they total under 90 % of the full pass.
        """
        regions = sum(self._region(shape, box, margin)[2] ** 2 + self.CALL_PIXELS for box in boxes)
        return regions < 0.9 * self._frame_pixels(shape)

    def _faces(self, raw: np.ndarray | None, scale: float, dx: float, dy: float) -> list[Detection]:
        """YuNet rows (detector pixels) -> Detections in frame pixels, filtered, best first."""
        if raw is None:
            return []
        faces = []
        offset = np.array([dx, dy], dtype=np.float32)
        for row in raw[np.argsort(-raw[:, 14])]:
            x, y, w, h = (float(v) / scale for v in row[:4])
            if min(w, h) < self.min_face:
                continue
            landmarks = (row[4:14].reshape(5, 2) / scale).astype(np.float32) + offset
            faces.append(Detection((x + dx, y + dy, w, h), landmarks, float(row[14])))
            if len(faces) == self.max_faces:
                break
        return faces
