"""Face alignment: a similarity transform of 5 landmarks onto a named template, then a crop.

The template a model was trained with is named in its sidecar (``InputSpec.alignment``), so the
runtime, calibration and export checks crop faces exactly as the training data were framed.
Training data that are already crops (FER2013/FER+) are used as they are; the ``"fer2013"``
template reproduces their framing on camera frames.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from fer_edge.errors import InvalidInputError

# Landmark positions as fractions of the output crop (x, y), YuNet order: eye, eye, nose tip,
# mouth corner, mouth corner, image-left first.
TEMPLATES: dict[str, np.ndarray] = {
    # Median YuNet landmarks on 400 FER+ train faces (48x48, upscaled x4 with 50% replicated
    # border), measured by: python tools/measure_fer2013_template.py -n 400
    # (median absolute deviation 0.03-0.04 of the crop per coordinate).
    "fer2013": np.array([[0.3121, 0.3780], [0.6746, 0.3776], [0.4893, 0.5946],
                         [0.3478, 0.7373], [0.6406, 0.7413]], dtype=np.float64),
    # The ArcFace/InsightFace 112x112 template (divided by 112): a tighter crop for models
    # trained on aligned face-recognition data.
    "arcface": np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                         [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64) / 112.0,
}


# Above this many frame pixels per crop pixel, the crop is warped from an area-downscaled copy of
# the face's region rather than from the frame. A bilinear warp reads 4 frame pixels per crop pixel
# whatever the scale, so of a face 4x the crop's size 12 of every 16 pixels go unread: a sharp
# photo's sensor noise and skin texture alias into the crop as grain that FER2013's downscaled faces
# never had, which pulls answers toward neutral (measured: python tools/measure_photo_crops.py).
ANTIALIAS_ABOVE = 1.5


def template(name: str) -> np.ndarray:
    """The (5, 2) normalised template called ``name``; unknown names list the known ones."""
    try:
        return TEMPLATES[name]
    except KeyError:
        raise InvalidInputError(f"unknown alignment template {name!r}; known: {sorted(TEMPLATES)}") from None


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping ``src`` onto ``dst``.

    In 2-D a similarity is multiplication by one complex number ``c`` (scale and rotation) plus a
    shift, so the least-squares fit over all points has a closed form: with both point sets centred,
    ``c = sum(conj(s) * d) / sum(|s|^2)``. This is Umeyama's (1991) solution without its SVD (a
    proper rotation, no reflection) and, unlike ``cv2.estimateAffinePartial2D``, has no random
    sampling, so the same landmarks always give the same crop; it costs a few microseconds, which
    matters twice per face per video frame. Returns a 2x3 matrix.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    s = (src[:, 0] - src_mean[0]) + 1j * (src[:, 1] - src_mean[1])
    d = (dst[:, 0] - dst_mean[0]) + 1j * (dst[:, 1] - dst_mean[1])
    variance = float((s.real**2 + s.imag**2).sum())
    if variance < 1e-12 * len(src):
        raise InvalidInputError("landmarks are degenerate (all at one point); cannot align the face")
    c = complex((np.conj(s) * d).sum()) / variance
    matrix = np.array([[c.real, -c.imag, 0.0], [c.imag, c.real, 0.0]])
    matrix[:, 2] = dst_mean - matrix[:, :2] @ src_mean
    return matrix


def box_crop_landmarks(box: Sequence[float], name: str = "fer2013") -> np.ndarray:
    """Landmarks a face box would have under template ``name``, for detectors without landmarks.

    Treats the box as the template's square crop, so alignment degrades to a plain box crop.
    """
    x, y, w, h = (float(v) for v in box)
    side = max(w, h)
    return template(name) * side + np.array([x + (w - side) / 2, y + (h - side) / 2])


def crop_face(image: np.ndarray, box: Sequence[float], landmarks: np.ndarray | None, size: tuple[int, int],
              name: str = "fer2013") -> np.ndarray:
    """The model's crop of one detected face: aligned on its landmarks, or cut from its box when the
    detector gave none. The Recognizer and ``fer-edge explain`` both crop through here."""
    if landmarks is None or not np.isfinite(landmarks).all():
        landmarks = box_crop_landmarks(box, name)
    return align_face(image, landmarks, size, name)


def align_face(image: np.ndarray, landmarks: np.ndarray, size: tuple[int, int], name: str = "fer2013",
               antialias: bool = True) -> np.ndarray:
    """Warp ``image`` so the 5 ``landmarks`` land on template ``name``; return a ``size`` (H, W) crop.

    The crop keeps the image's channels and dtype; pixels outside the frame replicate its border
    (a face at the frame edge stays usable rather than gaining a black band the model never saw).
    A face more than :data:`ANTIALIAS_ABOVE` times the crop's size is first area-averaged down to
    it, as FER2013's faces were (``antialias=False``: the plain bilinear warp, for comparisons).
    """
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (5, 2) or not np.isfinite(points).all():
        raise InvalidInputError(f"alignment needs 5 finite (x, y) landmarks, got shape {points.shape}")
    height, width = int(size[0]), int(size[1])
    matrix = similarity_transform(points, template(name) * np.array([width, height]))
    if antialias:
        image, matrix = area_prefilter(image, matrix, (width, height))
    return cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def area_prefilter(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The region of ``image`` that the (W, H) ``size`` crop of ``matrix`` reads, area-averaged by
    the whole factor nearest the warp's shrink, and the matrix that warps it into the same crop;
    ``image`` and ``matrix`` unchanged when the warp shrinks by at most :data:`ANTIALIAS_ABOVE` or
    reads too little of the frame. Only the region is averaged, and a whole factor takes OpenCV's
    fast path (about half the time of a fractional one), so a face costs ~0.1 ms more.
    """
    shrink = 1.0 / math.hypot(matrix[0, 0], matrix[1, 0])
    if shrink <= ANTIALIAS_ABOVE:
        return image, matrix
    factor = round(shrink)
    width, height = size
    corners = np.array([[0, 0, 1], [width, 0, 1], [0, height, 1], [width, height, 1]], dtype=np.float64)
    reach = corners @ cv2.invertAffineTransform(matrix).T
    x0, y0 = np.maximum(np.floor(reach.min(axis=0) - 2 * shrink), 0).astype(int)
    x1, y1 = np.minimum(np.ceil(reach.max(axis=0) + 2 * shrink), (image.shape[1], image.shape[0])).astype(int)
    x1, y1 = x0 + (x1 - x0) // factor * factor, y0 + (y1 - y0) // factor * factor
    if x1 - x0 < 2 * factor or y1 - y0 < 2 * factor:
        return image, matrix
    small = cv2.resize(image[y0:y1, x0:x1], None, fx=1 / factor, fy=1 / factor, interpolation=cv2.INTER_AREA)
    # resize puts frame pixel x at small pixel (x - x0 + 0.5) / k - 0.5 (pixel centres), so the
    # crop's map from the frame, q = A p + t, becomes q = k A p' + A (0.5 k - 0.5 + x0) + t.
    shift = matrix[:, :2] @ (0.5 * factor - 0.5 + np.array([x0, y0])) + matrix[:, 2]
    return small, np.column_stack([matrix[:, :2] * factor, shift])


