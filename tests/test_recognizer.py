"""Recognizer end to end on real photos: resolution, batching, bad input, threads, streams, memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data
from tiny_package import make_package

from fer_edge import Recognizer
from fer_edge.engines import resolve
from fer_edge.engines.resolve import DEFAULT_DIR
from fer_edge.errors import BackendUnavailableError, ImageReadError, InvalidInputError, ModelNotFoundError
from fer_edge.recognizer import RESULT_SCHEMA, Smoothing
from fer_edge.recognizer.tracking import IoUTracker

EYES = np.array([[204.0, 102.0], [246.0, 102.0]])  # hand-read from the astronaut, +-6 px
MOUTH = np.array([[204.0, 144.0], [240.0, 143.0]])
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return make_package(tmp_path_factory.mktemp("pkg"), max_batch=4)


@pytest.fixture(scope="module")
def rec(package) -> Recognizer:  # type: ignore[no-untyped-def]
    return Recognizer(package.sidecar_path)


def test_astronaut_end_to_end(rec: Recognizer, astronaut: np.ndarray) -> None:
    faces = rec(astronaut)
    assert len(faces) == 1
    face = faces[0]
    marks = np.array(face.landmarks)
    assert np.abs(marks[:2] - EYES).max() < 8 and np.abs(marks[3:] - MOUTH).max() < 8
    assert abs(sum(face.probabilities.values()) - 1) < 1e-6
    assert face.label == max(face.probabilities, key=face.probabilities.__getitem__)
    assert list(face.probabilities) == list(rec.classes)
    info = rec.info()
    assert info["backend"] == "onnxruntime" and "TensorRT" in info["reason"] and info["trained"] is False


def test_rgb_flag_gray_and_alpha_frames_give_the_same_face(rec: Recognizer, astronaut: np.ndarray) -> None:
    base = rec(astronaut)[0]
    assert np.allclose(rec(astronaut[:, :, ::-1].copy(), rgb=True)[0].box, base.box)
    bgra = cv2.cvtColor(astronaut, cv2.COLOR_BGR2BGRA)
    assert rec(bgra)[0].probabilities == pytest.approx(base.probabilities, abs=1e-6)
    gray = cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY)
    gray_faces = rec(gray)
    assert len(gray_faces) == 1  # the tiny model reads gray; its probabilities stay close
    assert gray_faces[0].probabilities == pytest.approx(base.probabilities, abs=0.02)


@pytest.mark.parametrize("bad", [None, "image.png", np.zeros((64, 64, 3), np.float32), np.zeros((0, 0, 3), np.uint8),
                                 np.zeros((64, 64, 7), np.uint8), np.zeros(10, np.uint8)])
def test_bad_frames_are_typed_errors(rec: Recognizer, bad: object) -> None:
    with pytest.raises(InvalidInputError):
        rec(bad)  # type: ignore[arg-type]


def test_no_face_is_an_empty_result(rec: Recognizer) -> None:
    assert rec(np.full((240, 320, 3), 127, np.uint8)) == []
    assert rec.predict([]) == []


def test_gigantic_frame(rec: Recognizer, astronaut: np.ndarray) -> None:
    canvas = np.full((6000, 8000, 3), 90, np.uint8)
    canvas[1000:3048, 3000:5048] = cv2.resize(astronaut, (2048, 2048), interpolation=cv2.INTER_CUBIC)
    faces = rec(canvas)
    assert len(faces) == 1
    assert np.abs(np.array(faces[0].landmarks)[:2] - (EYES * 4 + [3000, 1000])).max() < 40


def test_predict_batches_all_faces_and_matches_single_calls(rec: Recognizer, astronaut: np.ndarray) -> None:
    pair = np.hstack([astronaut, astronaut[:, ::-1]])
    frames = [astronaut, pair, np.full((100, 100, 3), 0, np.uint8), pair]  # 5 faces > max_batch 4
    batched = rec.predict(frames)
    assert [len(r) for r in batched] == [1, 2, 0, 2]
    for frame, faces in zip(frames, batched):
        for a, b in zip(faces, rec(frame)):
            assert a.box == b.box and a.probabilities == pytest.approx(b.probabilities, abs=1e-5)


def test_predict_faces_on_crops(rec: Recognizer, astronaut: np.ndarray) -> None:
    crops = [astronaut[60:180, 170:280], cv2.cvtColor(astronaut[60:180, 170:280], cv2.COLOR_BGR2GRAY)]
    results = rec.predict_faces(crops)
    assert len(results) == 2 and results[0].box == (0.0, 0.0, 110.0, 120.0) and results[0].landmarks is None
    with pytest.raises(InvalidInputError):
        rec.predict_faces([np.zeros((4, 4), np.float64)])


def test_results_are_json_with_a_schema(rec: Recognizer, astronaut: np.ndarray) -> None:
    stream = rec.stream([astronaut, astronaut], fps=10)
    doc = json.loads(next(iter(stream)).to_json())
    assert doc["schema"] == RESULT_SCHEMA and doc["frame_index"] == 0 and doc["timestamp"] == 0
    face = doc["faces"][0]
    assert set(face) >= {"box", "score", "label", "probabilities", "landmarks", "track_id", "smoothed"}
    assert len(face["landmarks"]) == 5


def test_eight_threads_equal_sequential(rec: Recognizer, astronaut: np.ndarray) -> None:
    frames = [np.ascontiguousarray(np.roll(astronaut, 7 * i, axis=1)) for i in range(8)]
    sequential = [rec(f) for f in frames]
    results: list[object] = [None] * 8
    barrier = threading.Barrier(8)

    def work(i: int) -> None:
        barrier.wait()
        for _ in range(3):
            results[i] = rec(frames[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, sequential):
        assert got == want


def test_stream_tracks_and_smooths(rec: Recognizer, astronaut: np.ndarray) -> None:
    pair = np.hstack([astronaut, astronaut[:, ::-1]])
    frames = [pair] * 5 + [np.zeros_like(pair)] * 10 + [pair] * 2  # faces vanish for 1 s, then return
    stream = rec.stream(frames, fps=10)
    out = list(stream)
    assert [r.frame_index for r in out] == list(range(17))
    assert out[16].timestamp == pytest.approx(1.6)
    first = sorted(f.track_id for f in out[0].faces)
    assert first == [1, 2] and all(sorted(f.track_id for f in r.faces) == first for r in out[:5])
    assert sorted(f.track_id for f in out[15].faces) == [3, 4]  # gone longer than max_age: new tracks
    assert stream.expression(3) == pytest.approx(out[16].faces[0].smoothed) or stream.expression(4) is not None
    assert stream.expression(1) is None
    summary = {s["track_id"]: s for s in stream.summary()}
    assert summary[1]["frames"] == 5 and summary[3]["frames"] == 2


def test_window_and_ema_smoothing() -> None:
    happy, sad = np.array([[0.0, 1.0, 0.0]]), np.array([[0.0, 0.0, 1.0]])
    box = [[10, 10, 50, 50]]
    window = IoUTracker(Smoothing("window", seconds=1.0))
    for i in range(10):
        window.update(box, happy, i * 0.1)
    (_, smoothed), = window.update(box, sad, 1.0)  # window (0, 1]: 9 happy + 1 sad
    assert smoothed == pytest.approx([0, 0.9, 0.1])
    ema = IoUTracker(Smoothing("ema", alpha=0.5))
    ema.update(box, happy, 0.0)
    (_, smoothed), = ema.update([[12, 10, 50, 50]], sad, 0.1)  # moved 2 px: same track
    assert smoothed == pytest.approx([0, 0.5, 0.5])
    with pytest.raises(InvalidInputError):
        Smoothing("median")


def test_stream_from_video_file_and_bad_sources(rec: Recognizer, astronaut: np.ndarray, tmp_path: Path) -> None:
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (512, 512))
    for i in range(6):
        writer.write(np.roll(astronaut, 3 * i, axis=1))
    writer.release()
    out = list(rec.stream(video))
    assert len(out) == 6 and all(len(r.faces) == 1 for r in out)
    assert [r.timestamp for r in out] == pytest.approx([i / 10 for i in range(6)], abs=1e-3)
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "junk.mp4").write_bytes(os.urandom(2000))
    for bad in (tmp_path / "empty.mp4", tmp_path / "junk.mp4", tmp_path / "missing.mp4"):
        with pytest.raises(ImageReadError):
            list(rec.stream(bad))
    with pytest.raises(InvalidInputError):
        rec.stream(3.5)  # type: ignore[arg-type]


def test_model_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FER_EDGE_HOME", str(tmp_path))
    assert Path(Recognizer("simam_resnet").info()["engine"]["file"]).parent == DEFAULT_DIR  # shipped
    monkeypatch.setattr(resolve, "DEFAULT_DIR", tmp_path / "no_shipped_models")
    with pytest.raises(ModelNotFoundError, match="fer-edge build --model simam_resnet"):
        Recognizer("simam_resnet")
    cache = tmp_path / "packages"
    cache.mkdir()
    make_package(cache, stem="tiny")
    make_package(cache, stem="tiny_int8", precision="int8", seed=1)
    assert Recognizer("tiny").info()["engine"]["precision"] == "int8"  # CPU: the INT8 twin is faster
    assert Recognizer("tiny", precision="fp32").info()["engine"]["file"].endswith("tiny.onnx")
    with pytest.raises(BackendUnavailableError, match="TensorRT"):
        Recognizer("tiny", backend="tensorrt")
    with pytest.raises(BackendUnavailableError, match="backend must be"):
        Recognizer("tiny", backend="openvino")
    with pytest.raises(ModelNotFoundError):
        Recognizer("ti")  # a prefix of an id is not the id


def test_default_model(astronaut: np.ndarray) -> None:
    """The embedded default labels the (smiling) astronaut happy once it is trained."""
    if not (DEFAULT_DIR / "fer_default.json").is_file():
        pytest.skip(f"the default package is not in {DEFAULT_DIR} yet (the lead is training it)")
    rec = Recognizer()
    faces = rec(astronaut)
    assert len(faces) == 1
    if not rec.info()["trained"]:
        pytest.skip("fer_default.json is an untrained interim package (its sidecar has no metrics)")
    assert faces[0].label == "happy"


def test_runtime_imports_without_torch(package) -> None:  # type: ignore[no-untyped-def]
    """`import fer_edge` and a Recognizer on ONNX Runtime work with torch and TensorRT made unimportable."""
    code = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'tensorrt'):
            raise ImportError('blocked ' + name)
sys.meta_path.insert(0, Block())
import numpy as np
from skimage import data
from fer_edge import Recognizer
rec = Recognizer({str(package.sidecar_path)!r})
assert len(rec(data.astronaut(), rgb=True)) == 1
assert 'torch' not in sys.modules and 'tensorrt' not in sys.modules
print('ok')
"""
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]


