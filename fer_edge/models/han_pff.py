"""han_pff: hierarchical attention network with progressive feature fusion (Tao et al. 2024).

Top-down: FAB (+ its spatial-gradient branch), DFEM, the HAM blocks AFFB / IFFB / GEB / GFFB,
the model, the registered constructor. Citations are to the Chinese summary in seeds/000
(figures 1-5); where it gives no formula, the choice is stated in the class docstring.
Backbone: ResNet-18 stages (paper size) or a width/depth-reduced one (edge).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fer_edge.models._base import ZooModel
from fer_edge.models._registry import register_model
from fer_edge.models.layers.attention import LocalContextAttention
from fer_edge.models.layers.blocks import BasicBlock, conv_bn, make_stage
from fer_edge.models.layers.norm import safe_mean


class SpatialGradient(nn.Module):
    """Illumination-robust gradient features (FAB branch 3): fixed Sobel filters, magnitude.

    A smooth change of illumination shifts intensities but barely changes their gradients. The
    magnitude is computed as ``s * sqrt((gx/s)^2 + (gy/s)^2)`` with ``s = max(|gx|, |gy|)`` so
    the squares cannot overflow in FP16; flat areas (both gradients < 1e-6) read as ~1e-8.
    """

    kernel: torch.Tensor

    def __init__(self, chs: int) -> None:
        super().__init__()
        sobel_x = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
        kernel = torch.stack([sobel_x, sobel_x.t()]).unsqueeze(1).repeat(chs, 1, 1, 1)  # (2C, 1, 3, 3)
        self.register_buffer("kernel", kernel, persistent=False)
        self.chs = chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = nn.functional.conv2d(x, self.kernel.to(x.dtype), padding=1, groups=self.chs)
        gx, gy = g[:, 0::2], g[:, 1::2]
        s = torch.maximum(gx.abs(), gy.abs()).clamp_min(1e-6)
        return s * torch.sqrt(((gx / s) ** 2 + (gy / s) ** 2).clamp_min(1e-4))  # finite grad on flat areas


class FAB(nn.Module):
    """Feature aggregation block (seeds/000, DFEM paragraph, figure 2): four branches -> one map.

    (1) local: 3x3 conv refined by :class:`LocalContextAttention`; (2) global context: global
    average pool -> 1x1 conv, broadcast over positions; (3) spatial gradient
    (:class:`SpatialGradient`) -> 1x1 conv; (4) identity. Aggregation (unspecified in the
    summary): concatenation -> 1x1 conv + BN + ReLU to the fusion width ``out_chs``.
    """

    def __init__(self, in_chs: int, out_chs: int) -> None:
        super().__init__()
        self.local = conv_bn(in_chs, in_chs, 3)
        self.local_attn = LocalContextAttention(in_chs)
        self.global_ctx = nn.Conv2d(in_chs, in_chs, 1)
        self.gradient = SpatialGradient(in_chs)
        self.gradient_proj = conv_bn(in_chs, in_chs, 1)
        self.aggregate = conv_bn(4 * in_chs, out_chs, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        local = self.local_attn(self.local(x))
        global_ctx = self.global_ctx(safe_mean(x, (2, 3))).expand_as(x)
        gradient = self.gradient_proj(self.gradient(x))
        return self.aggregate(torch.cat([local, global_ctx, gradient, x], dim=1))


class DFEM(nn.Module):
    """Diverse feature extraction module (seeds/000, figure 1): one FAB per backbone stage.

    Returns four maps of one width (low to high level) at the stages' resolutions.
    """

    def __init__(self, stage_chs: tuple[int, ...], out_chs: int) -> None:
        super().__init__()
        self.fabs = nn.ModuleList(FAB(c, out_chs) for c in stage_chs)

    def forward(self, levels: list[torch.Tensor]) -> list[torch.Tensor]:
        return [fab(x) for fab, x in zip(self.fabs, levels)]


class AFFB(nn.Module):
    """Attention feature fusion block (seeds/000, HAM paragraph, figure 3), for the large maps.

    Fuses a lower level ``a`` (brought to the next level's resolution by a strided depthwise
    conv) with the next level ``b``: a per-position, per-channel weight
    ``w = sigmoid(BN(Conv1x1([a, b])))`` enhances the useful input and suppresses the other,
    ``out = w * a + (1 - w) * b``.
    """

    def __init__(self, chs: int) -> None:
        super().__init__()
        self.down = nn.Sequential(nn.Conv2d(chs, chs, 3, 2, 1, groups=chs, bias=False), nn.BatchNorm2d(chs))
        self.weight = conv_bn(2 * chs, chs, 1, act=False)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a = self.down(a)
        w = torch.sigmoid(self.weight(torch.cat([a, b], dim=1)))
        return w * a + (1 - w) * b


class MultiScaleChannelAttention(nn.Module):
    """MS-CAM of iterative attentional feature fusion (Dai et al. 2021): a channel weight in (0, 1).

    ``w = sigmoid(L(x) + G(x))`` with a local (per-position) and a global (pooled) channel
    context, each a bottleneck ``Conv1x1 -> BN -> ReLU -> Conv1x1 -> BN`` (reduction ``r``,
    at least 8 hidden channels). Returns the weight itself, not the re-weighted map: IFFB mixes
    two inputs with it.
    """

    def __init__(self, chs: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(chs // reduction, 8)
        self.local = nn.Sequential(conv_bn(chs, hidden, 1), conv_bn(hidden, chs, 1, act=False))
        self.global_ctx = nn.Sequential(conv_bn(chs, hidden, 1), conv_bn(hidden, chs, 1, act=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.local(x) + self.global_ctx(safe_mean(x, (2, 3))))


class IFFB(nn.Module):
    """Iterative feature fusion block (seeds/000, figure 4), for the small high-level maps.

    The summary gives no formula; this is iAFF (Dai et al. 2021), the iterative channel-attention
    fusion it names: ``first = w1 * a + (1 - w1) * b`` with ``w1 = MS-CAM1(a + b)``, then the
    weight is refined on that first fusion, ``out = w2 * a + (1 - w2) * b`` with
    ``w2 = MS-CAM2(first)``. Channel attention suits small maps (few positions, many channels).
    """

    def __init__(self, chs: int) -> None:
        super().__init__()
        self.down = nn.Sequential(nn.Conv2d(chs, chs, 3, 2, 1, groups=chs, bias=False), nn.BatchNorm2d(chs))
        self.attn1 = MultiScaleChannelAttention(chs)
        self.attn2 = MultiScaleChannelAttention(chs)

    @staticmethod
    def _fuse(w: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return w * a + (1 - w) * b

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a = self.down(a)
        first = self._fuse(self.attn1(a + b), a, b)
        return self._fuse(self.attn2(first), a, b)


class GEB(nn.Module):
    """Gate unit (seeds/000, GFFB paragraph): scores one pooled feature vector's usefulness in (0, 1)."""

    def __init__(self, chs: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(chs, max(chs // 4, 8))
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(max(chs // 4, 8), 1)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc2(self.act(self.fc1(v))))


class GFFB(nn.Module):
    """Gated feature fusion block (seeds/000, figure 5): GEB1..GEB4, fused vector = gated sum."""

    def __init__(self, chs: int, num_levels: int = 4) -> None:
        super().__init__()
        self.gates = nn.ModuleList(GEB(chs) for _ in range(num_levels))

    def forward(self, vectors: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack([gate(v) * v for gate, v in zip(self.gates, vectors)]).sum(0)


class HANPFF(ZooModel):
    """ResNet stages -> DFEM -> HAM (AFFB, IFFB, IFFB, GFFB) -> shared + final classifiers.

    Progressive fusion: ``h1 = F1``, ``h2 = AFFB(h1, F2)``, ``h3 = IFFB(h2, F3)``,
    ``h4 = IFFB(h3, F4)``; the pooled ``h1..h4`` (``level_features``) go to the shared classifier
    (``level_logits``: one classifier for every level, so it learns what all levels share; the
    training objective supervises it) and to GFFB, whose fused shallow+deep vector feeds the final
    classifier used at inference (seeds/000, figure 1).
    """

    def __init__(
        self,
        model_id: str,
        variant: str,
        num_classes: int,
        in_size: tuple[int, int] | None,
        depths: tuple[int, ...],
        widths: tuple[int, ...],
        fusion_chs: int,
        drop_rate: float,
    ) -> None:
        super().__init__(model_id, variant, num_classes, in_size)
        self.stem = nn.Sequential(conv_bn(3, widths[0], 7, stride=2), nn.MaxPool2d(3, 2, 1))
        chs = [widths[0], *widths]
        self.stages = nn.ModuleList(
            make_stage(BasicBlock, chs[i], chs[i + 1], depths[i], stride=1 if i == 0 else 2) for i in range(len(depths))
        )
        self.dfem = DFEM(tuple(widths), fusion_chs)
        self.affb = AFFB(fusion_chs)
        self.iffb3 = IFFB(fusion_chs)
        self.iffb4 = IFFB(fusion_chs)
        self.gffb = GFFB(fusion_chs, len(widths))
        self.num_features = fusion_chs
        self.num_levels = len(widths)  # width of forward_train(x)["level_features"]
        self.drop = nn.Dropout(drop_rate)
        self.shared_classifier = nn.Linear(fusion_chs, num_classes)
        self.final_classifier = nn.Linear(fusion_chs, num_classes)

    def forward_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        x = self.stem(x)
        levels = []
        for stage in self.stages:
            x = stage(x)
            levels.append(x)
        f1, f2, f3, f4 = self.dfem(levels)
        h2 = self.affb(f1, f2)
        h3 = self.iffb3(h2, f3)
        h4 = self.iffb4(h3, f4)
        vectors = [safe_mean(h, (2, 3)).flatten(1) for h in (f1, h2, h3, h4)]
        fused = self.gffb(vectors)
        return {
            "logits": self.final_classifier(self.drop(fused)),
            "features": fused,
            "level_features": vectors,
            "level_logits": [self.shared_classifier(self.drop(v)) for v in vectors],
        }


_VARIANTS: dict[str, dict[str, Any]] = {
    "paper": {"depths": (2, 2, 2, 2), "widths": (64, 128, 256, 512), "fusion_chs": 256, "drop_rate": 0.0},
    "edge": {"depths": (1, 1, 2, 1), "widths": (32, 64, 128, 256), "fusion_chs": 96, "drop_rate": 0.3},
}


@register_model(cam_layer="dfem.fabs.1")  # level 2 of the fusion, 6x6 at 48 px
def han_pff(num_classes: int, variant: str, in_size: tuple[int, int] | None, **kwargs: Any) -> HANPFF:
    """HAN-PFF on ResNet-18 stages (paper) or a reduced ResNet (edge)."""
    return HANPFF("han_pff", variant, num_classes, in_size, **{**_VARIANTS[variant], **kwargs})
