"""Face quality and "uncertain": measured fields, head pose, thresholds, JSON /2, and streams whose
smoothed label does not move on uncertain frames. Real YuNet, real ONNX Runtime, real photos."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data
from tiny_package import make_package

from fer_edge import Recognizer
from fer_edge.errors import InvalidInputError
from fer_edge.recognizer import RESULT_SCHEMA, FrameResult
from fer_edge.recognizer.abstain import UNCERTAIN, Abstention
from fer_edge.recognizer.tracking import IoUTracker, Smoothing
from fer_edge.vision.align import template
from fer_edge.vision.detector import Detection
from fer_edge.vision.quality import head_pose, sharpness


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return make_package(tmp_path_factory.mktemp("pkg"), max_batch=4)


def blurred(image: np.ndarray, sigma: float = 5.0) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), sigma)


def test_quality_fields_are_measured_on_a_real_face(package, astronaut: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    rec = Recognizer(package.sidecar_path, abstain=False)
    face = rec(astronaut)[0]
    q = face.quality
    assert q is not None and not face.uncertain and face.reasons == ()
    assert q.face_px == pytest.approx(min(face.box[2:]))
    assert q.score == pytest.approx(face.score) and 0.5 < q.score <= 1
    assert q.yaw is not None and q.pitch is not None and abs(q.yaw) < 15 and abs(q.pitch) < 15  # a frontal portrait
    soft = rec(blurred(astronaut))[0].quality
    assert soft is not None and soft.sharpness < q.sharpness / 10, (soft.sharpness, q.sharpness)
    crop = rec.predict_faces([astronaut[60:180, 170:290]])[0].quality
    assert crop is not None and crop.yaw is None and crop.pitch is None and crop.face_px == 120


class BoxOnly:
    """A detector that gives a box and no landmarks (as many third-party ones do)."""

    def detect(self, image: np.ndarray) -> list[Detection]:
        return [Detection((170.0, 60.0, 120.0, 120.0), np.full((5, 2), np.nan), 0.9)]


def test_box_only_faces_are_measured_on_the_face_not_the_frame(package, astronaut: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    frame = astronaut.copy()
    frame[60:180, 170:290] = blurred(astronaut[60:180, 170:290], 4.0)  # a sharp frame, a blurred face
    q = Recognizer(package.sidecar_path, detector=BoxOnly(), abstain=False)(frame)[0].quality
    assert q is not None and q.yaw is None and q.face_px == 120 and q.score == pytest.approx(0.9)
    assert q.sharpness < 0.1 * sharpness(astronaut[60:180, 170:290]) and q.sharpness < 0.1 * sharpness(frame)


def rotated(points: np.ndarray, yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Weak-perspective projection of the generic head behind head_pose, rotated (degrees)."""
    t = template("fer2013")
    head = np.c_[(t - t[:2].mean(axis=0)) * 300 / (t[1, 0] - t[0, 0]), [0, 0, 135, 0, 0]]
    y, p, r = map(math.radians, (yaw, pitch, roll))
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return (rz @ rx @ ry @ head.T).T[:, :2] + points


@pytest.mark.parametrize(("yaw", "pitch"), [(0, 0), (25, 0), (-40, 0), (0, 20), (0, -20)])
def test_head_pose_from_five_landmarks(yaw: float, pitch: float) -> None:
    for roll in (0, 30):  # alignment undoes roll, so pose ignores it
        est_yaw, est_pitch = head_pose(rotated(np.array([200.0, 200.0]), yaw, pitch, roll))
        assert est_yaw == pytest.approx(yaw, abs=2) and est_pitch == pytest.approx(pitch, abs=2.5)
    assert head_pose(np.zeros((5, 2))) == (90.0, 90.0)  # degenerate landmarks cannot be read


def test_sharpness_is_size_independent_and_falls_with_blur(astronaut: np.ndarray) -> None:
    face = astronaut[60:180, 170:290]
    assert sharpness(face) > 5 * sharpness(blurred(face, 3.0))
    assert sharpness(cv2.resize(face, (64, 64), interpolation=cv2.INTER_AREA)) == pytest.approx(sharpness(face), rel=0.01)


