"""``Recognizer``: frames in, per-face expressions out.

frame -> detect (YuNet or yours) -> align to the model's template -> :func:`preprocess` -> one
engine batch for all faces -> softmax -> :class:`FaceResult`, marked uncertain when its measured
quality or its top probability is below the :class:`Abstention` thresholds. Thread safety: a Recognizer holds
no per-call state; the detector serialises its own calls, ONNX Runtime and PyTorch inference
are re-entrant, and the TensorRT engine gives each thread its own context. So one Recognizer may
be shared by many threads; per-stream state (tracks) lives in each :class:`Stream`.
"""

from __future__ import annotations

import math
import os
import time
import weakref
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fer_edge._version import __version__
from fer_edge.constants import EXPRESSIONS_7, EXPRESSIONS_8
from fer_edge.engines.resolve import load_engine
from fer_edge.errors import InvalidInputError, PackageError
from fer_edge.package import Sidecar
from fer_edge.recognizer.abstain import Abstention
from fer_edge.recognizer.results import FaceResult, FrameResult
from fer_edge.recognizer.sources import Source, frames_from
from fer_edge.recognizer.tracking import DetectionPolicy, IoUTracker, Smoothing, Track, iou_matrix
from fer_edge.vision.align import crop_face
from fer_edge.vision.detector import Detection, FaceDetector, YuNetDetector, detect_around, ensure_bgr
from fer_edge.vision.preprocess import preprocess
from fer_edge.vision.quality import FaceQuality, measure_quality


def softmax(logits: np.ndarray, temperature: float = 1.0, offset: np.ndarray | None = None) -> np.ndarray:
    """Row-wise ``softmax(logits / temperature + offset)`` in float64: the package's calibrated
    probabilities when ``temperature`` is its sidecar's (the same for every backend, since engines
    return logits); ``offset`` is :meth:`Recognizer`'s prior correction, added after calibration."""
    shifted = logits.astype(np.float64) / temperature
    if offset is not None:
        shifted = shifted + offset
    exp = np.exp(shifted - shifted.max(axis=1, keepdims=True))
    return np.asarray(exp / exp.sum(axis=1, keepdims=True))


def class_columns(model_classes: Sequence[str], classes: Sequence[str] | int | None) -> np.ndarray:
    """Indices of ``classes`` among a model's outputs (all of them when None; ``7`` names the seven
    basic expressions). Scoring a subset renormalises the softmax over it, so an 8-class model
    answers in the 7 classes a 7-class application expects: contempt's share goes to the others
    in proportion, never silently to one of them."""
    if classes is None:
        return np.arange(len(model_classes))
    if isinstance(classes, int):
        if classes not in (7, 8):
            raise InvalidInputError(f"classes must be 7, 8 or a list of class names, got {classes}")
        classes = EXPRESSIONS_7 if classes == 7 else EXPRESSIONS_8
    missing = [c for c in classes if c not in model_classes]
    if missing or len(set(classes)) != len(classes) or len(classes) < 2:
        raise InvalidInputError(f"classes must be two or more distinct classes of the model's {tuple(model_classes)}; "
                                f"got {tuple(classes)}" + (f" ({missing} unknown)" if missing else ""))
    return np.asarray([list(model_classes).index(c) for c in classes])


def prior_offset(sidecar: Sidecar, tau: float) -> np.ndarray | None:
    """``-tau * log(prior)``, the logit adjustment that divides the training prior out (None when off)."""
    if not (math.isfinite(tau) and 0.0 <= tau <= 2.0):
        raise InvalidInputError(f"prior_correction must be in [0, 2] (0 = off, 1 = the full prior), got {tau}")
    if tau == 0.0:
        return None
    prior = sidecar.class_prior()
    if prior is None:
        raise PackageError(f"prior_correction needs the package's training class prior (training.class_prior), "
                           f"which {sidecar.model_id}'s sidecar does not record; retrain with this SDK or run "
                           "tools/record_class_prior.py on it")
    return -tau * np.log(np.asarray(prior, dtype=np.float64))


