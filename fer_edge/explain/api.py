"""``explain(model, crops)``: Grad-CAM heatmaps of aligned face crops, plus the model's answer.

PyTorch only (the runtime never imports this): the heatmap needs gradients, which an ONNX or
TensorRT package does not have. Crops go through the same :func:`preprocess` as everywhere else,
so the explained input is exactly the one the model classifies.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from fer_edge.constants import classes_for
from fer_edge.errors import InvalidInputError
from fer_edge.explain.cam import class_activation_maps, find_layer
from fer_edge.package import InputSpec
from fer_edge.vision.preprocess import preprocess


@dataclass(frozen=True)
class Explanation:
    """One crop: ``heatmap`` (H, W) float32 in [0, 1] sized like the crop, for class ``target``,
    and the model's ``probabilities`` (``top`` holds the three highest, best first)."""

    heatmap: np.ndarray
    target: str
    probabilities: dict[str, float]

    @property
    def top(self) -> list[tuple[str, float]]:
        return sorted(self.probabilities.items(), key=lambda kv: -kv[1])[:3]


def spec_of(model: nn.Module) -> InputSpec:
    """The input spec a zoo model was built for (its ``default_cfg``; zoo models use the fer2013 framing)."""
    cfg = getattr(model, "default_cfg", None)
    if not isinstance(cfg, dict):
        raise InvalidInputError(f"{type(model).__name__} is not a zoo model (no default_cfg); pass spec=")
    return InputSpec.from_dict({"size": cfg["in_size"], "color": cfg["color"], "mean": cfg["mean"],
                                "std": cfg["std"], "alignment": "fer2013"})


def default_layer(model: nn.Module) -> str:
    """The registry's Grad-CAM layer for this zoo model."""
    from fer_edge.models import cam_layer

    cfg = getattr(model, "default_cfg", None)
    if not isinstance(cfg, dict) or "model_id" not in cfg:
        raise InvalidInputError(f"{type(model).__name__} is not a zoo model; name its target layer (layer=)")
    return cam_layer(str(cfg["model_id"]))


def load_model(ref: str | os.PathLike[str]) -> tuple[nn.Module, InputSpec]:
    """A zoo id (its shipped trained weights) or a fer_edge checkpoint ``.pt``, with its input spec."""
    path = Path(ref)
    if path.suffix == ".pt" or path.exists():
        from fer_edge.training.checkpoint import load_checkpoint

        model, meta = load_checkpoint(path)
        return model, meta["input_spec"]
    from fer_edge.models import create_model
    from fer_edge.models.pretrained import pretrained_package

    package = pretrained_package(str(ref))
    return create_model(str(ref), pretrained=True).eval(), package.sidecar.input


def explain(model: nn.Module, crops: Sequence[np.ndarray] | np.ndarray, layer: str | None = None,
            method: str = "gradcam", targets: Sequence[str] | None = None, spec: InputSpec | None = None,
            batch_size: int = 64) -> list[Explanation]:
    """Heatmaps of ``crops`` (aligned uint8 faces, BGR or gray, any size) under ``model``.

    ``layer``: dotted submodule name (default: the registry's for zoo models). ``method``:
    ``"gradcam"`` or ``"gradcam++"``. ``targets``: the class to explain per crop (default: the
    model's top class). ``spec`` defaults to the zoo model's own.
    """
    if isinstance(crops, np.ndarray) and (crops.ndim == 2 or (crops.ndim == 3 and crops.shape[-1] in (3, 4))):
        crops = [crops]
    spec = spec or spec_of(model)
    target_layer = find_layer(model, layer or default_layer(model))
    classes = classes_for(int(getattr(model, "num_classes", 7)))
    if targets is not None and (len(targets) != len(crops) or any(t not in classes for t in targets)):
        raise InvalidInputError(f"targets must name one of {classes} per crop")
    out: list[Explanation] = []
    for start in range(0, len(crops), batch_size):
        chunk = list(crops[start:start + batch_size])
        batch = torch.from_numpy(preprocess(chunk, spec))
        wanted = None if targets is None else [classes.index(t) for t in targets[start:start + batch_size]]
        maps, probs = class_activation_maps(model, batch, target_layer, wanted, method)
        for crop, heat, p, k in zip(chunk, maps, probs, wanted or probs.argmax(axis=1)):
            out.append(Explanation(_resize(heat, crop.shape[:2]), classes[int(k)], dict(zip(classes, map(float, p)))))
    return out


def _resize(heat: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if heat.shape == shape[:2]:
        return heat
    return np.asarray(cv2.resize(heat, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR).clip(0, 1), np.float32)


def heat_fraction(heatmaps: Sequence[np.ndarray] | np.ndarray, mask: np.ndarray) -> float:
    """Share of the total heat of ``heatmaps`` that falls inside boolean ``mask`` (a uniform map gives ``mask.mean()``)."""
    stack = np.asarray(heatmaps, dtype=np.float64).reshape(-1, *mask.shape)
    total = stack.sum()
    if total <= 0:
        raise InvalidInputError("the heatmaps hold no heat at all; nothing to attribute")
    return float((stack * mask).sum() / total)
