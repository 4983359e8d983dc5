"""The model package: a model file (ONNX or TensorRT engine) plus a JSON sidecar.

The sidecar is the contract between the build flow and the runtime (ARCHITECTURE.md): it says
everything the runtime needs and nothing it must guess. It is versioned (``schema``), written
atomically, and lives beside the model file with the same stem: ``foo.onnx`` <-> ``foo.json``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fer_edge._version import __version__
from fer_edge.errors import ChecksumMismatchError, ModelNotFoundError, PackageError
from fer_edge.fileio import sha256_file, write_json_atomic

SCHEMA = "fer_edge.package/1"
MODEL_SUFFIXES = (".onnx", ".engine", ".pt")


@dataclass(frozen=True)
class InputSpec:
    """How a face crop becomes the model's input tensor.

    ``color`` is the channel content the model was trained on: ``"rgb"`` or ``"gray"`` (gray is
    replicated to 3 channels, so every model takes 3-channel NCHW). ``mean``/``std`` apply to
    pixel values scaled to [0, 1]. ``alignment`` names the landmark template in
    :mod:`fer_edge.vision.align`.
    """

    size: tuple[int, int] = (64, 64)  # (height, width)
    color: str = "gray"
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    alignment: str = "fer2013"
    name: str = "input"
    layout: str = "NCHW"

    def __post_init__(self) -> None:
        if self.color not in ("rgb", "gray"):
            raise PackageError(f"input color must be 'rgb' or 'gray', got {self.color!r}")
        if len(self.size) != 2 or min(self.size) < 8:
            raise PackageError(f"input size must be (height, width) >= 8, got {self.size!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise PackageError("input mean/std must have 3 entries and std must be positive")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputSpec:
        try:
            return cls(
                size=(int(data["size"][0]), int(data["size"][1])),
                color=str(data.get("color", "rgb")),
                mean=tuple(float(v) for v in data["mean"]),  # type: ignore[arg-type]
                std=tuple(float(v) for v in data["std"]),  # type: ignore[arg-type]
                alignment=str(data.get("alignment", "fer2013")),
                name=str(data.get("name", "input")),
                layout=str(data.get("layout", "NCHW")),
            )
        except (KeyError, TypeError, IndexError, ValueError) as exc:
            raise PackageError(f"malformed input spec {data!r}: {exc}") from exc


@dataclass(frozen=True)
class BatchRange:
    """The dynamic batch range a model file accepts (min <= opt <= max)."""

    min: int = 1
    opt: int = 8
    max: int = 32

    def __post_init__(self) -> None:
        if not 1 <= self.min <= self.opt <= self.max:
            raise PackageError(f"batch range needs 1 <= min <= opt <= max, got {self.min}:{self.opt}:{self.max}")

    @classmethod
    def parse(cls, text: str) -> BatchRange:
        """Parse ``MIN:OPT:MAX`` as written on the command line."""
        parts = text.split(":")
        if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
            raise PackageError(f"batch range must be MIN:OPT:MAX with positive integers, got {text!r}")
        return cls(*(int(p) for p in parts))


@dataclass
class Sidecar:
    """Everything known about one model file; serialised as the package's JSON sidecar."""

    model_id: str
    variant: str
    classes: tuple[str, ...]
    input: InputSpec
    format: str  # "onnx" | "tensorrt" | "torch"
    file: str  # file name, relative to the sidecar
    precision: str = "fp32"  # "fp32" | "fp16" | "int8"
    batch: BatchRange = field(default_factory=BatchRange)
    output_name: str = "logits"
    opset: int | None = None
    graph_form: str = "portable"  # "portable" | "plugin"
    sha256: str = ""
    tensorrt: dict[str, Any] | None = None  # version, gpu_name, compute_capability, plugin_library
    calibration: dict[str, Any] | None = None  # manifest_sha256, method, num_images
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    temperature: float = 1.0  # the runtime's softmax divides the logits by it (fitted on held-out faces)
    fer_edge_version: str = __version__
    schema: str = SCHEMA

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["classes"] = list(self.classes)
        data["input"]["size"] = list(self.input.size)
        return data

    def class_prior(self) -> tuple[float, ...] | None:
        """How often each class was the target in training (``training.class_prior``, recorded by
        ``fer-edge train``), or None where the package does not say. Checked here, since a prior of
        the wrong length or with a zero would shift every corrected probability silently."""
        prior = self.training.get("class_prior")
        if prior is None:
            return None
        if (not isinstance(prior, list) or len(prior) != len(self.classes)
                or not all(isinstance(p, (int, float)) and math.isfinite(p) and p > 0 for p in prior)
                or abs(sum(prior) - 1.0) > 1e-3):
            raise PackageError(f"sidecar field training.class_prior must be {len(self.classes)} positive "
                               f"frequencies summing to 1 (one per class {list(self.classes)}), got {prior!r}")
        return tuple(float(p) for p in prior)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sidecar:
        if data.get("schema") != SCHEMA:
            raise PackageError(f"unsupported sidecar schema {data.get('schema')!r}; this SDK reads {SCHEMA!r}")
        check_model_file_name(data.get("file"))
        try:
            return cls(
                model_id=str(data["model_id"]),
                variant=str(data["variant"]),
                classes=tuple(data["classes"]),
                input=InputSpec.from_dict(data["input"]),
                format=str(data["format"]),
                file=str(data["file"]),
                precision=str(data.get("precision", "fp32")),
                batch=BatchRange(**data.get("batch", {})),
                output_name=str(data.get("output_name", "logits")),
                opset=data.get("opset"),
                graph_form=str(data.get("graph_form", "portable")),
                sha256=str(data.get("sha256", "")),
                tensorrt=data.get("tensorrt"),
                calibration=data.get("calibration"),
                metrics=dict(data.get("metrics", {})),
                training=dict(data.get("training", {})),
                temperature=_temperature(data.get("temperature", 1.0)),
                fer_edge_version=str(data.get("fer_edge_version", "")),
            )
        except (KeyError, TypeError) as exc:
            raise PackageError(f"sidecar is missing or has a malformed field: {exc}") from exc