class Recognizer:
    """Facial-expression recognition on BGR uint8 frames (pass ``rgb=True`` for RGB arrays).

    ``model``: ``"default"`` (embedded), a model id built into the cache, or a package path.
    ``backend``: ``"auto"`` picks a TensorRT engine matching this GPU and TensorRT version, else
    ONNX Runtime (CUDA if present, else CPU, INT8 package preferred on CPU); see :meth:`info`.
    ``backend="triton"`` runs the model on the Triton server at ``url`` (``host:port[/v2/models/<name>]``,
    see :mod:`fer_edge.engines.triton`); detection, alignment and preprocessing stay here.
    ``detector``: any object with ``detect(bgr) -> list[Detection]``; default YuNet.
    ``min_face`` (pixels) and ``max_faces`` filter detections; ``smoothing`` ("window", "ema",
    a :class:`Smoothing` or None) applies to :meth:`stream`. ``abstain``: ``True`` (the measured
    default :class:`Abstention` thresholds), an :class:`Abstention`, or ``False`` (never uncertain;
    quality is still measured). With ``True`` an untrained package (no measured metrics in its
    sidecar, ``info()["trained"]``) gets no confidence threshold: its softmax is no confidence.
    ``prior_correction`` (tau, 0 = off): divide the calibrated probabilities by the training class
    prior to the power tau (logit adjustment), for cameras whose faces are less often neutral than
    FER+'s: it trades overall FER+ accuracy for recall of the rarer classes (README, "Class prior").
    Needs a package that records its prior (``training.class_prior``). ``flip``: also classify each
    face mirrored and average the two views' probabilities (test-time augmentation: +0.6-1.7 pt on
    FER+ valid for every shipped model, for a second inference per face; README, "Mirrored faces").
    ``classes``: answer only in these of the model's classes (``7``: the seven basic expressions,
    for applications built on 7 labels when the model also knows contempt), the softmax
    renormalised over them; default all.
    """

    def __init__(self, model: str | os.PathLike[str] = "default", backend: str = "auto", device: str | None = None,
                 detector: FaceDetector | None = None, min_face: int = 20, max_faces: int = 16,
                 smoothing: Smoothing | str | None = "window", precision: str = "auto",
                 abstain: Abstention | bool | None = True, url: str | None = None,
                 prior_correction: float = 0.0, flip: bool = False,
                 classes: Sequence[str] | int | None = None) -> None:
        if detector is not None and not isinstance(detector, FaceDetector):
            raise InvalidInputError(f"detector must have a detect(image) method, got {type(detector).__name__}")
        if min_face < 1 or max_faces < 1:
            raise InvalidInputError(f"min_face and max_faces must be >= 1, got {min_face}, {max_faces}")
        self.smoothing = Smoothing.parse(smoothing)
        if url is not None and backend != "triton":
            raise InvalidInputError(f"url= names a Triton server; pass backend='triton' with it (got backend={backend!r})")
        self.engine, self.choice = load_engine(model, backend, url or device, precision)
        self.abstain = Abstention.parse(abstain)
        if abstain is True and not self.choice.package.sidecar.metrics:
            self.abstain = Abstention(min_confidence=0.0)
        self.spec = self.engine.input_spec
        self.columns = class_columns(self.engine.classes, classes)
        self.classes = tuple(self.engine.classes[i] for i in self.columns)
        self.temperature = self.choice.package.sidecar.temperature
        self.prior_correction = float(prior_correction)
        offset = prior_offset(self.choice.package.sidecar, self.prior_correction)
        self.logit_offset = None if offset is None else offset[self.columns]
        self.flip = bool(flip)
        self.min_face, self.max_faces = min_face, max_faces
        self.detector: FaceDetector = detector or YuNetDetector(min_face=min_face, max_faces=max_faces)

    def info(self) -> dict[str, Any]:
        """Which model, backend and device run, and why that backend was chosen."""
        sidecar = self.choice.package.sidecar
        return {"fer_edge": __version__, "model_id": sidecar.model_id, "package": str(self.choice.package.sidecar_path),
                "backend": self.choice.backend, "device": self.choice.device, "reason": self.choice.reason,
                "engine": self.engine.describe(), "classes": list(self.classes), "input": sidecar.to_dict()["input"],
                "trained": bool(sidecar.metrics), "temperature": sidecar.temperature,
                "prior_correction": self.prior_correction, "flip": self.flip,
                "detector": type(self.detector).__name__}

    def __call__(self, frame: np.ndarray, rgb: bool = False) -> list[FaceResult]:
        """Faces in one frame (an empty list when there are none)."""
        return self.predict([frame], rgb=rgb)[0]

    def detect(self, frame: np.ndarray, rgb: bool = False) -> tuple[np.ndarray, list[Detection]]:
        """The frame as BGR and its faces after the ``min_face``/``max_faces`` filters."""
        image = ensure_bgr(frame, rgb)
        faces = [f for f in self.detector.detect(image) if min(f.box[2], f.box[3]) >= self.min_face]
        return image, faces[: self.max_faces]

    def predict(self, frames: Sequence[np.ndarray], rgb: bool = False) -> list[list[FaceResult]]:
        """Faces in each frame; all faces of all frames go through the engine as one batch."""
        if isinstance(frames, np.ndarray) and frames.ndim != 4:
            raise InvalidInputError("predict() takes a sequence of frames; use recognizer(frame) for one frame")
        detected = [self.detect(frame, rgb) for frame in frames]
        crops = [self._crop(image, face) for image, faces in detected for face in faces]
        quality = [self._quality(image, face) for image, faces in detected for face in faces]
        probs = self._classify(crops)
        results, start = [], 0
        for _, faces in detected:
            results.append([self._result(face, p, quality=q) for face, p, q in
                            zip(faces, probs[start:start + len(faces)], quality[start:start + len(faces)])])
            start += len(faces)
        return results

    def predict_faces(self, crops: Sequence[np.ndarray], rgb: bool = False) -> list[FaceResult]:
        """Classify face crops from your own detector (no detection or alignment; any size)."""
        if isinstance(crops, np.ndarray):
            crops = [crops]
        images = [ensure_bgr(crop, rgb) for crop in crops]
        probs = self._classify(images)
        faces = [Detection((0.0, 0.0, float(c.shape[1]), float(c.shape[0])), np.full((5, 2), np.nan), 1.0) for c in images]
        return [self._result(face, p, quality=self._quality(c, face)) for face, c, p in zip(faces, images, probs)]

    def stream(self, source: Source, rgb: bool = False, fps: float | None = None, *,
               policy: str | DetectionPolicy = "track", detect_every: int | None = None,
               margin: float | None = None, pipeline: bool = False) -> Stream:
        """Results per frame of a camera index, video file or iterable of frames, with track ids and smoothing.

        ``policy``: ``"track"`` (default) runs full-frame detection every ``detect_every`` frames
        (default 10) and when a track is lost, and in between re-detects each tracked face in the
        square around its last box grown by ``margin`` (default 0.25) of its side; ``"full"``
        detects on the whole of every frame. See :class:`DetectionPolicy`.

        ``pipeline=True`` aligns and classifies each frame's faces on a second thread while the
        next frame is read and detected: the same results, more frames per second on two or more cores,
        but each result waits for the next frame to be read. For recorded video (as
        ``fer-edge run VIDEO`` does), not for a live camera, where that wait is a frame interval.
        """
        if isinstance(policy, DetectionPolicy):
            chosen = policy
        elif isinstance(policy, str):
            chosen = DetectionPolicy(policy)
        else:
            raise InvalidInputError(f"policy must be 'track', 'full' or a DetectionPolicy, got {type(policy).__name__}")
        if detect_every is not None or margin is not None:
            chosen = DetectionPolicy(chosen.policy, chosen.detect_every if detect_every is None else detect_every,
                                     chosen.margin if margin is None else margin)
        return Stream(self, source, rgb, fps, chosen, pipeline)

    def _crop(self, image: np.ndarray, face: Detection) -> np.ndarray:
        return crop_face(image, face.box, face.landmarks, self.spec.size, self.spec.alignment)

    def _quality(self, image: np.ndarray, face: Detection) -> FaceQuality:
        """Size, sharpness, pose and score of one face (see :func:`measure_quality`)."""
        return measure_quality(image, face.box, face.landmarks, face.score, self.spec.alignment)

    def _doubts(self, quality: FaceQuality, probs: np.ndarray) -> tuple[str, ...]:
        """The abstention thresholds this face fails (none when abstention is off)."""
        return self.abstain.reasons(quality, float(probs.max())) if self.abstain is not None else ()

    def _classify(self, crops: list[np.ndarray]) -> np.ndarray:
        if not crops:
            return np.zeros((0, len(self.classes)))
        return self.classify_batch(preprocess(crops, self.spec))

    def classify_batch(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities (calibrated, prior-corrected) of a preprocessed NCHW batch; with ``flip``, the
        mean of the faces' and their mirror images', in one engine call (it chunks what exceeds its
        batch range), so that a CPU INT8 engine runs a face and its mirror in parallel shards."""
        if not self.flip:
            return self.probabilities(self.engine.infer(batch))
        probs = self.probabilities(self.engine.infer(np.concatenate([batch, batch[..., ::-1]])))
        return 0.5 * (probs[:len(batch)] + probs[len(batch):])

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """The engine's logits as the probabilities this Recognizer reports (calibrated, prior-corrected)."""
        return softmax(logits[:, self.columns], self.temperature, self.logit_offset)

    def _result(self, face: Detection, probs: np.ndarray, track_id: int | None = None,
                smoothed: np.ndarray | None = None, quality: FaceQuality | None = None,
                reasons: tuple[str, ...] | None = None) -> FaceResult:
        if reasons is None:
            reasons = self._doubts(quality, probs) if quality is not None else ()
        landmarks = None
        if face.landmarks is not None and np.isfinite(face.landmarks).all():
            landmarks = tuple((float(x), float(y)) for x, y in face.landmarks)
        return FaceResult(box=tuple(float(v) for v in face.box), label=self.classes[int(np.argmax(probs))],  # type: ignore[arg-type]
                          probabilities=dict(zip(self.classes, map(float, probs))), score=face.score,
                          landmarks=landmarks, track_id=track_id,
                          smoothed=None if smoothed is None else dict(zip(self.classes, map(float, smoothed))),
                          quality=quality, uncertain=bool(reasons), reasons=reasons)


STAGES = ("detect", "align", "preprocess", "infer", "postprocess")


@dataclass(eq=False)
class _Prepared:
    """A stream frame between detection and inference: what :meth:`Stream._finish` needs after it."""

    image: np.ndarray
    index: int
    stamp: float
    detect_pass: str
    faces: list[Detection]
    tracks: list[Track]
    seconds: dict[str, float]  # per stage (STAGES), filled as they run
    quality: list[FaceQuality] = field(default_factory=list)


class Stream:
    """Iterator of :class:`FrameResult` over a source, tracking faces and smoothing per track.

    Ask :meth:`expression` for a track's smoothed expression ("over the last second" with the
    default window) and :meth:`summary` for every track's whole-stream mean; ``frame`` is the
    latest frame (BGR), e.g. for :func:`fer_edge.recognizer.draw.annotate`. ``policy`` (a
    :class:`DetectionPolicy`) says where faces are detected; after each frame ``last_pass`` says
    what ran (``"full"``: full-frame detection, ``"region"``: re-detection around the tracked
    faces, ``"none"``: no face tracked and no full pass due), ``passes`` counts them and
    ``stage_seconds`` holds that frame's time per stage (:data:`STAGES`).

    A frame goes through three steps: :meth:`_prepare` (read, detect, assign tracks: only boxes
    are needed to follow faces into the next frame), :meth:`_infer` (align, measure quality,
    preprocess, classify) and :meth:`_finish` (abstention, smoothing, results). With ``pipeline``
    the next frame is prepared while this one's :meth:`_infer` runs on a worker thread; the tracker is then one frame ahead in
    its boxes (a track the next frame retires is gone from :meth:`expression` a frame early),
    while smoothing and :meth:`summary`'s counts are those of the frames returned.
    """

    def __init__(self, recognizer: Recognizer, source: Source, rgb: bool, fps: float | None,
                 policy: DetectionPolicy | None = None, pipeline: bool = False) -> None:
        self.recognizer, self.rgb = recognizer, rgb
        self.policy = policy or DetectionPolicy()
        self.tracker = IoUTracker(recognizer.smoothing)
        self._frames = frames_from(source, fps)
        self._index = -1
        self._time = 0.0
        self._last_full: int | None = None
        self._found: list[int] = []  # track ids of the faces found in the previous frame
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fer-edge-infer") if pipeline else None
        if self._pool is not None:  # its idle thread goes with the stream, exhausted or dropped
            weakref.finalize(self, self._pool.shutdown, wait=False)
        self._ahead: tuple[_Prepared, Future[np.ndarray]] | Exception | None = None
        self.frame = np.zeros((0, 0, 3), dtype=np.uint8)
        self.last_pass = ""
        self.passes = {"full": 0, "region": 0, "none": 0}
        self.stage_seconds: dict[str, float] = {}

    def __iter__(self) -> Iterator[FrameResult]:
        return self

    def __next__(self) -> FrameResult:
        if self._pool is None:
            prepared = self._prepare()
            return self._finish(prepared, self._infer(prepared))
        ahead = self._ahead if self._ahead is not None else self._start(self._prepare())
        self._ahead = None
        if isinstance(ahead, Exception):  # the frame after the last one returned could not be prepared
            raise ahead
        prepared, pending = ahead
        try:  # the next frame is read and detected while this one is aligned and classified
            self._ahead = self._start(self._prepare())
        except StopIteration:
            pass
        except Exception as exc:  # noqa: BLE001 - any frame's error, raised on the next call after this frame's result
            self._ahead = exc
        return self._finish(prepared, pending.result())

    def _start(self, prepared: _Prepared) -> tuple[_Prepared, Future[np.ndarray]]:
        assert self._pool is not None
        return prepared, self._pool.submit(self._infer, prepared)

    def _prepare(self) -> _Prepared:
        """Read the next frame, detect its faces and assign them to tracks: all the next frame needs."""
        frame, stamp = next(self._frames)
        self._index += 1
        start = time.perf_counter()
        image = ensure_bgr(frame, self.rgb)
        faces, track_ids, detect_pass = self._detect(image)
        tracks = self.tracker.assign([f.box for f in faces], stamp, track_ids)
        self._found = [track.track_id for track in tracks]
        seconds = {"detect": time.perf_counter() - start}
        return _Prepared(image, self._index, stamp, detect_pass, faces, tracks, seconds)

    def _infer(self, prepared: _Prepared) -> np.ndarray:
        """Align, measure, preprocess and classify the frame's faces (on the pipeline's thread, if any);
        the quality goes into ``prepared``, the probabilities are returned."""
        rec, image, seconds = self.recognizer, prepared.image, prepared.seconds
        marks = [time.perf_counter()]
        crops = [rec._crop(image, face) for face in prepared.faces]
        prepared.quality = [rec._quality(image, face) for face in prepared.faces]
        marks.append(time.perf_counter())
        batch = preprocess(crops, rec.spec) if crops else None
        marks.append(time.perf_counter())
        probs = rec.classify_batch(batch) if batch is not None else np.zeros((0, len(rec.classes)))
        marks.append(time.perf_counter())
        seconds.update({stage: end - begin for stage, begin, end in zip(STAGES[1:], marks, marks[1:])})
        return probs

    def _finish(self, prepared: _Prepared, probs: np.ndarray) -> FrameResult:
        """Abstention, smoothing and the results of a prepared frame whose probabilities are in."""
        rec = self.recognizer
        start = time.perf_counter()
        doubts = [rec._doubts(q, p) for q, p in zip(prepared.quality, probs)]
        tracked = self.tracker.observe(prepared.tracks, probs, prepared.stamp, [bool(d) for d in doubts])
        results = [rec._result(face, p, track_id, smooth if rec.smoothing else None, q, d)
                   for face, p, (track_id, smooth), q, d in zip(prepared.faces, probs, tracked, prepared.quality, doubts)]
        self.stage_seconds = {**prepared.seconds, "postprocess": time.perf_counter() - start}
        self.frame, self._time, self.last_pass = prepared.image, prepared.stamp, prepared.detect_pass
        self.passes[self.last_pass] += 1
        return FrameResult(results, prepared.index, prepared.stamp)

    def _detect(self, image: np.ndarray) -> tuple[list[Detection], list[int | None], str]:
        """This frame's faces, their track ids where re-found in a track's region, and the pass that ran."""
        rec, policy = self.recognizer, self.policy
        tracks = [self.tracker.tracks[i] for i in self._found if i in self.tracker.tracks]
        due = self._last_full is None or self._index - self._last_full >= policy.detect_every
        if policy.policy == "track" and not (due and len(tracks) < rec.max_faces):
            if not tracks:  # nobody to follow and no full pass due
                return [], [], "none"
            pays = getattr(rec.detector, "regions_pay", None)
            found = None
            if not callable(pays) or pays(image.shape, [t.box for t in tracks], policy.margin):
                found = self._redetect(image, tracks)
            if found is not None:
                return (*found, "region")
        self._last_full = self._index
        faces = rec.detect(image)[1]
        return faces, [None] * len(faces), "full"

    def _redetect(self, image: np.ndarray, tracks: list[Any]) -> tuple[list[Detection], list[int | None]] | None:
        """Each track's face re-detected around its last box, or None when one of them is lost."""
        rec = self.recognizer
        faces: list[Detection] = []
        for track in tracks:
            near = [f for f in detect_around(rec.detector, image, track.box, self.policy.margin)
                    if min(f.box[2], f.box[3]) >= rec.min_face]
            if not near:
                return None
            overlap = iou_matrix(np.asarray([f.box for f in near], dtype=np.float64), track.box[None, :])[:, 0]
            if faces:  # a face already given to another track is not this track's
                taken = iou_matrix(np.asarray([f.box for f in near], dtype=np.float64),
                                   np.asarray([f.box for f in faces], dtype=np.float64)).max(axis=1)
                overlap = np.where(taken > 0.5, 0.0, overlap)
            best = int(np.argmax(overlap))
            if overlap[best] < self.tracker.iou_threshold:
                return None
            faces.append(near[best])
        return faces, [track.track_id for track in tracks]

    def expression(self, track_id: int) -> dict[str, float] | None:
        """Smoothed probabilities of a live track as of the latest frame, or None if it is gone."""
        probs = self.tracker.expression(track_id, self._time)
        return None if probs is None else dict(zip(self.recognizer.classes, map(float, probs)))

    def summary(self) -> list[dict[str, Any]]:
        """Per track (live and recently retired): frames seen and answered (not uncertain), time span, and
        the mean probabilities of the answered frames."""
        classes = self.recognizer.classes
        out = []
        for track in [*self.tracker.retired, *self.tracker.tracks.values()]:
            mean = track.total / max(track.answered, 1) if track.total is not None else np.zeros(len(classes))
            out.append({"track_id": track.track_id, "frames": track.frames, "answered": track.answered,
                        "first_seen": track.first_seen,
                        "last_seen": track.last_seen, "label": classes[int(np.argmax(mean))],
                        "probabilities": dict(zip(classes, map(float, mean)))})
        return out
