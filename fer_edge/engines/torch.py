"""PyTorch backend, for debugging a checkpoint against its exported packages.

Checkpoints are read with :func:`fer_edge.training.checkpoint.load_checkpoint` (the one reader),
and torch is imported only when this backend loads, so the runtime never needs it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from fer_edge.engines.base import BackendManager, Engine, register_backend
from fer_edge.errors import BackendUnavailableError, PackageError
from fer_edge.fileio import sha256_file
from fer_edge.package import InputSpec, ModelPackage, Sidecar, sidecar_path_for


class TorchEngine(Engine):
    """An eval-mode ``nn.Module`` under ``torch.inference_mode`` (read-only, so thread-safe)."""

    backend = "torch"

    def __init__(self, package: ModelPackage, model: Any, device: str | None = None) -> None:
        import torch

        super().__init__(package, package.sidecar.batch.max)
        self.device = torch.device(device or "cpu")
        self.model = model.to(self.device).eval()

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            logits = self.model(torch.from_numpy(batch).to(self.device))
        return np.asarray(logits.float().cpu().numpy())


def _sidecar_from_meta(path: Path, meta: dict[str, Any]) -> Sidecar:
    """An in-memory sidecar for a bare checkpoint, from the metadata every checkpoint carries."""
    try:
        spec: InputSpec = meta["input_spec"]  # load_checkpoint has already parsed it
        return Sidecar(model_id=str(meta["model_id"]), variant=str(meta["variant"]), classes=tuple(meta["classes"]),
                       input=spec, format="torch", file=path.name,
                       sha256=sha256_file(path), metrics=dict(meta.get("metrics") or {}),
                       training=dict(meta.get("training") or {}))
    except (KeyError, TypeError) as exc:
        raise PackageError(f"checkpoint {path} lacks metadata the runtime needs: {exc}") from exc


@register_backend
class TorchManager(BackendManager):
    name = "torch"
    formats = ("torch",)
    module = "torch"

    @classmethod
    def _require(cls) -> None:
        if not cls.is_available():
            raise BackendUnavailableError("PyTorch is not installed: pip install 'fer_edge[train]'")

    @classmethod
    def load(cls, package: ModelPackage, device: str | None = None) -> Engine:
        cls._require()
        cls.check_format(package)
        from fer_edge.training.checkpoint import load_checkpoint

        model, _ = load_checkpoint(package.model_path)
        return TorchEngine(package, model, device)

    @classmethod
    def load_checkpoint(cls, path: str | os.PathLike[str], device: str | None = None) -> Engine:
        """An engine straight from a ``.pt`` checkpoint (no sidecar needed: the checkpoint has one inside)."""
        cls._require()
        from fer_edge.training.checkpoint import load_checkpoint

        checkpoint = Path(path).resolve()
        model, meta = load_checkpoint(checkpoint)
        package = ModelPackage(_sidecar_from_meta(checkpoint, meta), checkpoint, sidecar_path_for(checkpoint))
        return TorchEngine(package, model, device)
