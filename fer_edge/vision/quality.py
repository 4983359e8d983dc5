"""Face quality: measured inputs for telling a readable face from one the model cannot read.

FER models answer confidently on tiny, blurred, turned-away or occluded faces (microsoft/FERPlus#11,
py-feat#356). This module only *measures* (face size, sharpness, head pose, detector score); whether
a face is too poor to answer is the Recognizer's decision (:mod:`fer_edge.recognizer.abstain`),
with thresholds chosen on FER+ valid (``tools/abstention_curve.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from fer_edge.vision.align import crop_face, template

# Sharpness is measured on a crop of this fixed size, so its threshold does not depend on the
# input size of whichever model runs (a 48 px and a 112 px model see the same number).
QUALITY_SIZE = 64

# A generic head (the 3-D model commonly used for 5-point solvePnP head pose): eye centres 300
# units apart, the nose tip 135 units in front of the eye plane, the mouth 320 units below the
# eyes. Under weak perspective a yaw t moves the nose off the eye midpoint by
# NOSE_DEPTH / EYE_SPAN * tan(t) eye spans; a pitch p moves it up by NOSE_DEPTH / MOUTH_DROP * tan(p)
# eye-to-mouth distances.
NOSE_DEPTH_PER_EYE_SPAN = 135.0 / 300.0
NOSE_DEPTH_PER_MOUTH_DROP = 135.0 / 320.0


@dataclass(frozen=True)
class FaceQuality:
    """What was measured on one face.

    ``face_px``: the shorter side of the detector box in frame pixels. ``sharpness``: variance of
    the Laplacian of the gray aligned crop at :data:`QUALITY_SIZE` px (blur and up-scaled tiny
    faces score low). ``yaw``/``pitch``: head pose in degrees from the five landmarks (positive
    yaw: the nose points to the image right; positive pitch: the face tilts up), ``None`` when
    the detector gave no landmarks. ``score``: the detector's confidence.
    """

    face_px: float
    sharpness: float
    yaw: float | None
    pitch: float | None
    score: float

    def to_dict(self) -> dict[str, Any]:
        def num(v: float | None) -> float | None:
            return None if v is None else round(float(v), 2)

        return {"face_px": num(self.face_px), "sharpness": num(self.sharpness), "yaw": num(self.yaw),
                "pitch": num(self.pitch), "score": round(float(self.score), 4)}


def sharpness(crop: np.ndarray) -> float:
    """Variance of the Laplacian of ``crop`` (uint8, gray or BGR) resized to :data:`QUALITY_SIZE`."""
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    if gray.shape[:2] != (QUALITY_SIZE, QUALITY_SIZE):
        shrink = min(gray.shape[:2]) > QUALITY_SIZE
        gray = cv2.resize(gray, (QUALITY_SIZE, QUALITY_SIZE), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def head_pose(landmarks: np.ndarray, alignment: str = "fer2013") -> tuple[float, float]:
    """(yaw, pitch) in degrees from five landmarks (YuNet order), relative to template ``alignment``.

    The landmarks are first rotated so the eyes are level (roll does not matter: alignment undoes
    it). The nose's offset from the eye midpoint (in eye spans) gives yaw, its height between the
    eye line and the mouth line gives pitch, each measured from where the template puts a frontal
    face and converted to degrees with the generic head's proportions. Degenerate landmarks (eyes
    on one point, mouth not below the eyes) read as 90 degrees: such a face cannot be read.
    """
    points = np.asarray(landmarks, dtype=np.float64)
    span = points[1] - points[0]
    iod = float(np.hypot(*span))
    if iod < 1e-6:
        return 90.0, 90.0
    cos, sin = span / iod
    level = (points - points[:2].mean(axis=0)) @ np.array([[cos, -sin], [sin, cos]])  # roll removed
    drop = float(level[3:, 1].mean())
    if drop <= 1e-6:
        return 90.0, 90.0
    ref = template(alignment)
    ref_offset = (ref[2, 0] - ref[:2, 0].mean()) / (ref[1, 0] - ref[0, 0])
    ref_height = (ref[2, 1] - ref[:2, 1].mean()) / (ref[3:, 1].mean() - ref[:2, 1].mean())
    offset = level[2, 0] / iod - ref_offset
    height = level[2, 1] / drop - ref_height
    yaw = math.degrees(math.atan(offset / NOSE_DEPTH_PER_EYE_SPAN))
    pitch = math.degrees(math.atan(-height / NOSE_DEPTH_PER_MOUTH_DROP))
    return yaw, pitch


def measure_quality(image: np.ndarray, box: tuple[float, float, float, float], landmarks: np.ndarray | None,
                    score: float, alignment: str = "fer2013") -> FaceQuality:
    """The quality of one detected face in BGR ``image``.

    Sharpness is measured on the face cropped as the model's crop is (aligned to ``alignment`` on
    its landmarks, or cut from its box when there are none), at :data:`QUALITY_SIZE`. Pose needs
    five finite landmarks; without them (a detector that gives only boxes, crops given directly)
    it is ``None``.
    """
    measured = crop_face(image, box, landmarks, (QUALITY_SIZE, QUALITY_SIZE), alignment)
    pose: tuple[float | None, float | None] = (None, None)
    if landmarks is not None and np.isfinite(landmarks).all():
        pose = head_pose(landmarks, alignment)
    return FaceQuality(float(min(box[2], box[3])), sharpness(measured), pose[0], pose[1], float(score))
