"""Checkpoints that carry everything export needs (docs/DEV_CONTRACTS.md, "Checkpoints").

A checkpoint is a ``.pt`` dict with the model id, variant, classes, input spec and constructor
kwargs beside the weights, so :func:`load_checkpoint` rebuilds the model from the file alone.
Training state (optimizer, scheduler, RNG states, epoch) rides along in ``last.pt`` for resume.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from fer_edge.constants import classes_for
from fer_edge.errors import ModelNotFoundError, PackageError
from fer_edge.fileio import atomic_path
from fer_edge.package import InputSpec, ModelPackage, Sidecar, write_package

FORMAT = "fer_edge.checkpoint/1"
TRAINING_STATE = ("optimizer", "scheduler", "rng", "objective", "history", "best_accuracy")
# Architecture arguments whose variant default changed, with the value that checkpoints written
# before models recorded them (``ZooModel.arch_kwargs``) were trained with.
LEGACY_MODEL_KWARGS: dict[tuple[str, str], dict[str, Any]] = {
    ("faer", "edge"): {"stem_stride": 4},  # the edge stem went from 4x4/4 to overlapping 4x4/2 (2026-12-07)
}


def recorded_model_kwargs(data: dict[str, Any]) -> dict[str, Any]:
    """The constructor kwargs checkpoint ``data`` was trained with: what it records, over the
    legacy values its model id and variant imply when it predates the recording."""
    legacy = LEGACY_MODEL_KWARGS.get((str(data.get("model_id")), str(data.get("variant"))), {})
    return {**legacy, **dict(data.get("model_kwargs") or {})}


def checkpoint_meta(model_id: str, variant: str, num_classes: int, spec: InputSpec,
                    model_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """The metadata part of a checkpoint (everything except weights and training state)."""
    return {
        "format": FORMAT,
        "model_id": model_id,
        "variant": variant,
        "num_classes": num_classes,
        "classes": list(classes_for(num_classes)),
        "in_size": list(spec.size),
        "input_spec": {"size": list(spec.size), "color": spec.color, "mean": list(spec.mean),
                       "std": list(spec.std), "alignment": spec.alignment, "name": spec.name,
                       "layout": spec.layout},
        "model_kwargs": dict(model_kwargs or {}),
    }


def save_checkpoint(path: str | os.PathLike[str], model: torch.nn.Module, meta: dict[str, Any],
                    **state: Any) -> Path:
    """Write ``meta`` + the model's weights + any extra ``state`` (metrics, training, epoch,
    optimizer, scheduler, rng, ...) atomically to ``path``."""
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    payload = {**meta, **state, "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The raw checkpoint dict, format-checked."""
    file = Path(path)
    if not file.is_file():
        raise ModelNotFoundError(f"checkpoint {file} does not exist")
    try:
        data = torch.load(file, map_location="cpu", weights_only=False)
    except Exception as exc:  # a truncated or foreign file: torch raises many types
        raise PackageError(f"cannot read checkpoint {file}: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise PackageError(f"{file} is not a fer_edge checkpoint (format {FORMAT!r}); "
                           "train it with `fer-edge train`")
    return data


def checkpoint_from(source: str | os.PathLike[str], variant: str = "edge") -> dict[str, Any]:
    """The checkpoint dict of ``source``: a checkpoint file, or the id of a model whose trained
    weights ship (``variant`` of it), checksum verified."""
    if Path(source).is_file():
        return read_checkpoint(source)
    from fer_edge.models.pretrained import pretrained_checkpoint

    return pretrained_checkpoint(str(source), variant)


def model_from(data: dict[str, Any], state_dict: dict[str, torch.Tensor] | None = None) -> torch.nn.Module:
    """The model a checkpoint dict describes (id, variant, classes, size, kwargs), holding its weights
    in float32, or ``state_dict`` in their place (averaged weights)."""
    from fer_edge.models import create_model

    model = create_model(data["model_id"], num_classes=data["num_classes"], variant=data["variant"],
                         in_size=tuple(data["in_size"]), **recorded_model_kwargs(data))
    weights = data["state_dict"] if state_dict is None else state_dict
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in weights.items()})
    return model


def provenance(source: str | os.PathLike[str], data: dict[str, Any]) -> dict[str, Any]:
    """Where the weights of checkpoint ``data`` (read from ``source``) came from: what a run that
    starts from or averages them records, so a shipped card can trace every run behind it."""
    training = data.get("training") or {}
    return {"weights": os.fspath(source), "epoch": data.get("epoch"), "metrics": data.get("metrics"),
            "config": training.get("config"), "initialised_from": training.get("initialised_from")}


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the model from the checkpoint's metadata and load its weights (eval mode).

    Returns ``(model, meta)``; ``meta`` is the checkpoint dict without the weights and optimizer
    state, with ``input_spec`` as an :class:`InputSpec`.
    """
    data = read_checkpoint(path)
    model = model_from(data)
    model.eval()
    skip = ("state_dict", "optimizer", "scheduler", "rng")
    meta = {k: v for k, v in data.items() if k not in skip}
    meta["input_spec"] = InputSpec.from_dict(data["input_spec"])
    return model, meta


def release_checkpoint(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> ModelPackage:
    """A shippable torch package from a training checkpoint: weights stored as float16 (half the
    file; the model loads them into float32), the training state dropped, and a sidecar (format
    ``torch``) with the checksum, the input spec and how the weights were trained and selected.

    Both files are written atomically; metrics measured on the package are added to the sidecar
    later (``fer-edge eval --record``).
    """
    data = read_checkpoint(src)
    payload = {k: v for k, v in data.items() if k not in TRAINING_STATE and k != "state_dict"}
    payload["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in data["state_dict"].items()}
    out = Path(dst)
    with atomic_path(out) as tmp:
        torch.save(payload, tmp)
    training = {**dict(data.get("training") or {}), "epoch": data.get("epoch"),
                "selection": dict(data.get("metrics") or {}), "weights_storage": {"dtype": "float16"}}
    sidecar = Sidecar(model_id=str(data["model_id"]), variant=str(data["variant"]), classes=tuple(data["classes"]),
                      input=InputSpec.from_dict(data["input_spec"]), format="torch", file=out.name,
                      training=training)
    return write_package(out, sidecar)