def test_thresholds_make_faces_uncertain_and_are_validated(package, astronaut: np.ndarray,  # type: ignore[no-untyped-def]
                                                            tmp_path: Path) -> None:
    sharp = Recognizer(package.sidecar_path, abstain=False)(astronaut)[0].quality
    assert sharp is not None
    strict = Recognizer(package.sidecar_path, abstain=Abstention(min_sharpness=sharp.sharpness / 2,
                                                                 min_confidence=0.0))
    assert not strict(astronaut)[0].uncertain
    face = strict(blurred(astronaut))[0]
    assert face.uncertain and face.reasons == ("sharpness",) and face.output_label == UNCERTAIN
    assert face.label in face.probabilities and abs(sum(face.probabilities.values()) - 1) < 1e-6  # still given
    big = Recognizer(package.sidecar_path, abstain=Abstention(min_face_px=500, min_confidence=1.0))(astronaut)[0]
    assert big.reasons == ("face_px", "confidence")
    untrained = Recognizer(package.sidecar_path)  # abstain=True: an untrained softmax is no confidence
    assert untrained.abstain == Abstention(min_confidence=0.0) and not untrained(astronaut)[0].uncertain
    measured = make_package(tmp_path, metrics={"ferplus/val": 0.9})  # the same network, "trained"
    assert Recognizer(measured.sidecar_path).abstain == Abstention()
    assert Recognizer("default", abstain=Abstention())(astronaut)[0].output_label == "happy"  # the shipped default
    for bad in ({"min_sharpness": -1}, {"min_confidence": 1.5}, {"max_yaw": float("nan")}, {"min_score": True}):
        with pytest.raises(InvalidInputError):
            Abstention(**bad)
    with pytest.raises(InvalidInputError):
        Recognizer(package.sidecar_path, abstain="strict")  # type: ignore[arg-type]


def test_json_schema_2_carries_quality_and_uncertain(package, astronaut: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    rec = Recognizer(package.sidecar_path, abstain=Abstention(min_face_px=500, min_confidence=0.0))
    doc = json.loads(FrameResult(rec(astronaut), source="astronaut").to_json())
    assert doc["schema"] == RESULT_SCHEMA == "fer_edge.result/2"
    face = doc["faces"][0]
    assert set(face) >= {"box", "score", "label", "probabilities", "landmarks", "quality", "uncertain",
                         "uncertain_reasons"}  # every /1 key is still there
    assert face["label"] == "uncertain" and face["uncertain"] is True and face["uncertain_reasons"] == ["face_px"]
    assert set(face["quality"]) == {"face_px", "sharpness", "yaw", "pitch", "score"}
    assert all(isinstance(v, float) for v in face["quality"].values())


def test_uncertain_frames_do_not_move_the_smoothed_label() -> None:
    tracker = IoUTracker(Smoothing("window", seconds=10.0))
    box = [[10.0, 10.0, 50.0, 50.0]]
    happy, sad = np.eye(7)[[1]], np.eye(7)[[2]]
    for t in range(3):
        (_, smooth), = tracker.update(box, happy, t / 10)
    for t in range(3, 9):  # six uncertain "sad" frames: the smoothed state stays happy
        (_, doubted), = tracker.update(box, sad, t / 10, uncertain=[True])
        assert doubted is not None and np.array_equal(doubted, smooth)
    (_, moved), = tracker.update(box, sad, 0.9)
    assert moved is not None and moved[2] > 0  # an answered frame moves it
    first = IoUTracker(Smoothing("ema"))
    (_, none), = first.update(box, sad, 0.0, uncertain=[True])
    assert none is None  # no answered frame yet: nothing to show


def test_stream_keeps_the_smoothed_label_through_blurred_frames(package, astronaut: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    sharp = Recognizer(package.sidecar_path, abstain=False)(astronaut)[0].quality
    assert sharp is not None
    frames = [astronaut, astronaut, blurred(astronaut, 4.0), blurred(astronaut, 6.0), astronaut]
    gate = Abstention(min_sharpness=sharp.sharpness / 2, min_confidence=0.0)
    results = [r.faces[0] for r in Recognizer(package.sidecar_path, abstain=gate).stream(frames, fps=10)]
    assert [f.uncertain for f in results] == [False, False, True, True, False]
    assert results[2].smoothed == results[1].smoothed == results[3].smoothed
    assert results[2].to_dict()["smoothed_label"] == results[1].smoothed_label
    plain = [r.faces[0] for r in Recognizer(package.sidecar_path, abstain=False).stream(frames, fps=10)]
    assert plain[2].smoothed != plain[1].smoothed  # without the gate the blurred frames would move it


def test_run_command_thresholds(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    from fer_edge.cli import main

    image = tmp_path / "astronaut.png"
    cv2.imwrite(str(image), data.astronaut()[:, :, ::-1])
    assert main(["run", str(image), "--json", "--min-face-px", "500"]) == 0
    face = json.loads(capsys.readouterr().out)["faces"][0]
    assert face["label"] == "uncertain" and face["uncertain_reasons"] == ["face_px"]
    assert main(["run", str(image), "--json", "--min-face-px", "500", "--no-abstain"]) == 0
    assert json.loads(capsys.readouterr().out)["faces"][0]["label"] == "happy"
    assert main(["run", str(image), "--min-confidence", "2"]) == 1  # a typed error, before the model loads
