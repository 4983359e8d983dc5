"""Result types: plain dataclasses that convert to dicts/JSON under a versioned schema.

The schema string travels in every JSON document so consumers can detect format changes
(an unstable output format is a recurring complaint, DF#672 in USERS.md). Adding an optional
field keeps the version; renaming or removing one, or a new value where consumers read a
class name, bumps it. ``fer_edge.result/2`` (see CHANGELOG.md) adds per face ``quality``,
``uncertain`` and ``uncertain_reasons``, and ``label`` may be ``"uncertain"``; every /1 key is kept
with its meaning, so a /1 reader that ignores unknown keys reads /2.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from fer_edge.recognizer.abstain import UNCERTAIN
from fer_edge.vision.quality import FaceQuality

RESULT_SCHEMA = "fer_edge.result/2"


def _round(value: float) -> float:
    return round(float(value), 4)


@dataclass(frozen=True)
class FaceResult:
    """One face: where it is, how sure the detector was, and the expression probabilities.

    ``box`` is (x, y, w, h) and ``landmarks`` five (x, y) points in frame pixels (None for crops
    given to ``predict_faces``). In streams, ``track_id`` follows the face across frames and
    ``smoothed`` holds its probabilities averaged over the smoothing window (``smoothed_label``
    is their argmax); ``label``/``probabilities`` are always this frame's own.

    ``quality`` is what was measured on the face (None where nothing was) and ``uncertain`` says
    the Recognizer would not answer it (``reasons``: which thresholds failed). ``label`` stays the
    top class so code can still read it; :attr:`output_label` (``"uncertain"`` or the label) is
    what outputs (JSON, drawings) show. An uncertain frame does not move a track's ``smoothed``.
    """

    box: tuple[float, float, float, float]
    label: str
    probabilities: dict[str, float]
    score: float = 1.0
    landmarks: tuple[tuple[float, float], ...] | None = None
    track_id: int | None = None
    smoothed: dict[str, float] | None = None
    quality: FaceQuality | None = None
    uncertain: bool = False
    reasons: tuple[str, ...] = ()

    @property
    def output_label(self) -> str:
        return UNCERTAIN if self.uncertain else self.label

    @property
    def smoothed_label(self) -> str | None:
        return max(self.smoothed, key=self.smoothed.__getitem__) if self.smoothed else None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "box": [_round(v) for v in self.box],
            "score": _round(self.score),
            "label": self.output_label,
            "probabilities": {k: _round(v) for k, v in self.probabilities.items()},
            "landmarks": [[_round(x), _round(y)] for x, y in self.landmarks] if self.landmarks else None,
        }
        if self.track_id is not None:
            data["track_id"] = self.track_id
        if self.smoothed is not None:
            data["smoothed"] = {k: _round(v) for k, v in self.smoothed.items()}
            data["smoothed_label"] = self.smoothed_label
        data["quality"] = self.quality.to_dict() if self.quality is not None else None
        data["uncertain"] = self.uncertain
        data["uncertain_reasons"] = list(self.reasons)
        return data


@dataclass(frozen=True)
class FrameResult:
    """All faces of one frame; streams fill ``frame_index`` and ``timestamp`` (seconds)."""

    faces: list[FaceResult] = field(default_factory=list)
    frame_index: int | None = None
    timestamp: float | None = None
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"schema": RESULT_SCHEMA}
        if self.source is not None:
            data["source"] = self.source
        if self.frame_index is not None:
            data["frame_index"] = self.frame_index
        if self.timestamp is not None:
            data["timestamp"] = round(self.timestamp, 4)
        data["faces"] = [face.to_dict() for face in self.faces]
        return data

    def to_json(self) -> str:
        """One line of JSON (the ``fer-edge run --json`` format)."""
        return json.dumps(self.to_dict(), separators=(",", ":"))
