"""The one engine interface and the backend registry.

Each backend is a small manager class (``is_available``, ``version``, ``load``) registered by
name, importing its framework only inside its methods (the mmdeploy backend-manager pattern):
``import fer_edge.engines`` works with neither torch nor TensorRT installed, and the Recognizer
never names a backend's SDK.
"""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from fer_edge.errors import BackendUnavailableError, InvalidInputError, PackageError
from fer_edge.package import InputSpec, ModelPackage


class Engine(ABC):
    """Runs a preprocessed batch ``(N, 3, H, W)`` float32 and returns logits ``(N, classes)``.

    Any ``N`` is accepted: batches larger than ``max_batch`` run in ``max_batch`` chunks, so the
    caller sends all faces of a frame (or of several frames) at once.
    """

    backend: ClassVar[str]

    def __init__(self, package: ModelPackage, max_batch: int) -> None:
        self.package = package
        self.input_spec: InputSpec = package.sidecar.input
        self.classes: tuple[str, ...] = package.sidecar.classes
        self.max_batch = int(max_batch)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Logits for ``batch`` (validated here, so every backend rejects bad input the same way)."""
        height, width = self.input_spec.size
        if not isinstance(batch, np.ndarray) or batch.dtype != np.float32:
            raise InvalidInputError("engine input must be a float32 numpy array from fer_edge.vision.preprocess")
        if batch.ndim != 4 or batch.shape[1:] != (3, height, width):
            raise InvalidInputError(f"engine input must be (N, 3, {height}, {width}), got {batch.shape}")
        if len(batch) == 0:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        batch = np.ascontiguousarray(batch)
        chunks = [self._infer(batch[i:i + self.max_batch]) for i in range(0, len(batch), self.max_batch)]
        return np.concatenate(chunks).astype(np.float32, copy=False)

    @abstractmethod
    def _infer(self, batch: np.ndarray) -> np.ndarray:
        """Logits for a contiguous batch of 1..max_batch inputs."""

    def describe(self) -> dict[str, object]:
        """What this engine runs, for ``Recognizer.info()``."""
        return {"backend": self.backend, "file": str(self.package.model_path), "max_batch": self.max_batch,
                "precision": self.package.sidecar.precision}


class BackendManager(ABC):
    """A registered backend: whether it can run here, its version, and how to load a package."""

    name: ClassVar[str]
    formats: ClassVar[tuple[str, ...]]  # sidecar ``format`` values this backend loads
    module: ClassVar[str]  # the framework's top-level Python module

    @classmethod
    def is_available(cls) -> bool:
        """True when the framework is installed (found without importing it, so the check is cheap);
        backends that also need a device override this."""
        return importlib.util.find_spec(cls.module) is not None

    @classmethod
    def version(cls) -> str | None:
        """The framework's version, or None when it is not installed."""
        if not cls.is_available():
            return None
        return str(importlib.import_module(cls.module).__version__)

    @classmethod
    @abstractmethod
    def load(cls, package: ModelPackage, device: str | None = None) -> Engine:
        """An engine for ``package`` on ``device`` (backend-specific names, e.g. ``"cuda:0"``)."""

    @classmethod
    def check_format(cls, package: ModelPackage) -> None:
        if package.sidecar.format not in cls.formats:
            raise PackageError(f"{package.model_path.name} is a {package.sidecar.format!r} package; the "
                               f"{cls.name} backend loads {'/'.join(cls.formats)} packages")


BACKENDS: dict[str, type[BackendManager]] = {}


def register_backend(cls: type[BackendManager]) -> type[BackendManager]:
    """Class decorator adding a manager to :data:`BACKENDS`; a duplicate name warns and replaces."""
    if cls.name in BACKENDS:
        warnings.warn(f"backend {cls.name!r} registered twice; the later one wins", stacklevel=2)
    BACKENDS[cls.name] = cls
    return cls


def get_backend(name: str) -> type[BackendManager]:
    """The manager registered as ``name``, or a typed error listing the known ones."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise BackendUnavailableError(f"unknown backend {name!r}; known: {sorted(BACKENDS)}") from None
