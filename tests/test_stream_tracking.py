"""Tracking-driven detection in streams, on synthetic videos built from real photos (real YuNet, ONNX Runtime).

The clips come from ``fer_edge.bench.video``: the astronaut panned and zoomed over a seeded
background, and skimage's cameraman entering and leaving. The reference is the same stream with
full-frame detection on every frame (``policy="full"``).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from fer_edge import Recognizer
from fer_edge.bench.video import SecondFace, astronaut_head, background, moving_face_video
from fer_edge.cli import main
from fer_edge.engines.resolve import DEFAULT_DIR
from fer_edge.errors import InvalidInputError
from fer_edge.recognizer import DetectionPolicy
from fer_edge.recognizer.sources import read_image
from fer_edge.recognizer.tracking import iou_matrix
from fer_edge.vision.detector import Detection, YuNetDetector, detect_around

REPO = Path(__file__).resolve().parents[1]
EVERY = 10


@pytest.fixture(scope="module")
def rec() -> Recognizer:
    if not (DEFAULT_DIR / "fer_default.json").is_file():
        pytest.skip(f"the default package is not in {DEFAULT_DIR}")
    return Recognizer()  # the shipped default: INT8 on ONNX Runtime CPU


@pytest.fixture(scope="module")
def head() -> np.ndarray:
    return astronaut_head(read_image(REPO / "examples" / "astronaut.jpg"))


@pytest.fixture(scope="module")
def cameraman() -> np.ndarray:
    return np.ascontiguousarray(data.camera()[40:300, 120:340])


def run(rec: Recognizer, frames: list[np.ndarray], **options: object) -> tuple[list, list[str]]:  # type: ignore[type-arg]
    stream = rec.stream(frames, fps=30, **options)  # type: ignore[arg-type]
    out, passes = [], []
    for result in stream:
        out.append(result)
        passes.append(stream.last_pass)
    return out, passes


def match(face, faces):  # type: ignore[no-untyped-def]
    """The face of ``faces`` at the same place as ``face`` (IoU >= 0.5), or None."""
    if not faces:
        return None
    iou = iou_matrix(np.array([face.box]), np.array([f.box for f in faces]))[0]
    return faces[int(np.argmax(iou))] if iou.max() >= 0.5 else None


def test_one_moving_face_same_labels_as_full_frame_detection(rec: Recognizer, head: np.ndarray) -> None:
    frames = list(moving_face_video(head, 300, seed=0))
    full, _ = run(rec, frames, policy="full")
    tracked, passes = run(rec, frames, detect_every=EVERY)
    assert all(len(r.faces) == 1 for r in full)
    same = sum(len(b.faces) == 1 and match(a.faces[0], b.faces) is not None and a.faces[0].label == b.faces[0].label
               for a, b in zip(full, tracked))
    assert same >= 0.99 * len(frames), f"same label on {same}/{len(frames)} frames"
    assert passes.count("full") <= len(frames) // EVERY + 3  # the periodic passes (and rare re-finds)
    assert {f.track_id for r in tracked for f in r.faces} == {1}  # one face, one track throughout
    shift = [np.abs(np.subtract(a.faces[0].landmarks, b.faces[0].landmarks)).max() for a, b in zip(full, tracked)]
    assert np.median(shift) < 3.0  # frame pixels; the face is ~80-110 px wide: real detections, not extrapolated


def test_face_that_enters_is_found_within_n_frames_and_leaving_triggers_full_detection(
        rec: Recognizer, head: np.ndarray, cameraman: np.ndarray) -> None:
    second = SecondFace(cameraman, enter=0.3, leave=0.6)
    frames = list(moving_face_video(head, 200, seed=1, second=second))
    full, _ = run(rec, frames, policy="full")
    tracked, passes = run(rec, frames, detect_every=EVERY)
    counts_full = [len(r.faces) for r in full]
    counts = [len(r.faces) for r in tracked]
    entered = counts_full.index(2)
    assert 2 in counts[entered:entered + EVERY], "the entering face was not found within N frames"
    gone = len(counts) - 1 - counts[::-1].index(2) + 1  # first frame after the last with two faces
    assert passes[gone] == "full"  # the second face's region came up empty: full pass on that frame
    assert counts_full[gone:] == counts[gone:] == [1] * (len(frames) - gone)
    # the astronaut keeps its track through the entry and exit; labels agree on the faces both report
    assert len({f.track_id for r in tracked for f in r.faces if f.box[0] < 400}) == 1
    both = [(a, match(a, b.faces)) for ra, b in zip(full, tracked) for a in ra.faces]
    found = [(a, b) for a, b in both if b is not None]
    assert len(found) >= len(both) - EVERY
    astronaut = [(a, b) for a, b in found if a.box[0] < 400]
    assert sum(a.label == b.label for a, b in astronaut) >= 0.99 * len(astronaut)
    # the cameraman is a neutral/sad toss-up (full-frame detection flips between them too), so for all faces
    # compare the probabilities: the region's crop is about the full-frame pass's crop
    gap = [max(abs(a.probabilities[k] - b.probabilities[k]) for k in a.probabilities) for a, b in found]
    assert np.median(gap) < 0.05 and np.percentile(gap, 90) < 0.25, (np.median(gap), np.percentile(gap, 90))


def test_lost_track_triggers_full_detection_on_that_frame(rec: Recognizer, head: np.ndarray) -> None:
    back = background((480, 640), seed=2)
    left, right = back.copy(), back.copy()
    small = cv2.resize(head, (200, 230))
    left[100:330, 40:240] = small
    right[100:330, 400:600] = small
    frames = [left] * 4 + [right] * 3 + [back] * 12 + [left]
    out, passes = run(rec, frames, detect_every=EVERY)
    assert passes[:4] == ["full", "region", "region", "region"]
    assert passes[4] == "full" and len(out[4].faces) == 1 and out[4].faces[0].box[0] > 380  # jumped: re-found now
    assert passes[7] == "full" and out[7].faces == []  # gone: its region is empty, the full pass finds nothing
    assert passes[8:17] == ["none"] * 9  # nobody tracked: the next full pass is N frames after the last
    assert passes[17] == "full" and passes[18:] == ["none", "none"]
    assert len(out[19].faces) == 0
    assert rec.stream(frames, fps=30).policy == DetectionPolicy()


def test_full_policy_and_free_slots(rec: Recognizer, head: np.ndarray) -> None:
    frames = list(itertools.islice(moving_face_video(head, 300, seed=3), 40))  # 30 fps motion
    _, passes = run(rec, frames, policy="full")
    assert passes == ["full"] * 40
    _, passes = run(rec, frames, detect_every=1)
    assert passes == ["full"] * 40  # N = 1: every frame is due
    one = Recognizer(max_faces=1)
    _, passes = run(one, frames, detect_every=5)
    assert passes[0] == "full" and passes[1:].count("full") <= 2  # no slot free: periodic passes are skipped


def test_pipelined_stream_gives_the_sequential_results(rec: Recognizer, head: np.ndarray,
                                                       cameraman: np.ndarray) -> None:
    """Alignment and inference on a worker thread while the next frame is detected change nothing a user sees:
    a second face entering and leaving (full passes, regions, a lost track) gives the same faces,
    labels, probabilities, track ids, smoothing, passes and per-track summary."""
    frames = list(moving_face_video(head, 60, seed=1, second=SecondFace(cameraman, enter=0.3, leave=0.6)))
    frames.insert(40, np.zeros((4, 4), dtype=np.float64))  # not an image: its error comes in its turn
    results = {}
    for pipeline in (False, True):
        stream = rec.stream(frames, fps=30, detect_every=EVERY, pipeline=pipeline)
        out: list[tuple[object, ...]] = []
        for _ in range(len(frames)):
            try:
                result = next(stream)
            except InvalidInputError as exc:
                out.append(("error", str(exc)))
                continue
            out.append((result.to_dict(), stream.last_pass, stream.frame.shape, sorted(stream.stage_seconds),
                        stream.expression(result.faces[0].track_id) if result.faces else None))
        with pytest.raises(StopIteration):
            next(stream)
        results[pipeline] = out, stream.summary(), stream.passes
    sequential, pipelined = results[False], results[True]
    assert pipelined == sequential
    frames_out, summary, passes = sequential
    assert frames_out[40][0] == "error" and len(frames_out) == len(frames)
    assert passes["full"] and passes["region"] and len(summary) >= 2  # both passes ran; both faces tracked


@pytest.mark.parametrize("options, words", [
    ({"policy": "sometimes"}, "policy must be one of"),
    ({"policy": 3}, "policy must be"),
    ({"detect_every": 0}, "detect_every must be an integer >= 1"),
    ({"detect_every": 2.5}, "detect_every must be an integer"),
    ({"detect_every": True}, "detect_every"),
    ({"margin": -0.1}, "margin must be a number in"),
    ({"margin": 5}, "margin"),
    ({"margin": "0.2"}, "margin"),
])
def test_stream_options_are_validated(rec: Recognizer, options: dict, words: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(InvalidInputError, match=words):
        rec.stream([], **options)


def test_policy_object_and_overrides(rec: Recognizer) -> None:
    policy = DetectionPolicy("track", 4, 0.5)
    assert rec.stream([], policy=policy).policy == policy
    assert rec.stream([], policy=policy, margin=0.1).policy == DetectionPolicy("track", 4, 0.1)
    assert DetectionPolicy(detect_every=np.int64(3)).detect_every == 3
    with pytest.raises(InvalidInputError):
        DetectionPolicy("full", 0)


def test_detect_around_matches_full_frame_and_works_for_any_detector(head: np.ndarray) -> None:
    frame = next(iter(moving_face_video(head, 10, seed=4)))
    yunet = YuNetDetector()
    (face,) = yunet.detect(frame)
    (near,) = yunet.detect_around(frame, face.box, 0.25)
    eyes = np.linalg.norm(face.landmarks[0] - face.landmarks[1])
    assert np.abs(near.landmarks - face.landmarks).max() < 0.15 * eyes
    assert iou_matrix(np.array([face.box]), np.array([near.box]))[0, 0] > 0.8
    assert yunet.detect_around(frame, (5, 5, 30, 30), 0.25) == []  # a corner without a face
    assert detect_around(yunet, frame, face.box, 0.25)[0].box == near.box  # dispatches to YuNet's own
    assert yunet.regions_pay(frame.shape, [face.box], 0.25)  # one face: a fraction of the full pass
    big = [(x, y, 220, 290) for x in (100, 800) for y in (50, 400)]  # four large faces at 1280x720
    assert not yunet.regions_pay((720, 1280, 3), big, 0.25)  # their regions cost more than the whole frame

    class Plain:  # a detector of the user's own, without detect_around: given the crop at full resolution
        def __init__(self) -> None:
            self.shapes: list[tuple[int, ...]] = []

        def detect(self, image: np.ndarray) -> list[Detection]:
            self.shapes.append(image.shape)
            return yunet.detect(image)

    plain = Plain()
    (crop_face,) = detect_around(plain, frame, face.box, 0.5)
    side = max(face.box[2], face.box[3]) * 2
    assert plain.shapes[0][0] <= side + 2 and plain.shapes[0][1] <= side + 2
    assert iou_matrix(np.array([face.box]), np.array([crop_face.box]))[0, 0] > 0.7  # shifted back to the frame


def test_cli_video_with_stream_options(tmp_path: Path, head: np.ndarray, capsys: pytest.CaptureFixture[str]) -> None:
    if not (DEFAULT_DIR / "fer_default.json").is_file():
        pytest.skip(f"the default package is not in {DEFAULT_DIR}")
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30, (640, 480))
    for frame in moving_face_video(head, 12, seed=5):
        writer.write(frame)
    writer.release()
    assert main(["run", str(video), "--json", "--quiet", "--detect-every", "5", "--margin", "0.3"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 12 and all(len(doc["faces"]) == 1 for doc in lines)
    assert main(["run", str(video), "--quiet", "--detect-policy", "full"]) == 0
    assert "track 1: happy" in capsys.readouterr().out
    assert main(["run", str(video), "--quiet", "--detect-every", "0"]) == 1
    assert "detect_every must be an integer >= 1" in capsys.readouterr().err
