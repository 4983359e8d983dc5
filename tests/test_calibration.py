"""Calibration sets: class balance, manifests that round-trip, rebuilding from listed files."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_edge.builder import calibration
from fer_edge.errors import DatasetError
from fer_edge.package import InputSpec
from fer_edge.vision.preprocess import preprocess

SPEC = InputSpec(size=(40, 40))


def test_balanced_indices_round_robin_over_classes() -> None:
    labels = np.array([0] * 50 + [1] * 5 + [2] * 20)
    picked = calibration.balanced_indices(labels, 30, seed=1)
    counts = np.bincount(labels[picked])
    assert len(picked) == 30 and len(set(picked)) == 30
    assert counts[1] == 5 and abs(int(counts[0]) - int(counts[2])) <= 1  # minority exhausted, rest even
    assert np.array_equal(picked, calibration.balanced_indices(labels, 30, seed=1))


def test_ferplus_set_round_trips_through_its_manifest(ferplus_dir: Path, tmp_path: Path) -> None:
    cset = calibration.from_ferplus(ferplus_dir / "FER2013Valid", SPEC, size=35, seed=3)
    assert cset.tensors.shape == (35, 3, 40, 40) and cset.tensors.dtype == np.float32
    assert len(np.unique(cset.labels)) == 7  # balanced over all 7 classes
    first = ferplus_dir / "FER2013Valid" / cset.manifest["files"][0]["file"]
    assert np.allclose(cset.tensors[0], preprocess(cv2.imread(str(first), cv2.IMREAD_UNCHANGED), SPEC)[0])
    path = calibration.save(cset, tmp_path / "set.json")
    loaded = calibration.load(path)
    assert loaded.manifest == json.loads(path.read_text()) and loaded.manifest_sha256 == cset.manifest_sha256
    assert np.array_equal(loaded.tensors, cset.tensors) and np.array_equal(loaded.labels, cset.labels)
    # without its tensor file the set is rebuilt from the listed FER+ files, identically
    path.with_suffix(".npy").unlink()
    rebuilt = calibration.load(path, root=ferplus_dir / "FER2013Valid")
    assert np.array_equal(rebuilt.tensors, cset.tensors)


def test_shipped_default_manifest_lists_no_pixels_and_rebuilds(ferplus_dir: Path) -> None:
    manifest_path = calibration.default_manifest()
    assert not manifest_path.with_suffix(".npy").exists(), "FER2013-derived tensors must not ship"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["source"] == "ferplus" and manifest["size"] == 512 and len(manifest["files"]) == 512
    cset = calibration.load(manifest_path)
    assert cset.tensors.shape == (512, 3, *manifest["preprocessing"]["size"])


def test_a_manifest_is_prepared_at_the_models_input_spec(ferplus_dir: Path, tmp_path: Path) -> None:
    """A manifest lists files: faces listed at 48x48 are prepared again for a 64x64 model (the build
    used to die inside ONNX Runtime with "Got: 48 Expected: 64")."""
    cset = calibration.from_ferplus(ferplus_dir / "FER2013Valid", SPEC, size=20, seed=1)
    path = calibration.save(cset, tmp_path / "set.json")
    wanted = InputSpec(size=(64, 64), color="gray", mean=(0.5,) * 3, std=(0.5,) * 3)
    loaded = calibration.load(path, spec=wanted)
    assert loaded.tensors.shape == (20, 3, 64, 64)
    assert InputSpec.from_dict(loaded.manifest["preprocessing"]) == wanted and "tensor_sha256" not in loaded.manifest
    first = ferplus_dir / "FER2013Valid" / cset.manifest["files"][0]["file"]
    assert np.allclose(loaded.tensors[0], preprocess(cv2.imread(str(first), cv2.IMREAD_UNCHANGED), wanted)[0])
    assert calibration.load(path, spec=SPEC).manifest_sha256 == cset.manifest_sha256  # same spec: as saved


@pytest.mark.parametrize("name", ["../outside.png", "/etc/passwd", "a/../../b.png"])
def test_a_manifest_file_outside_its_root_is_refused(tmp_path: Path, name: str) -> None:
    manifest = {"schema": calibration.SCHEMA, "source": "folder", "kind": "crops", "root": str(tmp_path),
                "seed": 0, "size": 1, "preprocessing": calibration._spec_dict(SPEC),
                "files": [{"file": name, "sha256": "0" * 64, "label": 0}]}
    path = tmp_path / "set.json"
    path.write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="relative paths inside"):
        calibration.load(path)


def test_changed_source_file_is_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for i in range(calibration.MIN_SIZE):
        cv2.imwrite(str(tmp_path / f"{i:02d}.png"), rng.integers(0, 255, (48, 48), dtype=np.uint8))
    cset = calibration.from_folder(tmp_path, SPEC, size=calibration.MIN_SIZE, photos=False)
    manifest = calibration.save(cset, tmp_path / "out" / "set.json")
    manifest.with_suffix(".npy").unlink()
    cv2.imwrite(str(tmp_path / "00.png"), np.zeros((48, 48), np.uint8))
    with pytest.raises(DatasetError, match="differs"):
        calibration.load(manifest)


def test_too_few_or_no_images_are_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no images"):
        calibration.from_folder(tmp_path, SPEC)
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((48, 48), np.uint8))
    with pytest.raises(DatasetError, match="at least"):
        calibration.from_folder(tmp_path, SPEC, photos=False)


def test_photos_go_through_detection_and_alignment(tmp_path: Path) -> None:
    skimage_data = pytest.importorskip("skimage.data")
    photo = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)
    for i in range(calibration.MIN_SIZE):
        cv2.imwrite(str(tmp_path / f"{i:02d}.jpg"), photo)
    cset = calibration.from_folder(tmp_path, SPEC, size=calibration.MIN_SIZE, photos=True)
    assert cset.manifest["kind"] == "photos" and cset.tensors.shape == (16, 3, 40, 40)
    # an aligned face, not the whole resized photo
    whole = preprocess(photo, SPEC)[0]
    assert np.abs(cset.tensors[0] - whole).mean() > 0.1
