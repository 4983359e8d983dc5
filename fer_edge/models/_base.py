"""The API every zoo model shares: ``default_cfg``, input checks, ``forward`` vs ``forward_train``.

Why one base: export, training and the CLI treat all four families alike. ``forward`` returns
only the logits (the exported graph's one output); ``forward_train`` returns the dict with the
auxiliary outputs the losses need, so no model has a mode flag that changes its outputs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fer_edge.errors import InvalidInputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GRAY_MEAN = (0.5, 0.5, 0.5)
GRAY_STD = (0.5, 0.5, 0.5)
DEFAULT_SIZES = {"paper": (224, 224), "edge": (112, 112)}


class ZooModel(nn.Module):
    """Base class: subclasses implement :meth:`forward_outputs` and set ``num_features``.

    ``num_features`` is the width of ``forward_train(x)["features"]`` (center / region losses).

    ``paper`` sizes expect ImageNet-normalised RGB (as their papers' backbones); ``edge`` sizes
    are trained from scratch on gray faces normalised to [-1, 1] (the FER+ default).
    """

    min_size = 32
    num_features: int

    def __init__(self, model_id: str, variant: str, num_classes: int, in_size: tuple[int, int] | None) -> None:
        super().__init__()
        size = in_size or DEFAULT_SIZES[variant]
        if min(size) < self.min_size:
            raise InvalidInputError(f"{model_id} needs in_size >= {self.min_size}, got {size}")
        gray = variant == "edge"
        self.num_classes = num_classes
        self.default_cfg: dict[str, Any] = {
            "model_id": model_id,
            "variant": variant,
            "num_classes": num_classes,
            "in_size": tuple(size),
            "mean": GRAY_MEAN if gray else IMAGENET_MEAN,
            "std": GRAY_STD if gray else IMAGENET_STD,
            "color": "gray" if gray else "rgb",
        }

    def check_input(self, x: torch.Tensor) -> None:
        """Reject tensors that are not float NCHW with 3 channels and at least ``min_size`` pixels."""
        if torch.jit.is_tracing():  # shapes are fixed while tracing; comparing them only adds warnings
            return
        if not isinstance(x, torch.Tensor):
            raise InvalidInputError(f"expected a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 4:
            raise InvalidInputError(f"expected a 4-D NCHW batch (B, 3, H, W), got shape {tuple(x.shape)}")
        if x.shape[1] != 3:
            raise InvalidInputError(f"expected 3 input channels (gray is replicated), got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise InvalidInputError(f"expected a floating-point tensor, got {x.dtype}")
        if min(x.shape[2], x.shape[3]) < self.min_size:
            raise InvalidInputError(f"input {tuple(x.shape[2:])} is smaller than this model's minimum {self.min_size}")

    @property
    def arch_kwargs(self) -> dict[str, Any]:
        """Constructor arguments beyond id, variant, size and classes that shape this model's
        computation. Checkpoints record them, so weights rebuild into the architecture they were
        trained in even after a variant's defaults change."""
        return {}

    def forward_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        raise NotImplementedError

    def forward_train(self, x: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """Logits plus the auxiliary outputs the losses need ("features" and per-model extras)."""
        self.check_input(x)
        return self.forward_outputs(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.forward_train(x)["logits"]
        assert isinstance(logits, torch.Tensor)
        return logits
