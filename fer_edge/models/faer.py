"""faer: ConvNeXt + Contextual Channel Attention, with an optional attribute head (Xu et al. 2025).

Top-down: stochastic depth, the ConvNeXt block and stage, the model, the registered constructor.
seeds/003: a ConvNeXt backbone (the authors' code: ConvNeXt-Base, depths 3-3-27-3, dims
128-1024, drop-path 0.25) with CC Attention once after the last stage (section 2.2), then global
average pool -> LayerNorm -> Linear; the pooled vector (before that LayerNorm) feeds the center loss (FER loss
CE + 0.01 * center). The facial-attribute task (FAE) adds 40 CelebA attribute logits trained
with focal loss. ``edge`` is ConvNeXt-Femto-sized (dims 48-384, depths 2-2-6-2); below 96 px its stem is an
overlapping stride-2 one (:func:`stem_stride_for`).
All norms are the FP16-safe :class:`LayerNorm2d` (ConvNeXt's own overflows in FP16 engines).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fer_edge.models._base import ZooModel
from fer_edge.models._registry import register_model
from fer_edge.models.layers.cc_attention import CCAttention
from fer_edge.models.layers.norm import LayerNorm2d, safe_mean

NUM_ATTRIBUTES = 40  # CelebA


class DropPath(nn.Module):
    """Stochastic depth: drop a residual branch per sample in training (identity in eval)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype) >= self.p
        return x * keep / (1.0 - self.p)


class ConvNeXtBlock(nn.Module):
    """ConvNeXt block (Liu et al. 2022): 7x7 depthwise -> LN -> 1x1 (4x) -> GELU -> 1x1 -> scale, residual."""

    def __init__(self, dim: int, drop_path: float = 0.0, layer_scale: float = 1e-6) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = LayerNorm2d(dim)
        self.pw1 = nn.Conv2d(dim, 4 * dim, 1)
        self.act = nn.GELU()
        self.pw2 = nn.Conv2d(4 * dim, dim, 1)
        self.gamma = nn.Parameter(torch.full((dim, 1, 1), layer_scale))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.gamma * self.pw2(self.act(self.pw1(self.norm(self.dwconv(x))))))


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad NCHW on the bottom/right to a multiple of ``multiple``.

    Why: a ``k x k``, stride-``k`` conv on a size that ``k`` does not divide silently drops the
    last rows/columns (at 112 px the 7x7 map of stage 3 loses a row and a column before stage 4,
    so the bottom/right 16 input pixels barely reach the logits). Shapes are static in the
    exported graph, so this exports as one constant ``Pad``.
    """
    pad_h, pad_w = -x.shape[2] % multiple, -x.shape[3] % multiple
    return nn.functional.pad(x, (0, pad_w, 0, pad_h)) if pad_h or pad_w else x


class PatchDownsample(nn.Module):
    """ConvNeXt's downsampler: LN, then a ``k x k`` stride-``k`` conv over a map padded to a multiple of ``k``.

    ``stride`` below ``k`` makes the patches overlap (padding ``(k - stride) / 2`` keeps the map at
    ``size / stride``): the edge stem uses it so that a 48 px face is not cut to a 12x12 map at once.
    """

    def __init__(self, in_chs: int, out_chs: int, factor: int, norm_first: bool, stride: int | None = None) -> None:
        super().__init__()
        stride = stride or factor
        self.norm_first = norm_first
        self.norm = LayerNorm2d(in_chs if norm_first else out_chs)
        self.conv = nn.Conv2d(in_chs, out_chs, factor, stride=stride, padding=(factor - stride) // 2)
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm_first:
            return self.conv(pad_to_multiple(self.norm(x), self.stride))
        return self.norm(self.conv(pad_to_multiple(x, self.stride)))


class ConvNeXtStage(nn.Module):
    """A ConvNeXt stage (seeds/003, backbone): LN + 2x2 stride-2 downsampling (except stage 1), then blocks."""

    def __init__(self, in_chs: int, out_chs: int, depth: int, drop_paths: list[float], downsample: bool) -> None:
        super().__init__()
        self.downsample = PatchDownsample(in_chs, out_chs, 2, norm_first=True) if downsample else nn.Identity()
        self.blocks = nn.Sequential(*(ConvNeXtBlock(out_chs, drop_paths[i]) for i in range(depth)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


def stem_stride_for(in_size: tuple[int, int]) -> int:
    """The edge stem's stride for faces of ``in_size``: 4 (ConvNeXt's patchify) while the last stage
    still sees >= 3x3 (from 96 px), else 2, so a 48 px face is not cut to 12x12 at the first layer
    and CC Attention gets a 3x3 map instead of 2x2. Fixed when the model is built; checkpoints record it."""
    return 4 if min(in_size) >= 96 else 2


class FAER(ZooModel):
    """ConvNeXt -> CC Attention -> GAP -> LN -> FER classifier (+ attribute head when enabled)."""

    def __init__(
        self,
        model_id: str,
        variant: str,
        num_classes: int,
        in_size: tuple[int, int] | None,
        depths: tuple[int, ...],
        dims: tuple[int, ...],
        drop_path: float,
        attribute_head: bool = False,
        drop_rate: float = 0.0,
        stem_stride: int | None = None,
    ) -> None:
        super().__init__(model_id, variant, num_classes, in_size)
        stem_stride = stem_stride or stem_stride_for(self.default_cfg["in_size"])
        self.stem = PatchDownsample(3, dims[0], 4, norm_first=False, stride=stem_stride)
        self.stem_stride = stem_stride
        rates = torch.linspace(0, drop_path, sum(depths)).tolist()
        stages, chs, start = [], dims[0], 0
        for i, (depth, dim) in enumerate(zip(depths, dims)):
            stages.append(ConvNeXtStage(chs, dim, depth, rates[start : start + depth], downsample=i > 0))
            chs, start = dim, start + depth
        self.stages = nn.Sequential(*stages)
        self.cc_attention = CCAttention(chs)
        self.head_norm = LayerNorm2d(chs)
        self.num_features = chs
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(chs, num_classes)
        self.attribute_fc = nn.Linear(chs, NUM_ATTRIBUTES) if attribute_head else None

    @property
    def arch_kwargs(self) -> dict[str, Any]:
        return {"stem_stride": self.stem_stride}

    def forward_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        x = self.cc_attention(self.stages(self.stem(x)))
        pooled = safe_mean(x, (2, 3))
        embedding = self.head_norm(pooled).flatten(1)
        out: dict[str, torch.Tensor | list[torch.Tensor]] = {
            "logits": self.fc(self.drop(embedding)),
            "features": pooled.flatten(1),  # the center loss acts before the head LayerNorm (authors' code)
        }
        if self.attribute_fc is not None:
            out["attributes"] = self.attribute_fc(embedding)
        return out


_VARIANTS: dict[str, dict[str, Any]] = {
    "paper": {"depths": (3, 3, 27, 3), "dims": (128, 256, 512, 1024), "drop_path": 0.25, "stem_stride": 4},
    "edge": {"depths": (2, 2, 6, 2), "dims": (48, 96, 192, 384), "drop_path": 0.05, "drop_rate": 0.3},
}


@register_model(cam_layer="stages.2.downsample")  # 6x6 at 48 px; later ConvNeXt maps give mostly empty maps
def faer(num_classes: int, variant: str, in_size: tuple[int, int] | None, **kwargs: Any) -> FAER:
    """FAER on ConvNeXt-Base (paper) or ConvNeXt-Femto (edge); ``attribute_head=True`` adds FAE."""
    return FAER("faer", variant, num_classes, in_size, **{**_VARIANTS[variant], **kwargs})
