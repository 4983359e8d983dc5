"""IoU tracking, per-track temporal smoothing, and the detection policy of streams.

Per-frame labels flicker; a kiosk wants "this person's expression over the last second". Faces
are matched to tracks greedily by box IoU (faces move little between frames at camera rates),
and each track keeps either a time window of probabilities or an exponential moving average.
State is bounded: windows hold at most ``seconds`` of history and tracks unseen for
``max_age`` seconds are retired into a fixed-size summary, so long streams run in flat memory.

Full-frame detection is most of a frame's cost, and between frames faces move little:
:class:`DetectionPolicy` says when a stream runs it and when it only re-detects each tracked face
in a small region around its last box.
"""

from __future__ import annotations

import itertools
import numbers
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from fer_edge.errors import InvalidInputError


@dataclass(frozen=True)
class Smoothing:
    """``kind="window"``: mean over the last ``seconds``; ``"ema"``: ``p = alpha*new + (1-alpha)*p``."""

    kind: str = "window"
    seconds: float = 1.0
    alpha: float = 0.3

    def __post_init__(self) -> None:
        if self.kind not in ("window", "ema") or self.seconds <= 0 or not 0 < self.alpha <= 1:
            raise InvalidInputError(f"smoothing needs kind 'window'|'ema', seconds > 0, 0 < alpha <= 1; got {self}")

    @classmethod
    def parse(cls, value: Smoothing | str | None) -> Smoothing | None:
        if value is None or isinstance(value, Smoothing):
            return value
        if value in ("window", "ema"):
            return cls(kind=value)
        raise InvalidInputError(f"smoothing must be 'window', 'ema', a Smoothing or None, got {value!r}")


POLICIES = ("track", "full")


@dataclass(frozen=True)
class DetectionPolicy:
    """When a stream runs full-frame detection, and how it follows faces in between.

    ``policy="track"`` (default): full-frame detection on the first frame, every ``detect_every``
    frames after the last full pass, and on any frame where a tracked face is not re-found in
    its region (the track is lost and its slot is free for a new face); on the other frames each
    face tracked in the previous frame is re-detected in the square around its last box, grown by
    ``margin`` times the box side on every side, at the detector's full-frame scale (so boxes and
    landmarks are real detections, never extrapolated); when the regions would cost the detector
    more than the whole frame (``regions_pay``, e.g. several large faces), the frame gets a full
    pass instead. The periodic pass looks for new faces, so
    a face that enters is found within ``detect_every`` frames; it is skipped while ``max_faces``
    faces are tracked (no slot is free). ``policy="full"``: full-frame detection on every frame.
    """

    policy: str = "track"
    detect_every: int = 10
    margin: float = 0.25

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise InvalidInputError(f"detection policy must be one of {POLICIES}, got {self.policy!r}")
        every = self.detect_every
        if isinstance(every, bool) or not isinstance(every, numbers.Integral) or every < 1:
            raise InvalidInputError(f"detect_every must be an integer >= 1 (frames), got {every!r}")
        margin = self.margin
        if isinstance(margin, bool) or not isinstance(margin, numbers.Real) or not 0.0 <= float(margin) <= 4.0:
            raise InvalidInputError(f"margin must be a number in [0, 4] (fraction of the face box side added on "
                                    f"each side of the re-detection region), got {margin!r}")
        object.__setattr__(self, "detect_every", int(every))
        object.__setattr__(self, "margin", float(margin))


