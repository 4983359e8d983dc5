"""Find a model's packages and pick the backend that runs it, recording why.

``"default"`` is the package embedded in fer_edge (``fer_edge/data/models/fer_default*.json``);
another id names packages in the cache (``$FER_EDGE_HOME/packages/<id>*.json``, default
``~/.cache/fer_edge``) and those shipped for that zoo id (``fer_edge/data/models/<id>*.json``:
its trained weights and INT8 package), cache first; a path names one package (or a ``.pt`` checkpoint, for the torch
backend). Nothing is ever built or downloaded here: a missing model is an error that says
which command builds it (USERS.md: silent builds and downloads are what users hate most).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from fer_edge.constants import SHIPPED_MODELS_DIR
from fer_edge.engines import get_backend
from fer_edge.engines.base import Engine
from fer_edge.engines.onnxruntime import OnnxRuntimeManager
from fer_edge.engines.tensorrt import TensorRTManager, check_engine_compat
from fer_edge.engines.torch import TorchManager
from fer_edge.errors import BackendUnavailableError, FerEdgeError, ModelNotFoundError
from fer_edge.package import ModelPackage, load_package
from fer_edge.trt_compat import installed_version

DEFAULT_DIR = SHIPPED_MODELS_DIR
DEFAULT_STEM = "fer_default"
BACKEND_NAMES = ("auto", "tensorrt", "onnxruntime", "torch", "triton")


def cache_dir() -> Path:
    """Where built packages live: ``$FER_EDGE_HOME/packages`` (default ``~/.cache/fer_edge/packages``)."""
    return Path(os.environ.get("FER_EDGE_HOME", Path.home() / ".cache" / "fer_edge")).expanduser() / "packages"


def _scan(folder: Path, stem: str, model_id: str | None = None) -> list[ModelPackage]:
    """Packages in ``folder`` named ``<stem>.json`` or ``<stem>_<variant>.json`` (checksums not yet checked).

    With ``model_id``, a ``<stem>_<variant>`` file must also record that id, so "simam" does not
    pick up "simam_resnet" packages.
    """
    found = []
    for path in sorted(folder.glob(f"{stem}*.json")):
        if path.stem != stem and not path.stem.startswith(stem + "_"):
            continue
        try:
            package = load_package(path, verify=False)
        except FerEdgeError:
            continue  # a half-built or foreign JSON beside the packages is not a candidate
        if path.stem == stem or model_id is None or package.sidecar.model_id == model_id:
            found.append(package)
    return found


def find_packages(model: str | os.PathLike[str]) -> list[ModelPackage]:
    """All packages of ``model`` ("default", an id, or a path); typed error when there are none."""
    text = os.fspath(model)
    path = Path(text).expanduser()
    if path.suffix in (".json", ".onnx", ".engine") or os.sep in text or path.exists():
        return [load_package(path, verify=False)]
    if text == "default":
        found = _scan(DEFAULT_DIR, DEFAULT_STEM)
        if not found:
            raise ModelNotFoundError(f"the embedded default model is missing from {DEFAULT_DIR} (fer_default.json); "
                                     "reinstall fer_edge, or pass model=<id or package path>")
        return found
    found = _scan(cache_dir(), text, model_id=text) + _scan(DEFAULT_DIR, text, model_id=text)
    if not found:
        raise ModelNotFoundError(f"no package for model {text!r} in {cache_dir()} or among the shipped models; "
                                 f"build it with `fer-edge build --model {text}` (nothing is downloaded or built "
                                 "automatically)")
    return found


@dataclass(frozen=True)
class Choice:
    """The package and backend chosen, and the human-readable reason (``Recognizer.info()``)."""

    package: ModelPackage
    backend: str
    device: str | None
    reason: str


def _tensorrt_match(packages: list[ModelPackage], device: str | None) -> tuple[ModelPackage | None, str]:
    engines = [p for p in packages if p.sidecar.format == "tensorrt"]
    if not TensorRTManager.is_available():
        return None, "TensorRT with a CUDA GPU is not available here"
    if not engines:
        return None, "no TensorRT engine package exists for this model (build one with `fer-edge build --target tensorrt`)"
    gpu = TensorRTManager.gpu(int((device or "cuda:0").partition(":")[2] or 0))
    assert gpu is not None
    errors = []
    for package in engines:
        try:
            check_engine_compat(package.sidecar, installed_version(), gpu[1], gpu[0])
            return package, f"engine {package.model_path.name} matches TensorRT {installed_version()} on {gpu[0]}"
        except FerEdgeError as exc:
            errors.append(str(exc))
    return None, "no engine matches this TensorRT/GPU: " + "; ".join(errors)


def _onnx_choice(packages: list[ModelPackage], precision: str, device: str | None, why: str) -> Choice:
    onnx = [p for p in packages if p.sidecar.format == "onnx"]
    if not onnx:
        raise BackendUnavailableError(f"{why}, and the model has no ONNX package for ONNX Runtime")
    if device is None:
        device = "cuda" if "CUDAExecutionProvider" in OnnxRuntimeManager.providers() else "cpu"
    wanted = precision if precision != "auto" else ("int8" if device == "cpu" else "fp32")
    by_precision: dict[str, ModelPackage] = {}
    for p in onnx:
        by_precision.setdefault(p.sidecar.precision, p)  # the first found (the cache) wins
    if precision != "auto" and precision not in by_precision:
        raise BackendUnavailableError(f"{why}, but the model has no {precision} ONNX package (it has: "
                                      f"{', '.join(sorted(by_precision))}); build one with `fer-edge build`")
    package = by_precision.get(wanted) or by_precision.get("fp32") or onnx[0]
    note = (f"{package.sidecar.precision} package" + (" (INT8 is faster on CPU)" if wanted == "int8" and
                                                       package.sidecar.precision == "int8" else ""))
    return Choice(package, "onnxruntime", device, f"{why}; ONNX Runtime on {device}, {note}")


def _triton_choice(packages: list[ModelPackage], url: str | None) -> Choice:
    """A remote Triton server runs the model; the local package (FP32 ONNX preferred) describes it."""
    if not url:
        raise BackendUnavailableError("backend='triton' needs the server: Recognizer(..., backend='triton', "
                                      "url='localhost:8000')")
    package = next((p for p in packages if p.sidecar.format == "onnx" and p.sidecar.precision == "fp32"), packages[0])
    return Choice(package, "triton", url, f"backend='triton' requested: the Triton server at {url} runs the model, "
                  f"{package.sidecar_path.name} describes its input and classes")


def choose(packages: list[ModelPackage], backend: str, device: str | None, precision: str) -> Choice:
    """Pick package + backend. ``auto``: a matching TensorRT engine, else ONNX Runtime (CUDA if present)."""
    if backend not in BACKEND_NAMES:
        raise BackendUnavailableError(f"backend must be one of {BACKEND_NAMES}, got {backend!r}")
    if precision not in ("auto", "fp32", "fp16", "int8"):
        raise BackendUnavailableError(f"precision must be auto, fp32, fp16 or int8, got {precision!r}")
    if backend in ("auto", "tensorrt"):
        package, why = _tensorrt_match(packages, device)
        if package is not None:
            return Choice(package, "tensorrt", device or "cuda:0", why)
        if backend == "tensorrt":
            raise BackendUnavailableError(f"backend='tensorrt' requested but {why}")
        if all(p.sidecar.format == "torch" for p in packages):
            return Choice(packages[0], "torch", device, "the model is a PyTorch checkpoint package")
        return _onnx_choice(packages, precision, device, why)
    if backend == "onnxruntime":
        return _onnx_choice(packages, precision, device, "backend='onnxruntime' requested")
    if backend == "triton":
        return _triton_choice(packages, device)
    torch = [p for p in packages if p.sidecar.format == "torch"]
    if not torch:
        raise BackendUnavailableError("backend='torch' needs a checkpoint (.pt) or a torch package")
    return Choice(torch[0], "torch", device, "backend='torch' requested (debugging path)")


def load_engine(model: str | os.PathLike[str], backend: str = "auto", device: str | None = None,
                precision: str = "auto") -> tuple[Engine, Choice]:
    """Resolve ``model``, choose its backend, verify the chosen file's checksum and load it."""
    if os.fspath(model).endswith(".pt"):
        if backend not in ("auto", "torch"):
            raise BackendUnavailableError(f"{model} is a PyTorch checkpoint; use backend='torch' (or export it)")
        engine = TorchManager.load_checkpoint(model, device)
        return engine, Choice(engine.package, "torch", device, "a .pt checkpoint runs on PyTorch (debugging path)")
    choice = choose(find_packages(model), backend, device, precision)
    choice.package.verify_checksum()
    return get_backend(choice.backend).load(choice.package, choice.device), choice