def _temperature(value: Any) -> float:
    """A sidecar's softmax temperature: a finite number > 0 (a zero or negative one would flip or blow
    up every probability)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise PackageError(f"sidecar field 'temperature' must be a finite number > 0, got {value!r}")
    return float(value)


def check_model_file_name(name: Any) -> str:
    """A sidecar's ``file`` must be a plain file name in the sidecar's own folder.

    Anything else (``../../etc/passwd``, an absolute path, a sub-folder) is refused before any file
    is opened: a package must not make the loader read, hash or run files outside its folder.
    """
    if not isinstance(name, str) or not name or name in (".", "..") or "\x00" in name \
            or "/" in name or "\\" in name or Path(name).name != name:
        raise PackageError(f"sidecar field 'file' must be the model's plain file name beside the sidecar, "
                           f"got {name!r}")
    return name


@dataclass(frozen=True)
class ModelPackage:
    """A located package: the sidecar plus absolute paths of both files."""

    sidecar: Sidecar
    model_path: Path
    sidecar_path: Path

    def verify_checksum(self) -> None:
        """Raise :class:`ChecksumMismatchError` if the model file is not the one described."""
        if not self.sidecar.sha256:
            raise PackageError(f"{self.sidecar_path} records no sha256 for {self.model_path.name}")
        actual = sha256_file(self.model_path)
        if actual != self.sidecar.sha256:
            raise ChecksumMismatchError(
                f"{self.model_path} has sha256 {actual[:12]}..., but its sidecar records "
                f"{self.sidecar.sha256[:12]}...: the file was modified or truncated; rebuild the package"
            )


def sidecar_path_for(model_path: str | os.PathLike[str]) -> Path:
    """The sidecar of ``foo.onnx`` / ``foo.engine`` is ``foo.json`` in the same folder."""
    return Path(model_path).with_suffix(".json")


def write_package(model_path: str | os.PathLike[str], sidecar: Sidecar) -> ModelPackage:
    """Record the model file's checksum in ``sidecar`` and write the sidecar atomically.

    The model file itself must already have been written atomically by the caller.
    """
    model = Path(model_path).resolve()
    if not model.is_file():
        raise ModelNotFoundError(f"cannot package {model}: the model file does not exist")
    sidecar.file = model.name
    sidecar.sha256 = sha256_file(model)
    path = sidecar_path_for(model)
    write_json_atomic(path, sidecar.to_dict())
    return ModelPackage(sidecar, model, path)


def load_package(path: str | os.PathLike[str], verify: bool = True) -> ModelPackage:
    """Load a package from its sidecar (``.json``) or its model file (``.onnx``/``.engine``)."""
    given = Path(path)
    if not given.exists():
        raise ModelNotFoundError(f"model package {given} does not exist")
    sidecar_path = given if given.suffix == ".json" else sidecar_path_for(given)
    if not sidecar_path.is_file():
        raise PackageError(
            f"{given} has no sidecar {sidecar_path.name}: build it with `fer-edge build`, "
            "which writes the model file and its sidecar together"
        )
    try:
        data = json.loads(sidecar_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PackageError(f"cannot read sidecar {sidecar_path}: {exc}") from exc
    sidecar = Sidecar.from_dict(data)
    model_path = (sidecar_path.parent / sidecar.file).resolve()
    if not model_path.is_file():
        raise ModelNotFoundError(f"sidecar {sidecar_path} names {sidecar.file}, which does not exist beside it")
    package = ModelPackage(sidecar, model_path, sidecar_path.resolve())
    if verify:
        package.verify_checksum()
    return package
