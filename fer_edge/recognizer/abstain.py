"""When the Recognizer answers "uncertain" instead of a confident wrong expression.

A face is uncertain when a measured quality (:class:`fer_edge.vision.quality.FaceQuality`) is below
its threshold or the top probability is below ``min_confidence``; its probabilities are still
given. The defaults were chosen on FER+ valid with synthetic degradations so that at least 90 % of
clean faces are still answered while accuracy on the answered degraded faces rises (the curve and
the command are in the README, "Face quality and uncertain").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from fer_edge.errors import InvalidInputError
from fer_edge.vision.quality import FaceQuality

UNCERTAIN = "uncertain"


@dataclass(frozen=True)
class Abstention:
    """Thresholds below which a face is answered "uncertain"; set one to 0 (or ``max_*`` to 180) to disable it.

    ``min_face_px``: shorter box side in frame pixels. ``min_sharpness``: variance of the Laplacian
    of the aligned 64 px crop. ``max_yaw``/``max_pitch``: absolute head pose in degrees (ignored for
    faces without landmarks). ``min_score``: detector confidence. ``min_confidence``: top softmax
    probability (the shipped models are trained with label smoothing and are not recalibrated).
    """

    # Chosen by tools/abstention_curve.py (FER+ valid, 2,857 faces x 6 conditions, default INT8 model):
    # the detector score and the top probability paid; face size, sharpness and pose gates cost more
    # clean answers than they saved on degraded faces, so they stay off until asked for.
    min_face_px: float = 0.0
    min_sharpness: float = 0.0
    max_yaw: float = 180.0
    max_pitch: float = 180.0
    min_score: float = 0.65
    min_confidence: float = 0.475

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise InvalidInputError(f"abstention threshold {f.name} must be a finite number >= 0, got {value!r}")
        if self.min_confidence > 1 or self.min_score > 1:
            raise InvalidInputError("min_confidence and min_score are probabilities: at most 1")

    @classmethod
    def parse(cls, value: Abstention | bool | None) -> Abstention | None:
        """``True``: the measured defaults; ``False``/``None``: never uncertain; an Abstention as it is."""
        if isinstance(value, Abstention) or value is None:
            return value
        if isinstance(value, bool):
            return cls() if value else None
        raise InvalidInputError(f"abstain must be True, False, None or an Abstention, got {type(value).__name__}")

    def reasons(self, quality: FaceQuality, top_probability: float) -> tuple[str, ...]:
        """Names of the thresholds this face fails (empty: answer it)."""
        failed = []
        if quality.face_px < self.min_face_px:
            failed.append("face_px")
        if quality.sharpness < self.min_sharpness:
            failed.append("sharpness")
        if quality.yaw is not None and abs(quality.yaw) > self.max_yaw:
            failed.append("yaw")
        if quality.pitch is not None and abs(quality.pitch) > self.max_pitch:
            failed.append("pitch")
        if quality.score < self.min_score:
            failed.append("score")
        if top_probability < self.min_confidence:
            failed.append("confidence")
        return tuple(failed)
