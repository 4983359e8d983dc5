"""Channel / spatial attention blocks of the zoo's papers (CA, ECA, mixed, local context).

Every global pooling goes through :func:`fer_edge.models.layers.norm.safe_mean` so FP16 engines
cannot overflow in the reduction (MODELS.md, "FP16 hazards"). Linears over channels are 1x1
convs, so all tensors stay NCHW.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from fer_edge.models.layers.norm import safe_mean


class CA(nn.Module):
    """Channel attention of Hu et al. 2024 (seeds/002, section 1.1, figure 1).

    A conv maps X to Y; GAP(Y) + GMP(Y) (added, "to make up for the spatial information lost
    when moving into the channels") -> FC -> ELU -> FC -> sigmoid gives channel weights Z; the
    output is Y * Z. The paper leaves the conv kernel and the reduction ratio open: 3x3 conv
    with BatchNorm by default, ratio 4 (at least 8 hidden channels).
    """

    def __init__(self, in_chs: int, out_chs: int | None = None, reduction: int = 4, kernel_size: int = 3) -> None:
        super().__init__()
        out_chs = out_chs or in_chs
        hidden = max(out_chs // reduction, 8)
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_chs)
        self.fc1 = nn.Conv2d(out_chs, hidden, 1)
        self.act = nn.ELU()
        self.fc2 = nn.Conv2d(hidden, out_chs, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(x))
        pooled = safe_mean(y, (2, 3)) + y.amax(dim=(2, 3), keepdim=True)
        z = torch.sigmoid(self.fc2(self.act(self.fc1(pooled))))
        return y * z


class ECA(nn.Module):
    """Efficient Channel Attention (Wang et al. 2020), local_joint's global feature enhancement.

    seeds/001 (Method): ECA re-weights the channels of the global feature map through local
    cross-channel interaction — a 1-D conv of adaptive size k over the pooled channel vector —
    suppressing channels that only serve face recognition. ``k = odd(|log2(C) / 2 + 1 / 2|)``.
    """

    def __init__(self, chs: int) -> None:
        super().__init__()
        k = int(abs(math.log2(chs) / 2 + 0.5))
        k = k if k % 2 else k + 1
        self.conv = nn.Conv1d(1, 1, k, padding=k // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = safe_mean(x, (2, 3)).flatten(2).transpose(1, 2)  # (B, 1, C)
        w = torch.sigmoid(self.conv(pooled)).transpose(1, 2).unsqueeze(-1)  # (B, C, 1, 1)
        return x * w


class MixedAttention(nn.Module):
    """Channel then spatial attention on one quadrant (seeds/001, local feature joint learning).

    The paper names a "mixed attention mechanism" without details; this is CBAM's form (Woo et
    al. 2018): avg+max pooled channel MLP gate, then a 7x7 conv gate over the channel-wise mean
    and max maps.
    """

    def __init__(self, chs: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(chs // reduction, 8)
        self.fc1 = nn.Conv2d(chs, hidden, 1)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, chs, 1)
        self.spatial = nn.Conv2d(2, 1, 7, padding=3)

    def _mlp(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(pooled)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * torch.sigmoid(self._mlp(safe_mean(x, (2, 3))) + self._mlp(x.amax(dim=(2, 3), keepdim=True)))
        maps = torch.cat([safe_mean(x, (1,)), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(maps))


class LocalContextAttention(nn.Module):
    """Local context attention refining FAB's local branch (Tao et al. 2024, section 3.2 (FAB)).

    The summary names it without a formula; here each position is gated by its 3x3
    neighbourhood: ``x * sigmoid(BN(Conv1x1(DWConv3x3(x))))`` — a per-channel, per-position
    weight computed from local context only.
    """

    def __init__(self, chs: int) -> None:
        super().__init__()
        self.context = nn.Conv2d(chs, chs, 3, padding=1, groups=chs, bias=False)
        self.proj = nn.Conv2d(chs, chs, 1, bias=False)
        self.bn = nn.BatchNorm2d(chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.bn(self.proj(self.context(x))))
