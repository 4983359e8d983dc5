"""Training losses of the zoo's papers, as ``nn.Module``s the training loop composes per recipe.

- :class:`SoftTargetCrossEntropy` — cross-entropy on class indices or on vote distributions
  (FER+ soft labels are worth about a point, FACTS.md).
- :class:`CenterLoss` — FAER's auxiliary loss (seeds/003): pull features to learnt class centres;
  the paper weights it by lambda = :data:`CENTER_LOSS_LAMBDA` (the recipe applies the weight).
- :class:`RegionIndependenceLoss` — han_pff's auxiliary loss (seeds/000): center pull plus a
  push that keeps class centres at least a margin apart.
- :class:`FocalLoss` — FAER's 40 CelebA attributes (binary, multi-label), gamma = 2.
- :func:`joint_loss` — local_joint's sum of the four quadrant cross-entropies (seeds/001).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CENTER_LOSS_LAMBDA = 0.01  # FAER's weight of the center loss against cross-entropy (seeds/003)


class SoftTargetCrossEntropy(nn.Module):
    """Cross-entropy whose target is class indices (B,) or a probability distribution (B, K).

    Distributions need not be normalised (raw vote counts are divided by their sum); label
    smoothing applies to index targets only, as in ``F.cross_entropy``.
    """

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.ndim == 1:
            return F.cross_entropy(logits, target, label_smoothing=self.label_smoothing)
        if target.shape != logits.shape:
            raise ValueError(
                f"soft targets must have the logits' shape {tuple(logits.shape)}, got {tuple(target.shape)}"
            )
        probs = target / target.sum(dim=1, keepdim=True).clamp_min(1e-12)
        return -(probs * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def _hard_labels(target: torch.Tensor) -> torch.Tensor:
    """Class indices from index targets or from soft targets (their argmax)."""
    return target if target.ndim == 1 else target.argmax(dim=1)


class CenterLoss(nn.Module):
    """Center loss (Wen et al. 2016) as used by FAER: ``mean_i ||f_i - c_{y_i}||^2 / 2``.

    The centres are parameters learnt with the model (the optimizer moves them towards the
    features of their class). Unweighted: the total is ``CE + CENTER_LOSS_LAMBDA * this``, the
    weight living in the training recipe so it is set in one place.
    """

    def __init__(self, num_classes: int, feat_dim: int) -> None:
        super().__init__()
        self.centers = nn.Parameter(torch.randn(num_classes, feat_dim) * 0.01)

    def forward(self, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        centers = self.centers[_hard_labels(target)]
        return 0.5 * (features - centers).pow(2).sum(dim=1).mean()


class RegionIndependenceLoss(nn.Module):
    """han_pff's region independence loss: intra-class pull + inter-class centre push.

    ``pull = mean_i ||f_i - c_{y_i}||^2 / 2``; ``push = mean over centre pairs of
    relu(margin - ||c_j - c_k||)^2``, so centres closer than ``margin`` are driven apart;
    ``loss = pull + push`` (the recipe weights it against cross-entropy). The summary gives no
    constants: margin 1.0 on L2-normalised features and centres, so the loss is scale-free.
    """

    def __init__(self, num_classes: int, feat_dim: int, margin: float = 1.0) -> None:
        super().__init__()
        self.centers = nn.Parameter(torch.randn(num_classes, feat_dim))
        self.margin = margin

    def forward(self, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        f = F.normalize(features, dim=1)
        c = F.normalize(self.centers, dim=1)
        pull = 0.5 * (f - c[_hard_labels(target)]).pow(2).sum(dim=1).mean()
        k = c.shape[0]
        pair = ~torch.eye(k, dtype=torch.bool, device=c.device)
        dist = torch.cdist(c, c)[pair]
        push = F.relu(self.margin - dist).pow(2).mean()
        return pull + push


class FocalLoss(nn.Module):
    """Binary focal loss (Lin et al. 2017) over multi-label logits, FAER's attribute task.

    ``FL = -alpha_t * (1 - p_t)^gamma * log(p_t)`` per attribute, averaged; gamma = 2 (the
    paper's value) down-weights the easy attributes that dominate CelebA. Targets are 0/1.
    As eq. 7 of seeds/003, the terms are summed over the attributes and averaged over the batch.
    """

    def __init__(self, gamma: float = 2.0, alpha: float | None = None) -> None:
        super().__init__()
        self.gamma = gamma
        self.alpha = alpha

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.to(logits.dtype)
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        p_t = torch.exp(-bce)
        loss = (1 - p_t).pow(self.gamma) * bce
        if self.alpha is not None:
            loss = loss * (self.alpha * target + (1 - self.alpha) * (1 - target))
        return loss.sum(dim=1).mean()


def joint_loss(region_logits: list[torch.Tensor], target: torch.Tensor, criterion: nn.Module) -> torch.Tensor:
    """local_joint's joint loss: the sum of ``criterion`` over the four quadrant classifiers."""
    return torch.stack([criterion(z, target) for z in region_logits]).sum()
