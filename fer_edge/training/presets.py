"""Training recipes: the seeds' per-model recipes, plus ``fast`` for CPU training of the default.

A :class:`Recipe` says which optimizer, schedule and loss terms a run uses; :func:`recipe_for`
picks the model's paper recipe (``--recipe paper``, the default) or ``fast``. The loss terms come
from :mod:`fer_edge.training.losses`; :class:`TrainObjective` bundles the model with its
learnable loss state (center-loss centers), so DistributedDataParallel syncs both.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from fer_edge.errors import InvalidInputError
from fer_edge.training.augment import Augment
from fer_edge.training.losses import (
    CENTER_LOSS_LAMBDA,
    CenterLoss,
    RegionIndependenceLoss,
    SoftTargetCrossEntropy,
    joint_loss,
)

BACKBONE_PREFIXES = ("stem", "stages", "extractor")  # the zoo's backbone modules (FAER: lr / 100)


@dataclass(frozen=True)
class Recipe:
    """One training recipe. ``schedule``: ``steps`` (x0.1 at ``milestones`` fractions of the run),
    ``exponential`` (x``gamma`` per epoch), ``cosine`` (per epoch) or ``onecycle`` (per step)."""

    name: str
    optimizer: str = "sgd"  # "sgd" | "adamw"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    backbone_lr_scale: float = 1.0  # backbone lr = lr * this (FAER: 1/100)
    schedule: str = "steps"
    milestones: tuple[float, ...] = (0.3, 0.6, 0.9)  # of the epoch count (30/60/90 of 100)
    gamma: float = 0.1
    label_smoothing: float = 0.0
    center_loss: float = 0.0  # weight of the center loss on "features" (FAER: 0.01)
    region_independence: float = 0.0  # weight of the region-independence loss (han_pff)
    level_supervision: float = 0.0  # weight of the mean CE of the shared classifier over the levels (han_pff)
    joint: bool = False  # local_joint: the loss is the sum of the 4 quadrant CEs (decision fusion at inference)
    augment: Augment = field(default_factory=Augment)


PAPER: dict[str, Recipe] = {
    "simam_resnet": Recipe("simam_resnet", "sgd", 1e-3, 0.9, 1e-4, schedule="steps"),
    "faer": Recipe("faer", "adamw", 2.5e-4, weight_decay=1e-2, backbone_lr_scale=0.01, schedule="exponential",
                   gamma=0.95, center_loss=CENTER_LOSS_LAMBDA),
    # seeds 000/001 give the losses, not the optimiser: SGD + cosine where they are silent
    "han_pff": Recipe("han_pff", "sgd", 1e-2, schedule="cosine", region_independence=1.0, level_supervision=0.5),
    "local_joint": Recipe("local_joint", "sgd", 1e-2, schedule="cosine", joint=True),
}
# CPU-friendly, from scratch: AdamW + one-cycle, label smoothing (index targets); full lr everywhere
# (the paper's backbone lr / 100 assumes a pretrained backbone, which cannot be downloaded here)
FAST = Recipe("fast", "adamw", 2e-3, weight_decay=0.05, schedule="onecycle", label_smoothing=0.1)


def recipe_for(model_id: str, name: str = "paper", lr: float | None = None,
               pretrained_backbone: bool = False) -> Recipe:
    """The ``paper`` recipe of ``model_id`` (keeping its auxiliary loss terms) or the ``fast`` one.

    A paper's reduced backbone learning rate (FAER: lr / 100) is for fine-tuning pretrained
    weights; a backbone trained from scratch (``pretrained_backbone=False``, the only kind this
    project can train: nothing is downloaded) gets the full rate.
    """
    if name not in ("paper", "fast"):
        raise InvalidInputError(f"unknown recipe {name!r}: choose 'paper' or 'fast'")
    base = PAPER.get(model_id, PAPER["simam_resnet"])
    if name == "fast":
        base = replace(FAST, center_loss=base.center_loss, region_independence=base.region_independence,
                       joint=base.joint, level_supervision=base.level_supervision)
    if not pretrained_backbone:
        base = replace(base, backbone_lr_scale=1.0)
    return replace(base, lr=lr) if lr else base


class TrainObjective(nn.Module):
    """Model + the recipe's loss terms: ``forward(x, target) -> (loss, logits)``.

    ``target`` is class indices (B,) or vote distributions (B, C). Learnable loss state (centres)
    lives here, so the optimizer and DistributedDataParallel see it with the model.

    han_pff's auxiliary terms act on every level, not only on the fused vector: the shared
    classifier is trained on each level's pooled vector (``level_supervision`` x the mean CE), and
    the region-independence loss keeps each level's vectors (own centres per level) and the fused
    vector compact and apart per class (weight ``region_independence`` x the mean over them).
    """

    def __init__(self, model: nn.Module, recipe: Recipe, num_classes: int) -> None:
        super().__init__()
        self.model, self.recipe = model, recipe
        self.ce = SoftTargetCrossEntropy(recipe.label_smoothing)
        feat_dim = int(getattr(model, "num_features", 0))
        self.center = CenterLoss(num_classes, feat_dim) if recipe.center_loss else None
        levels = int(getattr(model, "num_levels", 0))  # han_pff: one vector per attention level
        self.independence = (nn.ModuleList(RegionIndependenceLoss(num_classes, feat_dim) for _ in range(1 + levels))
                             if recipe.region_independence else None)

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out: dict[str, Any] = self.model.forward_train(x)  # type: ignore[operator]
        logits = out["logits"]
        if self.recipe.joint:
            loss = joint_loss([z.float() for z in out["region_logits"]], target, self.ce)
        else:
            loss = self.ce(logits.float(), target)
        if self.center is not None:
            loss = loss + self.recipe.center_loss * self.center(out["features"].float(), target)
        if self.recipe.level_supervision:
            level_ce = torch.stack([self.ce(z.float(), target) for z in out["level_logits"]]).mean()
            loss = loss + self.recipe.level_supervision * level_ce
        if self.independence is not None:
            vectors = [out["features"], *out.get("level_features", [])]
            terms = [term(v.float(), target) for term, v in zip(self.independence, vectors)]
            loss = loss + self.recipe.region_independence * torch.stack(terms).mean()
        return loss, logits


def build_optimizer(objective: TrainObjective, recipe: Recipe) -> torch.optim.Optimizer:
    """Parameter groups: heads and loss state at ``lr``, the backbone at ``lr * backbone_lr_scale``;
    no weight decay on biases and norm scales."""
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    for name, param in objective.named_parameters():
        if not param.requires_grad:
            continue
        is_backbone = name.removeprefix("model.").startswith(BACKBONE_PREFIXES) and name.startswith("model.")
        lr = recipe.lr * (recipe.backbone_lr_scale if is_backbone else 1.0)
        decay = 0.0 if param.ndim <= 1 else recipe.weight_decay
        groups.setdefault((lr, decay), []).append(param)
    params = [{"params": p, "lr": lr, "weight_decay": wd} for (lr, wd), p in groups.items()]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, nesterov=True)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=recipe.lr)
    raise InvalidInputError(f"unknown optimizer {recipe.optimizer!r}")


def build_scheduler(optimizer: torch.optim.Optimizer, recipe: Recipe, epochs: int, steps_per_epoch: int
                    ) -> tuple[torch.optim.lr_scheduler.LRScheduler, bool]:
    """The recipe's schedule and whether it steps per batch (True) or per epoch (False)."""
    if recipe.schedule == "onecycle":
        max_lr = [group["lr"] for group in optimizer.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, epochs=epochs,
                                                   steps_per_epoch=max(1, steps_per_epoch), pct_start=0.15), True
    if recipe.schedule == "steps":
        milestones = sorted({max(1, round(epochs * m)) for m in recipe.milestones})
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, recipe.gamma), False
    if recipe.schedule == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, recipe.gamma), False
    if recipe.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs)), False
    raise InvalidInputError(f"unknown schedule {recipe.schedule!r}")