@pytest.mark.parametrize("frames_total", [2_000, pytest.param(10_000, marks=pytest.mark.slow)])
def test_long_stream_runs_in_flat_memory(package, frames_total: int) -> None:  # type: ignore[no-untyped-def]
    """A stream with a face in every frame: resident memory after warm-up stays flat.

    Measured in a fresh process: the pytest process's RSS moves with what earlier tests left for
    the garbage collector, which is not the stream's doing. The default run streams 2k frames
    (~10 s); ``-m slow`` runs the full 10k (~20-60 s on 2 cores).
    """
    pytest.importorskip("psutil")
    code = f"""
import cv2, numpy as np, psutil
from skimage import data
from fer_edge import Recognizer
rec = Recognizer({str(package.sidecar_path)!r})
small = cv2.resize(data.astronaut()[30:210, 140:320, ::-1], (72, 72), interpolation=cv2.INTER_AREA)  # face ~40 px
stream = rec.stream((np.roll(small, i % 5, axis=1) for i in range({frames_total})), fps=30)
process, found, warm = psutil.Process(), 0, {frames_total // 10}
for result in stream:
    found += len(result.faces)
    if result.frame_index == warm:
        baseline = process.memory_info().rss
print(found, (process.memory_info().rss - baseline) / 2**20, len(stream.tracker.tracks))
"""
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    found, growth, tracks = result.stdout.split()
    assert int(found) > 0.9 * frames_total
    assert float(growth) < 5, f"RSS grew {float(growth):.1f} MiB over {frames_total * 9 // 10} frames"
    assert int(tracks) <= 2


