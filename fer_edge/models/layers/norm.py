"""FP16-safe reductions shared by the attention layers and the channels-first LayerNorm.

Why: a plain ``x.mean()`` over a plane, or ``(x - u).pow(2).sum()``, overflows float16 (max
65504) once activations reach a few hundred; TensorRT FP16 engines then emit inf/NaN
(MODELS.md, "FP16 hazards"). The helpers here divide *before* summing so every intermediate is
bounded by the input's magnitude, and stay algebraically identical to the textbook formulas in
FP32.
"""

from __future__ import annotations

import torch
from torch import nn


def safe_mean(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """Mean over ``dims`` (kept) computed as a sum of pre-scaled values, bounded by max|x|."""
    count = 1
    for d in dims:
        count *= x.shape[d]
    return (x * (1.0 / count)).sum(dim=dims, keepdim=True)


def centred_scaled(x: torch.Tensor, dims: tuple[int, ...], eps: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(d / s, s)`` with ``d = x - mean(x)`` over ``dims`` and ``s = max(max|d|, eps)``.

    ``d / s`` lies in [-1, 1], so squares and their sums stay finite in float16; callers fold
    ``s`` back in algebraically (any positive ``s`` gives the same result in exact arithmetic,
    ``eps`` only avoids 0/0 on constant planes).
    """
    d = x - safe_mean(x, dims)
    s = d.abs().amax(dim=dims, keepdim=True).clamp_min(eps)
    return d / s, s


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of an NCHW tensor (ConvNeXt's "channels_first" LayerNorm).

    ConvNeXt's reference computes ``(x - u).pow(2).mean(1)``, which overflows in FP16; here the
    centred values are divided by their max-abs before squaring: with ``d' = d / s``,
    ``d / sqrt(var + eps) = d' / sqrt(mean(d'^2) + (sqrt(eps) / s)^2)``.
    """

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d, s = centred_scaled(x, (1,))
        var = safe_mean(d * d, (1,)) + (self.eps**0.5 / s) ** 2
        y = d / torch.sqrt(var)
        return y * self.weight[:, None, None] + self.bias[:, None, None]
