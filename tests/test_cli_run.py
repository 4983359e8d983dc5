"""`fer-edge run` on images, folders (with a corrupt file), videos; `fer-edge info`."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data
from tiny_package import make_package

from fer_edge.cli import main
from fer_edge.recognizer import RESULT_SCHEMA


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(make_package(tmp_path_factory.mktemp("pkg")).sidecar_path)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])


def test_run_one_image_json(model: str, astronaut: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = tmp_path / "astronaut.png"
    cv2.imwrite(str(image), astronaut)
    assert main(["run", str(image), "--model", model, "--json", "--quiet"]) == 0
    doc = json.loads(capsys.readouterr().out.strip())
    assert doc["schema"] == RESULT_SCHEMA and doc["source"] == str(image) and len(doc["faces"]) == 1


def test_run_folder_saves_annotations_and_reports_corrupt_files(
        model: str, astronaut: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.jpg"), astronaut)
    cv2.imwrite(str(folder / "b.png"), np.full((120, 160, 3), 200, np.uint8))  # no face
    (folder / "c.jpg").write_bytes(b"not a jpeg")
    (folder / "notes.txt").write_text("ignored")
    out = tmp_path / "out"
    assert main(["run", str(folder), "--model", model, "--save", str(out), "--quiet"]) == 1  # c.jpg failed
    captured = capsys.readouterr()
    assert "a.jpg:" in captured.out and "b.png: no face" in captured.out
    assert "skipped" in captured.err and "c.jpg" in captured.err
    annotated = cv2.imread(str(out / "a.jpg"))
    assert annotated.shape == astronaut.shape and np.abs(annotated.astype(int) - astronaut).sum() > 0
    assert (out / "b.png").is_file() and not (out / "c.jpg").exists()


def test_run_video_writes_json_lines_and_annotated_video(
        model: str, astronaut: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (512, 512))
    for i in range(5):
        writer.write(np.roll(astronaut, 4 * i, axis=1))
    writer.release()
    out = tmp_path / "annotated.mp4"
    assert main(["run", str(video), "--model", model, "--json", "--save", str(out), "--quiet"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [doc["frame_index"] for doc in lines] == [0, 1, 2, 3, 4]
    assert all(doc["faces"][0]["track_id"] == 1 for doc in lines)
    capture = cv2.VideoCapture(str(out))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    capture.release()
    assert not list(tmp_path.glob(".*partial*"))
    assert main(["run", str(video), "--model", model, "--max-frames", "2", "--json", "--quiet"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


@pytest.mark.parametrize("name, content, words", [
    ("missing.jpg", None, "does not exist"), ("empty.png", b"", "empty"), ("data.xyz", b"123", "unknown file type"),
])
def test_run_bad_paths_exit_1_with_a_message(model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             name: str, content: bytes | None, words: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    assert main(["run", str(path), "--model", model, "--quiet"]) == 1
    assert words in capsys.readouterr().err


def test_run_default_model_missing_says_so(astronaut: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A broken install (embedded package removed) is a clear error, not a crash."""
    from fer_edge.engines import resolve

    monkeypatch.setattr(resolve, "DEFAULT_DIR", tmp_path / "no_models")
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), astronaut)
    assert main(["run", str(image), "--quiet"]) == 1
    assert "default model" in capsys.readouterr().err


def test_info_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {"fer_edge", "onnxruntime", "opencv", "tensorrt", "cuda", "gpu", "plugin_library", "packages"} <= set(info)
    assert info["onnxruntime"] and "CPUExecutionProvider" in info["onnxruntime_providers"]