def test_the_sidecar_temperature_calibrates_every_probability(package, astronaut: np.ndarray,  # type: ignore[no-untyped-def]
                                                              tmp_path: Path) -> None:
    """Engines return logits; the Recognizer's softmax divides them by the package's temperature,
    in single frames and in streams alike, without changing the label."""
    import shutil

    from fer_edge.package import load_package, write_package
    from fer_edge.recognizer.recognizer import softmax

    sidecar = load_package(package.sidecar_path).sidecar
    shutil.copy(package.model_path, tmp_path / package.model_path.name)
    sidecar.temperature = 0.5
    hot = Recognizer(write_package(tmp_path / package.model_path.name, sidecar).sidecar_path)
    cold = Recognizer(package.sidecar_path)
    assert hot.info()["temperature"] == 0.5 and cold.info()["temperature"] == 1.0
    face_hot, face_cold = hot(astronaut)[0], cold(astronaut)[0]
    logits = np.log(np.array([list(face_cold.probabilities.values())]))  # T=1 probabilities, up to a constant
    np.testing.assert_allclose(list(face_hot.probabilities.values()), softmax(logits, 0.5)[0], atol=1e-6)
    assert face_hot.label == face_cold.label and max(face_hot.probabilities.values()) > max(face_cold.probabilities.values())
    streamed = next(iter(hot.stream([astronaut], fps=30))).faces[0]
    np.testing.assert_allclose(list(streamed.probabilities.values()), list(face_hot.probabilities.values()), atol=1e-6)


