"""local_joint: attention-guided local feature joint learning (Lu, Xia, Tan, Song; seeds/001).

Top-down: the global extractor, the quadrant split, one quadrant branch, the model, the
registered constructor. seeds/001 (Method): a ResNet-50 stem conv and bottleneck blocks extract
global mid-level features; ECA enhances them (global feature enhancement); the map is split
into 4 non-overlapping quadrants, each learnt by its own branch with mixed attention and its
own classifier (local feature joint learning); training sums the 4 cross-entropies, inference
fuses the 4 softmaxes (decision-level fusion).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from fer_edge.models._base import ZooModel
from fer_edge.models._registry import register_model
from fer_edge.models.layers.attention import ECA, MixedAttention
from fer_edge.models.layers.blocks import Bottleneck, conv_bn, make_stage
from fer_edge.models.layers.norm import safe_mean


class GlobalExtractor(nn.Module):
    """Global feature extraction (seeds/001): ResNet-50 stem + bottleneck stages (strides 1, 2, 2)."""

    def __init__(self, depths: tuple[int, ...], widths: tuple[int, ...], stem_chs: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, stem_chs, 7, stride=2), nn.MaxPool2d(3, 2, 1))
        stages, chs = [], stem_chs
        for i, (depth, width) in enumerate(zip(depths, widths)):
            stages.append(make_stage(Bottleneck, chs, width, depth, stride=1 if i == 0 else 2))
            chs = width * Bottleneck.expansion
        self.stages = nn.Sequential(*stages)
        self.out_chs = chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))


class QuadrantSplit(nn.Module):
    """Split NCHW into 4 equal, non-overlapping quadrants (top-left, top-right, bottom-left, bottom-right).

    seeds/001: "this exactly distributes the eye and mouth regions ... in 4 sub-image blocks".
    An odd-sized map (3x3 at 48 px, 7x7 at 112 px) is first resized bilinearly to the next even
    size, so the four quadrants cover equal shares of the face (zero-padding would give the
    bottom/right quadrants a row of nothing and the others none).
    """

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h, w = x.shape[2], x.shape[3]
        if h % 2 or w % 2:
            x = nn.functional.interpolate(x, size=(h + h % 2, w + w % 2), mode="bilinear", align_corners=False)
        h, w = x.shape[2] // 2, x.shape[3] // 2
        return [x[:, :, :h, :w], x[:, :, :h, w:], x[:, :, h:, :w], x[:, :, h:, w:]]


class DecisionFusion(nn.Module):
    """Decision-level fusion (seeds/001, Method): average the regions' softmaxes.

    Returns ``log(mean_i softmax(z_i))`` so the exported graph still emits logits and
    ``softmax(logits)`` is exactly the fused probability (the paper sums the softmaxes; the
    mean has the same argmax). Computed as a log-sum-exp of log-softmaxes, stable in FP16.
    """

    def forward(self, region_logits: list[torch.Tensor]) -> torch.Tensor:
        log_probs = torch.stack([torch.log_softmax(z, dim=1) for z in region_logits])
        return torch.logsumexp(log_probs, dim=0) - math.log(len(region_logits))


class QuadrantBranch(nn.Module):
    """One local branch: the rest of the trunk for its region, mixed attention, pooled vector, classifier.

    seeds/001 / MODELS.md: each quadrant goes through the rest of the ResNet-50 trunk (a
    layer4-like bottleneck stage, its own weights per region) with a mixed attention and its own
    classifier. ``stride`` is layer4's 2 in the paper size; the edge size keeps 1, its quadrants
    being 2x2 at 48 px.
    """

    def __init__(self, in_chs: int, width: int, depth: int, stride: int, num_classes: int, drop_rate: float) -> None:
        super().__init__()
        self.trunk = make_stage(Bottleneck, in_chs, width, depth, stride)
        out_chs = width * Bottleneck.expansion
        self.attn = MixedAttention(out_chs)
        self.drop = nn.Dropout(drop_rate)
        self.classifier = nn.Linear(out_chs, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v = safe_mean(self.attn(self.trunk(x)), (2, 3)).flatten(1)
        return v, self.classifier(self.drop(v))


class LocalJoint(ZooModel):
    """Global extractor -> ECA -> 4 quadrants -> 4 branches -> decision-level fusion."""

    def __init__(
        self,
        model_id: str,
        variant: str,
        num_classes: int,
        in_size: tuple[int, int] | None,
        depths: tuple[int, ...],
        widths: tuple[int, ...],
        stem_chs: int,
        branch_width: int,
        branch_depth: int,
        branch_stride: int,
        drop_rate: float,
    ) -> None:
        super().__init__(model_id, variant, num_classes, in_size)
        self.extractor = GlobalExtractor(depths, widths, stem_chs)
        self.eca = ECA(self.extractor.out_chs)
        self.split = QuadrantSplit()
        self.num_features = 4 * branch_width * Bottleneck.expansion
        self.branches = nn.ModuleList(
            QuadrantBranch(self.extractor.out_chs, branch_width, branch_depth, branch_stride, num_classes, drop_rate)
            for _ in range(4)
        )
        self.fusion = DecisionFusion()

    def forward_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        quadrants = self.split(self.eca(self.extractor(x)))
        vectors, region_logits = zip(*(branch(q) for branch, q in zip(self.branches, quadrants)))
        logits = self.fusion(list(region_logits))
        return {"logits": logits, "features": torch.cat(vectors, dim=1), "region_logits": list(region_logits)}


_VARIANTS: dict[str, dict[str, Any]] = {
    "paper": {"depths": (3, 4, 6), "widths": (64, 128, 256), "stem_chs": 64, "branch_width": 512, "branch_depth": 3,
              "branch_stride": 2, "drop_rate": 0.0},
    "edge": {"depths": (1, 2, 2), "widths": (24, 48, 96), "stem_chs": 32, "branch_width": 32, "branch_depth": 1,
             "branch_stride": 1, "drop_rate": 0.3},
}


@register_model(cam_layer="eca")  # the global map the four quadrants are cut from, 3x3 at 48 px
def local_joint(num_classes: int, variant: str, in_size: tuple[int, int] | None, **kwargs: Any) -> LocalJoint:
    """Local feature joint learning on ResNet-50's first three stages (paper) or a reduced trunk (edge)."""
    return LocalJoint("local_joint", variant, num_classes, in_size, **{**_VARIANTS[variant], **kwargs})
