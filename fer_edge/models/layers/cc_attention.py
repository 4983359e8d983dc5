"""Contextual Channel Attention (CC Attention) of FAER (Xu et al. 2025; seeds/003, section 2.2).

On X (B, C, H, W), all NCHW (the paper's Linears over channels are 1x1 convs):
``Q = LN(GELU(Conv_kxk(X)))`` (grouped, k = 7, groups = 4 in the authors' code) — static local
context; ``K = Linear(GELU(Linear(X)))`` (C -> C/8 -> C) — dynamic channel weights;
``K' = K * AvgPool(X)`` — dynamic global context; ``V = Linear(X)``; the output is
``X + softmax_HW(K' + Q) * V`` with the softmax over spatial positions, per channel.

The parameter-free tail (pool, ``K * pool``, ``+ Q``, spatial softmax, ``* V``, ``+ X``) is
:class:`CCAttentionCore`, the plugin seam that export replaces with one ``CCAttention_TRT``
node; the projections stay standard convs outside it.
"""

from __future__ import annotations

import torch
from torch import nn

from fer_edge.models.layers.norm import LayerNorm2d, safe_mean


class CCAttentionCore(nn.Module):
    """``X + softmax_HW(K * mean_HW(X) + Q) * V`` on four NCHW tensors of one shape.

    FP16: ``K * mean(X)`` reaches 1e6 for inputs of 1e3 (float16 max is 65504) and a softmax is
    not invariant to rescaling its input, so the logits and the softmax are computed in float32
    (a no-op for float32 inputs) and only the bounded product ``R * V`` returns to the input
    dtype — the same FP32 accumulation the TensorRT plugin uses.
    """

    plugin_op = "CCAttention_TRT"

    def plugin_attrs(self) -> dict[str, float]:
        """The ``CCAttention_TRT`` node has no attributes (version "1")."""
        return {}

    def forward(self, x: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        logits = k.float() * safe_mean(x.float(), (2, 3)) + q.float()
        r = torch.softmax(logits.flatten(2), dim=-1).view_as(logits)
        return x + (r * v.float()).to(x.dtype)


class CCAttention(nn.Module):
    """The full CC Attention block: Q/K/V projections around :class:`CCAttentionCore`."""

    def __init__(self, dim: int, kernel_size: int = 7, groups: int = 4, k_reduction: int = 8) -> None:
        super().__init__()
        if dim % groups:
            raise ValueError(f"CCAttention dim {dim} must be divisible by groups {groups}")
        hidden = max(dim // k_reduction, 8)
        self.q_conv = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=groups)
        self.q_act = nn.GELU()
        self.q_norm = LayerNorm2d(dim)
        self.k_fc1 = nn.Conv2d(dim, hidden, 1)
        self.k_act = nn.GELU()
        self.k_fc2 = nn.Conv2d(hidden, dim, 1)
        self.v_proj = nn.Conv2d(dim, dim, 1)
        self.core = CCAttentionCore()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.q_norm(self.q_act(self.q_conv(x)))
        k = self.k_fc2(self.k_act(self.k_fc1(x)))
        return self.core(x, q, k, self.v_proj(x))