def _with_training(package, folder: Path, training: dict) -> Path:  # type: ignore[no-untyped-def]
    """A copy of ``package`` whose sidecar's training record is ``training``."""
    import shutil

    from fer_edge.package import load_package, write_package

    sidecar = load_package(package.sidecar_path).sidecar
    shutil.copy(package.model_path, folder / package.model_path.name)
    sidecar.training = training
    sidecar.temperature = 0.8
    return write_package(folder / package.model_path.name, sidecar).sidecar_path


def test_prior_correction_divides_the_training_prior_out(package, astronaut: np.ndarray,  # type: ignore[no-untyped-def]
                                                         tmp_path: Path) -> None:
    """With tau, every probability is the calibrated one divided by prior**tau, renormalised: the
    log-ratio to the uncorrected probabilities plus tau*log(prior) is the same for every class."""
    prior = np.array([0.33, 0.26, 0.15, 0.12, 0.04, 0.02, 0.08])
    path = _with_training(package, tmp_path, {"class_prior": list(prior / prior.sum())})
    plain, corrected = Recognizer(path), Recognizer(path, prior_correction=0.75)
    assert corrected.info()["prior_correction"] == 0.75 and plain.info()["prior_correction"] == 0.0
    p0 = np.array(list(plain(astronaut)[0].probabilities.values()))
    p1 = np.array(list(corrected(astronaut)[0].probabilities.values()))
    residual = np.log(p1 / p0) + 0.75 * np.log(prior / prior.sum())
    np.testing.assert_allclose(residual, residual[0], atol=1e-6)
    assert not np.allclose(p0, p1, atol=1e-3)
    streamed = next(iter(corrected.stream([astronaut], fps=30))).faces[0]
    np.testing.assert_allclose(list(streamed.probabilities.values()), p1, atol=1e-6)


