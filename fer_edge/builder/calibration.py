"""Calibration sets: faces preprocessed exactly as at run time, class-balanced, with a manifest.

A set is a float32 NCHW tensor file (``<name>.npy``) plus a JSON manifest (``<name>.json``):
source, every file with its sha256 and label, the preprocessing spec (``InputSpec``) and the
seed, so a build is reproducible. A manifest whose tensor file is absent (the shipped default:
FER2013-derived pixels may not be redistributed) is rebuilt from the files it lists, each
checked against its recorded sha256.

FER+ crops are already faces and go straight through :func:`preprocess`; raw photos go through
the runtime's detector and aligner (:mod:`fer_edge.vision`) first.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fer_edge.errors import DatasetError
from fer_edge.fileio import atomic_write, sha256_file, write_json_atomic
from fer_edge.package import InputSpec
from fer_edge.vision.preprocess import preprocess

SCHEMA = "fer_edge.calibration/1"
DEFAULT_SIZE = 512
MIN_SIZE = 16  # fewer faces give unstable activation ranges: refuse rather than build a bad engine
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


@dataclass
class CalibrationSet:
    """Preprocessed faces, their labels (-1 where unknown) and the manifest that reproduces them."""

    tensors: np.ndarray
    labels: np.ndarray
    manifest: dict[str, Any]

    @property
    def manifest_sha256(self) -> str:
        """Hash of the manifest's canonical JSON: what a sidecar records to name its calibration."""
        return hashlib.sha256(json.dumps(self.manifest, sort_keys=True).encode()).hexdigest()


def default_manifest() -> Path:
    """The shipped default set's manifest: ``fer_edge/calibration_sets/`` installed, ``calibration/`` in a checkout."""
    package_root = Path(__file__).resolve().parents[1]
    for folder in (package_root / "calibration_sets", package_root.parent / "calibration"):
        if (folder / "fer_default.json").is_file():
            return folder / "fer_default.json"
    raise DatasetError(f"the default calibration manifest is missing under {package_root}: reinstall fer_edge")


def ferplus_root() -> Path | None:
    """The FER+ folder: ``$FER_EDGE_FERPLUS``, else ``../shared/data/ferplus`` beside the checkout."""
    candidates = [os.environ.get("FER_EDGE_FERPLUS"), Path(__file__).resolve().parents[3] / "shared/data/ferplus"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "FER2013Valid" / "label.csv").is_file():
            return Path(candidate)
    return None


