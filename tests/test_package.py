"""The package contract and the atomic writes every artifact relies on."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from fer_edge.constants import EXPRESSIONS_7
from fer_edge.errors import ChecksumMismatchError, InvalidInputError, ModelNotFoundError, PackageError
from fer_edge.fileio import atomic_path, atomic_write, sha256_file
from fer_edge.package import BatchRange, InputSpec, Sidecar, load_package, sidecar_path_for, write_package
from fer_edge.vision.preprocess import preprocess


def _sidecar() -> Sidecar:
    return Sidecar(model_id="simam_resnet", variant="edge", classes=EXPRESSIONS_7, input=InputSpec(size=(48, 48)),
                   format="onnx", file="", batch=BatchRange(1, 4, 16), opset=17)


def test_atomic_write_leaves_nothing_on_interrupt(tmp_path: Path) -> None:
    target = tmp_path / "engine.bin"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), atomic_write(target) as handle:
        handle.write(b"half-written")
        raise KeyboardInterrupt
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["engine.bin"]


def test_atomic_path_replaces_and_sets_normal_mode(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "model.onnx"
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"complete")
        assert not target.exists()
    assert target.read_bytes() == b"complete"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


def test_package_round_trip_and_checksum(tmp_path: Path) -> None:
    model = tmp_path / "fer.onnx"
    model.write_bytes(b"not really onnx, but a file")
    written = write_package(model, _sidecar())
    assert written.sidecar_path == sidecar_path_for(model) == tmp_path / "fer.json"
    loaded = load_package(tmp_path / "fer.json")
    assert loaded.sidecar.to_dict() == written.sidecar.to_dict()
    assert loaded.sidecar.sha256 == sha256_file(model)
    assert load_package(model).model_path == model.resolve()  # by model file too

    model.write_bytes(b"tampered")
    with pytest.raises(ChecksumMismatchError, match="rebuild the package"):
        load_package(model)


def test_package_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        load_package(tmp_path / "missing.json")
    lonely = tmp_path / "lonely.onnx"
    lonely.write_bytes(b"x")
    with pytest.raises(PackageError, match="no sidecar"):
        load_package(lonely)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": "someone_else/9"}))
    with pytest.raises(PackageError, match="unsupported sidecar schema"):
        load_package(bad)
    with pytest.raises(PackageError, match="MIN:OPT:MAX"):
        BatchRange.parse("1:8")
    with pytest.raises(PackageError, match="min <= opt <= max"):
        BatchRange.parse("8:4:16")


def test_preprocess_is_the_documented_formula() -> None:
    spec = InputSpec(size=(8, 8), color="rgb", mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 0.125))
    bgr = np.zeros((8, 8, 3), np.uint8)
    bgr[..., 0], bgr[..., 1], bgr[..., 2] = 10, 20, 30  # B, G, R
    out = preprocess(bgr, spec)
    assert out.shape == (1, 3, 8, 8) and out.dtype == np.float32
    expected = [(30 / 255 - 0.1) / 0.5, (20 / 255 - 0.2) / 0.25, (10 / 255 - 0.3) / 0.125]  # RGB order
    np.testing.assert_allclose(out[0, :, 0, 0], expected, rtol=1e-6)
    gray = preprocess(bgr, InputSpec(size=(8, 8), color="gray"))
    assert np.allclose(gray[0, 0], gray[0, 1]) and np.allclose(gray[0, 1], gray[0, 2])


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 3), np.float32), np.zeros((0, 4, 3), np.uint8),
                                 np.zeros((4, 4, 2), np.uint8)])
def test_preprocess_rejects_bad_crops(bad: np.ndarray) -> None:
    with pytest.raises(InvalidInputError):
        preprocess([bad], InputSpec())


@pytest.mark.parametrize("name", ["../../../etc/passwd", "/etc/passwd", "sub/m.onnx", "..", ".", "", "a\\b.onnx",
                                  "m\x00.onnx", 42, None])
def test_sidecar_file_must_be_a_plain_name_and_nothing_is_opened_otherwise(tmp_path: Path, name: object,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A sidecar naming a path outside its folder is refused before the model file is opened or hashed."""
    (tmp_path / "m.onnx").write_bytes(b"model")
    package = write_package(tmp_path / "m.onnx", _sidecar())
    data = json.loads(package.sidecar_path.read_text())
    data["file"] = name
    package.sidecar_path.write_text(json.dumps(data))
    opened: list[str] = []
    monkeypatch.setattr("fer_edge.package.sha256_file", lambda path: opened.append(str(path)) or "")
    real_is_file = Path.is_file
    monkeypatch.setattr(Path, "is_file", lambda self: opened.append(str(self)) or real_is_file(self))
    with pytest.raises(PackageError, match="plain file name"):
        load_package(package.sidecar_path)
    assert opened == [str(package.sidecar_path)], "only the sidecar itself may be touched"


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "2", True])
def test_a_sidecar_temperature_must_be_a_positive_number(tmp_path: Path, bad: object) -> None:
    from tiny_package import make_package

    package = make_package(tmp_path)
    data = json.loads(package.sidecar_path.read_text())
    data["temperature"] = bad
    package.sidecar_path.write_text(json.dumps(data))
    with pytest.raises(PackageError, match="temperature"):
        load_package(package.sidecar_path, verify=False)