@pytest.mark.parametrize("training, error", [
    ({}, "does not record"),
    ({"class_prior": [0.5, 0.5]}, "7 positive frequencies"),
    ({"class_prior": [0.4, 0.3, 0.3, 0.0, 0.0, 0.0, 0.0]}, "7 positive frequencies"),
    ({"class_prior": [0.2] * 7}, "summing to 1")])
def test_prior_correction_needs_a_valid_recorded_prior(package, tmp_path: Path, training: dict,  # type: ignore[no-untyped-def]
                                                       error: str) -> None:
    from fer_edge.errors import PackageError

    path = _with_training(package, tmp_path, training)
    Recognizer(path)  # without the correction, the prior is never read
    with pytest.raises(PackageError, match=error):
        Recognizer(path, prior_correction=0.5)


@pytest.mark.parametrize("tau", [-0.1, 2.5, float("nan")])
def test_prior_correction_out_of_range_is_refused(package, tau: float) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInputError, match="prior_correction"):
        Recognizer(package.sidecar_path, prior_correction=tau)


def test_flip_averages_each_face_with_its_mirror_image(package, astronaut: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    """``flip=True`` reports the mean of the probabilities of a face and of its mirror image, in
    frames, crops and streams alike."""
    plain, flipped = Recognizer(package.sidecar_path), Recognizer(package.sidecar_path, flip=True)
    assert flipped.info()["flip"] is True and plain.info()["flip"] is False
    size = plain.spec.size
    crop = cv2.resize(astronaut[40:240, 130:330], (size[1], size[0]), interpolation=cv2.INTER_AREA)  # no resize later
    both = np.array([list(f.probabilities.values()) for f in plain.predict_faces([crop, crop[:, ::-1].copy()])])
    mean = list(flipped.predict_faces([crop])[0].probabilities.values())
    np.testing.assert_allclose(mean, both.mean(axis=0), atol=1e-6)
    assert not np.allclose(both[0], both[1], atol=1e-4)  # the mirror image is another input
    framed = flipped(astronaut)[0]
    streamed = next(iter(flipped.stream([astronaut], fps=30))).faces[0]
    np.testing.assert_allclose(list(streamed.probabilities.values()), list(framed.probabilities.values()), atol=1e-6)


def test_classes_7_answers_an_8_class_model_in_the_basic_expressions(tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                     astronaut: np.ndarray) -> None:
    """``classes=7``: the 8-class model's probabilities without contempt, renormalised (never a
    contempt label), in stream mode too; unknown or repeated classes are a typed error."""
    from fer_edge.constants import EXPRESSIONS_7, EXPRESSIONS_8

    path = make_package(tmp_path, "eight", classes=EXPRESSIONS_8, seed=3).sidecar_path
    full, seven = Recognizer(path), Recognizer(path, classes=7)
    assert full.classes == EXPRESSIONS_8 and seven.classes == EXPRESSIONS_7 == tuple(seven.info()["classes"])
    p8 = np.array(list(full(astronaut)[0].probabilities.values()))
    face = seven(astronaut)[0]
    np.testing.assert_allclose(list(face.probabilities.values()), p8[:7] / p8[:7].sum(), atol=1e-9)
    assert face.label == EXPRESSIONS_7[int(np.argmax(p8[:7]))] and p8[7] > 1e-3
    streamed = next(iter(seven.stream([astronaut], fps=30))).faces[0]
    assert tuple(streamed.probabilities) == EXPRESSIONS_7
    pair = Recognizer(path, classes=["happy", "contempt"])(astronaut)[0]
    np.testing.assert_allclose(list(pair.probabilities.values()), p8[[1, 7]] / p8[[1, 7]].sum(), atol=1e-9)
    for bad in (["happy", "smug"], ["happy", "happy"], 5):
        with pytest.raises(InvalidInputError, match="classes"):
            Recognizer(path, classes=bad)