def balanced_indices(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Pick ``size`` indices round-robin over the classes present (as equal as the data allow)."""
    rng = np.random.default_rng(seed)
    pools = [list(rng.permutation(np.flatnonzero(labels == c))) for c in np.unique(labels)]
    picked: list[int] = []
    while len(picked) < size and any(pools):
        for pool in pools:
            if pool and len(picked) < size:
                picked.append(int(pool.pop()))
    return np.sort(np.asarray(picked, dtype=np.int64))


def _read(path: Path, flags: int) -> np.ndarray:
    image = cv2.imread(str(path), flags)
    if image is None or image.size == 0:
        raise DatasetError(f"cannot decode calibration image {path}")
    return image


def _faces(paths: list[Path], kind: str, spec: InputSpec) -> np.ndarray:
    """Preprocess ``paths`` the runtime way: crops directly, photos via detect + align first."""
    if kind == "crops":
        return preprocess([_read(p, cv2.IMREAD_UNCHANGED) for p in paths], spec)
    from fer_edge.vision.align import align_face
    from fer_edge.vision.detector import YuNetDetector

    detector, crops = YuNetDetector(), []
    for path in paths:
        image = _read(path, cv2.IMREAD_COLOR)
        faces = detector.detect(image)
        if not faces:
            raise DatasetError(f"no face found in calibration photo {path}")
        crops.append(align_face(image, faces[0].landmarks, spec.size, spec.alignment))
    return preprocess(crops, spec)


def _assemble(root: Path, kind: str, paths: list[Path], labels: np.ndarray, spec: InputSpec, size: int, seed: int,
              source: str) -> CalibrationSet:
    if len(paths) < MIN_SIZE:
        raise DatasetError(f"{root} has {len(paths)} usable images; a calibration set needs at least {MIN_SIZE}")
    index = balanced_indices(labels, size, seed)
    chosen = [paths[i] for i in index]
    files = [{"file": str(p.relative_to(root)), "sha256": sha256_file(p), "label": int(labels[i])}
             for p, i in zip(chosen, index)]
    # FER+ manifests name the split only, so they rebuild on any machine that has FER+
    manifest = {"schema": SCHEMA, "source": source, "kind": kind,
                "root": root.name if source == "ferplus" else str(root.resolve()), "seed": seed,
                "size": len(chosen), "preprocessing": _spec_dict(spec), "files": files}
    return CalibrationSet(_faces(chosen, kind, spec), labels[index], manifest)


def _spec_dict(spec: InputSpec) -> dict[str, Any]:
    return {"size": list(spec.size), "color": spec.color, "mean": list(spec.mean), "std": list(spec.std),
            "alignment": spec.alignment, "name": spec.name, "layout": spec.layout}


def from_ferplus(split_dir: str | os.PathLike[str], spec: InputSpec, size: int = DEFAULT_SIZE, seed: int = 0,
                 num_classes: int = 7) -> CalibrationSet:
    """A class-balanced set from a FER+ split (labels: the top vote, FER+ reader's ``votes`` protocol)."""
    from fer_edge.training.readers import read_ferplus

    records = read_ferplus(Path(split_dir), num_classes=num_classes, protocol="votes")
    paths = [Path(p) for p in records.items]  # type: ignore[arg-type]
    return _assemble(Path(split_dir), "crops", paths, records.labels, spec, size, seed, "ferplus")


def from_folder(folder: str | os.PathLike[str], spec: InputSpec, size: int = DEFAULT_SIZE, seed: int = 0,
                photos: bool = True, classes: tuple[str, ...] = ()) -> CalibrationSet:
    """A set from a folder of images (recursive). Subfolders named after ``classes`` give labels
    and class balance; ``photos=False`` means the images are already face crops."""
    root = Path(folder)
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise DatasetError(f"{root} contains no images ({', '.join(IMAGE_SUFFIXES)})")
    labels = np.asarray([classes.index(p.parent.name) if p.parent.name in classes else -1 for p in paths])
    return _assemble(root, "photos" if photos else "crops", paths, labels, spec, size, seed, "folder")


def save(cset: CalibrationSet, manifest_path: str | os.PathLike[str]) -> Path:
    """Write ``<name>.npy`` (tensors) and ``<name>.json`` (manifest, with the tensors' sha256), atomically."""
    path = Path(manifest_path).with_suffix(".json")
    tensor_path = path.with_suffix(".npy")
    with atomic_write(tensor_path) as handle:
        np.save(handle, cset.tensors)
    cset.manifest["tensor_file"] = tensor_path.name
    cset.manifest["tensor_sha256"] = sha256_file(tensor_path)
    write_json_atomic(path, cset.manifest)
    return path


def load(manifest_path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None,
         spec: InputSpec | None = None) -> CalibrationSet:
    """Load a set; when its tensor file is missing or stale, rebuild it from the listed files under
    ``root`` (default: the manifest's ``root``; for FER+ manifests, that split of :func:`ferplus_root`).

    ``spec``: the model's input spec. A manifest lists files, not tensors, so a set prepared for
    another input (48x48 faces for a 64x64 model) is prepared again from its files at ``spec``;
    the returned manifest records the preprocessing actually used.
    """
    path = Path(manifest_path)
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"cannot read calibration manifest {path}: {exc}") from exc
    if manifest.get("schema") != SCHEMA:
        raise DatasetError(f"{path}: calibration manifest schema {manifest.get('schema')!r}, expected {SCHEMA!r}")
    labels = np.asarray([f["label"] for f in manifest["files"]], dtype=np.int64)
    if spec is not None and InputSpec.from_dict(manifest["preprocessing"]) != spec:
        manifest = {k: v for k, v in manifest.items() if k not in ("tensor_file", "tensor_sha256")}
        manifest["preprocessing"] = _spec_dict(spec)
    tensor_path = path.with_suffix(".npy")
    if tensor_path.is_file() and manifest.get("tensor_sha256") == sha256_file(tensor_path):
        return CalibrationSet(np.load(tensor_path), labels, manifest)
    ferplus = ferplus_root() if manifest.get("source") == "ferplus" else None
    base = Path(root) if root else (ferplus / manifest["root"] if ferplus else Path(manifest["root"]))
    paths = [_listed_file(base, str(f["file"]), path) for f in manifest["files"]]
    for entry, file_path in zip(manifest["files"], paths):
        if not file_path.is_file():
            raise DatasetError(f"calibration file {file_path} (listed in {path.name}) is missing; pass its root folder")
        if sha256_file(file_path) != entry["sha256"]:
            raise DatasetError(f"calibration file {file_path} differs from the one {path.name} lists (sha256)")
    spec = InputSpec.from_dict(manifest["preprocessing"])
    return CalibrationSet(_faces(paths, manifest["kind"], spec), labels, manifest)


def _listed_file(base: Path, name: str, manifest_path: Path) -> Path:
    """A manifest's file, which must lie inside its root: a manifest naming ``../../etc/passwd`` or an
    absolute path is refused before anything is opened."""
    relative = Path(name)
    if relative.is_absolute() or ".." in relative.parts:
        raise DatasetError(f"{manifest_path.name} lists {name!r}: calibration files must be relative paths "
                           "inside the manifest's root")
    return base / relative


def parity_faces(spec: InputSpec, count: int = 8) -> tuple[np.ndarray, str]:
    """Real preprocessed faces for export parity checks: FER+ valid when present, else synthetic."""
    root = ferplus_root()
    if root is not None:
        paths = sorted((root / "FER2013Valid").glob("*.png"))[:count]
        if len(paths) == count:
            return _faces(paths, "crops", spec), "ferplus-valid"
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (spec.size[0], spec.size[1]), dtype=np.uint8) for _ in range(count)]
    return preprocess(crops, spec), "synthetic"


def labelled_faces(split_dir: Path, spec: InputSpec, num_classes: int = 7, limit: int | None = None,
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Preprocessed faces and labels of a FER+ split under the strict-majority evaluation protocol."""
    from fer_edge.training.readers import read_ferplus

    records = read_ferplus(split_dir, num_classes=num_classes, protocol="majority")
    count = len(records) if limit is None else min(limit, len(records))
    paths = [Path(p) for p in records.items[:count]]  # type: ignore[arg-type]
    return _faces(paths, "crops", spec), records.labels[:count]
