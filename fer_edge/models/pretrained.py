"""Trained weights that ship inside fer_edge, as timm's ``pretrained=True`` but offline.

Each shipped model is a torch package in ``fer_edge/data/models/``: ``<id>.pt`` (a training
checkpoint, weights stored as float16 to halve the file) and its sidecar ``<id>.json`` (sha256,
input spec, measured metrics, how it was trained). The sidecar's checksum is verified before
the weights are read; nothing is ever downloaded.
"""

from __future__ import annotations

from typing import Any

from fer_edge.constants import SHIPPED_MODELS_DIR
from fer_edge.errors import FerEdgeError, ModelNotFoundError
from fer_edge.package import ModelPackage, load_package


def list_pretrained() -> list[tuple[str, str]]:
    """``(model_id, variant)`` of every model whose trained weights ship with fer_edge."""
    found = []
    for path in sorted(SHIPPED_MODELS_DIR.glob("*.json")):
        try:
            side = load_package(path, verify=False).sidecar
        except FerEdgeError:
            continue
        if side.format == "torch" and path.stem == side.model_id:
            found.append((side.model_id, side.variant))
    return found


def pretrained_package(model_id: str, variant: str = "edge") -> ModelPackage:
    """The shipped torch package of ``model_id``/``variant``, checksum verified; a typed error naming
    what does ship when these weights do not."""
    path = SHIPPED_MODELS_DIR / f"{model_id}.json"
    shipped = list_pretrained()
    if (model_id, variant) not in shipped:
        names = ", ".join(f"{m} ({v})" for m, v in shipped) or "none"
        raise ModelNotFoundError(f"no trained weights ship for {model_id!r} variant {variant!r}; shipped: {names}. "
                                 "Train your own with `fer-edge train`, or ask for untrained weights explicitly")
    package = load_package(path)
    package.verify_checksum()
    return package


def pretrained_checkpoint(model_id: str, variant: str = "edge") -> dict[str, Any]:
    """The verified checkpoint dict of the shipped weights (see :func:`pretrained_package`)."""
    from fer_edge.training.checkpoint import read_checkpoint

    return read_checkpoint(pretrained_package(model_id, variant).model_path)