def template_regions(size: tuple[int, int], name: str = "fer2013") -> dict[str, np.ndarray]:
    """Boolean (H, W) masks of the eyes and the mouth in a ``size`` crop aligned to template ``name``.

    Sized from the template's own eye distance ``d``, so every template gets the same anatomy:
    each eye a 0.7d x 0.45d box on its landmark, the mouth the box over both corners widened by
    0.2d on each side and 0.6d tall. Used to ask whether a heatmap looks where expressions are.
    """
    points = template(name) * np.array([size[1], size[0]])
    d = float(np.hypot(*(points[1] - points[0])))
    rows, cols = np.mgrid[0 : size[0], 0 : size[1]] + 0.5

    def box(x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
        return np.asarray((cols >= x0) & (cols < x1) & (rows >= y0) & (rows < y1))

    eyes = box(points[0, 0] - 0.35 * d, points[0, 0] + 0.35 * d, points[0, 1] - 0.225 * d, points[0, 1] + 0.225 * d)
    eyes |= box(points[1, 0] - 0.35 * d, points[1, 0] + 0.35 * d, points[1, 1] - 0.225 * d, points[1, 1] + 0.225 * d)
    mouth_y = float(points[3:, 1].mean())
    mouth = box(points[3, 0] - 0.2 * d, points[4, 0] + 0.2 * d, mouth_y - 0.3 * d, mouth_y + 0.3 * d)
    return {"eyes": eyes, "mouth": mouth}