@dataclass(eq=False)
class Track:
    """One tracked face: its last box, smoothed state, and whole-track totals for the summary."""

    track_id: int
    box: np.ndarray
    last_seen: float
    first_seen: float
    window: deque[tuple[float, np.ndarray]] = field(default_factory=deque)
    ema: np.ndarray | None = None
    total: np.ndarray | None = None
    frames: int = 0
    answered: int = 0  # frames not uncertain: the ones in ``total`` and the smoothing

    def move(self, box: np.ndarray, t: float) -> None:
        """This frame's box (what matching and re-detection use next frame)."""
        self.box, self.last_seen = box, t

    def observe(self, probs: np.ndarray, t: float, smoothing: Smoothing, uncertain: bool = False) -> np.ndarray | None:
        """Add this frame's probabilities; return the smoothed ones.

        An ``uncertain`` frame (a face the Recognizer would not answer) counts but leaves the
        smoothed state alone: a blurred or turned-away moment must not drag a person's expression.
        The state it returns is the one before it (None while the track has no answered frame).
        """
        self.frames += 1
        if uncertain:
            return self.ema if smoothing.kind == "ema" else self._window_mean()
        self.answered += 1
        self.total = probs.copy() if self.total is None else self.total + probs
        if smoothing.kind == "ema":
            self.ema = probs.copy() if self.ema is None else smoothing.alpha * probs + (1 - smoothing.alpha) * self.ema
            return self.ema
        self.window.append((t, probs))
        while self.window and self.window[0][0] <= t - smoothing.seconds:
            self.window.popleft()
        return self._window_mean()

    def _window_mean(self) -> np.ndarray | None:
        return np.mean([p for _, p in self.window], axis=0) if self.window else None


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (x, y, w, h) boxes: ``a`` (N, 4) x ``b`` (M, 4) -> (N, M)."""
    a1, a2 = a[:, None, :2], a[:, None, :2] + a[:, None, 2:]
    b1, b2 = b[None, :, :2], b[None, :, :2] + b[None, :, 2:]
    inter = np.clip(np.minimum(a2, b2) - np.maximum(a1, b1), 0, None).prod(axis=2)
    union = a[:, None, 2:].prod(axis=2) + b[None, :, 2:].prod(axis=2) - inter
    return np.asarray(inter / np.maximum(union, 1e-9))


class IoUTracker:
    """Greedy IoU matching of detections to live tracks, with smoothing per track."""

    def __init__(self, smoothing: Smoothing | None, iou_threshold: float = 0.3, max_age: float = 0.5,
                 max_retired: int = 1000) -> None:
        self.smoothing = smoothing or Smoothing(kind="ema", alpha=1.0)  # alpha 1: no smoothing, same code path
        self.iou_threshold, self.max_age = iou_threshold, max_age
        self.tracks: dict[int, Track] = {}
        self.retired: deque[Track] = deque(maxlen=max_retired)
        self._ids = itertools.count(1)

    def update(self, boxes: Sequence[Sequence[float]], probs: np.ndarray, t: float,
               track_ids: Sequence[int | None] | None = None,
               uncertain: Sequence[bool] | None = None) -> list[tuple[int, np.ndarray | None]]:
        """Assign each detection a track id; return (track_id, smoothed probabilities) per detection.

        ``track_ids`` (one per detection, None where unknown) attaches detections re-found in a
        live track's region to that track directly; the others are matched by IoU. ``uncertain``
        (one per detection) marks faces whose probabilities must not enter the smoothing.
        """
        return self.observe(self.assign(boxes, t, track_ids), probs, t, uncertain)

    def assign(self, boxes: Sequence[Sequence[float]], t: float,
               track_ids: Sequence[int | None] | None = None) -> list[Track]:
        """The first half of :meth:`update`: each detection's track (new ones created), boxes moved.

        It needs only the boxes, so a pipelined stream assigns a frame's faces before its
        probabilities exist, and the next frame's re-detection can follow them meanwhile.
        """
        for track_id in [k for k, tr in self.tracks.items() if t - tr.last_seen > self.max_age]:
            self.retired.append(self.tracks.pop(track_id))
        det = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        assigned: dict[int, Track] = {}
        for i, hint in enumerate(track_ids or ()):
            track = self.tracks.get(hint) if hint is not None else None
            if track is not None and track not in assigned.values():
                assigned[i] = track
        live = [tr for tr in self.tracks.values() if tr not in assigned.values()]
        if live and len(det) > len(assigned):
            iou = iou_matrix(det, np.stack([tr.box for tr in live]))
            used: set[int] = set()
            for flat in np.argsort(-iou, axis=None):
                i, j = divmod(int(flat), len(live))
                if iou[i, j] < self.iou_threshold:
                    break
                if i not in assigned and j not in used:
                    assigned[i] = live[j]
                    used.add(j)
        out = []
        for i, box in enumerate(det):
            track = assigned.get(i)
            if track is None:
                track = Track(next(self._ids), box, t, t)
                self.tracks[track.track_id] = track
            track.move(box, t)
            out.append(track)
        return out

    def observe(self, tracks: Sequence[Track], probs: np.ndarray, t: float,
                uncertain: Sequence[bool] | None = None) -> list[tuple[int, np.ndarray | None]]:
        """The second half of :meth:`update`: each assigned track's probabilities into its smoothing;
        (track_id, smoothed probabilities) per track."""
        return [(track.track_id, track.observe(probs[i], t, self.smoothing,
                                               bool(uncertain[i]) if uncertain is not None else False))
                for i, track in enumerate(tracks)]

    def expression(self, track_id: int, t: float) -> np.ndarray | None:
        """Smoothed probabilities of a live track as of time ``t`` (None if unknown or expired)."""
        track = self.tracks.get(track_id)
        if track is None or t - track.last_seen > self.max_age:
            return None
        if self.smoothing.kind == "ema":
            return track.ema
        recent = [p for ts, p in track.window if ts > t - self.smoothing.seconds]
        return np.mean(recent, axis=0) if recent else None
