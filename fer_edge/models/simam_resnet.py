"""simam_resnet: ResNet + CA + SimAM + SC (Hu, Tang, Zhu, Zhu 2024; seeds/002).

Top-down: the SC block, the model, the registered constructor. The paper's network is
ResNet-50 with (a) the stem 7x7 conv at stride 1 followed by SC, the interval-sampling block
that replaces the first downsampling (section 1.3); (b) CA + SimAM at the first layer, before
the stem max-pool (sections 1.1-1.2, figures 2-3); (c) CA + SimAM again at the last layer.
Where the paper is silent: CA's conv is 3x3 at the first layer and 1x1 at the last (a 3x3 conv
over ResNet-50's 2048 channels alone would cost 1.8 GMACs); dropout before the classifier.

``edge`` (the shipped default, trained on 2 CPU cores): basic blocks, depths 2-2-2-2, widths
48-384 — about 0.4 GMACs at 112x112.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fer_edge.models._base import ZooModel
from fer_edge.models._registry import register_model
from fer_edge.models.layers.attention import CA
from fer_edge.models.layers.blocks import BasicBlock, Bottleneck, conv_bn, make_stage
from fer_edge.models.layers.simam import SimAM


class SC(nn.Module):
    """Interval sampling (seeds/002 section 1.3, figure 4): space-to-depth by 2, then a conv to C.

    The four interleaved sub-grids (even/odd rows x even/odd columns) are concatenated on the
    channels (C -> 4C at half resolution), so downsampling drops no pixel; a 1x1 conv + BN +
    ReLU brings the channels back to C. Odd sizes are zero-padded on the bottom/right.
    """

    def __init__(self, chs: int) -> None:
        super().__init__()
        self.conv = conv_bn(4 * chs, chs, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[2] % 2 or x.shape[3] % 2:
            x = nn.functional.pad(x, (0, x.shape[3] % 2, 0, x.shape[2] % 2))
        grids = [x[:, :, 0::2, 0::2], x[:, :, 1::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 1::2]]
        return self.conv(torch.cat(grids, dim=1))


class SimAMResNet(ZooModel):
    """ResNet with the SC stem and CA + SimAM at the first and last layers (seeds/002, figure 3)."""

    def __init__(
        self,
        model_id: str,
        variant: str,
        num_classes: int,
        in_size: tuple[int, int] | None,
        block: type[BasicBlock | Bottleneck],
        depths: tuple[int, ...],
        widths: tuple[int, ...],
        stem_chs: int,
        drop_rate: float,
        lambda_: float = 1e-4,
    ) -> None:
        super().__init__(model_id, variant, num_classes, in_size)
        self.stem = conv_bn(3, stem_chs, 7, stride=1)
        self.sc = SC(stem_chs)
        self.ca_first = CA(stem_chs)
        self.simam_first = SimAM(lambda_)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        stages, chs = [], stem_chs
        for i, (depth, width) in enumerate(zip(depths, widths)):
            stages.append(make_stage(block, chs, width, depth, stride=1 if i == 0 else 2))
            chs = width * block.expansion
        self.stages = nn.Sequential(*stages)
        self.ca_last = CA(chs, kernel_size=1)
        self.simam_last = SimAM(lambda_)
        self.num_features = chs
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(chs, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map after the last CA + SimAM."""
        x = self.sc(self.stem(x))
        x = self.pool(self.simam_first(self.ca_first(x)))
        x = self.stages(x)
        return self.simam_last(self.ca_last(x))

    def forward_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        features = torch.flatten(nn.functional.adaptive_avg_pool2d(self.forward_features(x), 1), 1)
        return {"logits": self.fc(self.drop(features)), "features": features}


_VARIANTS: dict[str, dict[str, Any]] = {
    "paper": {
        "block": Bottleneck,
        "depths": (3, 4, 6, 3),
        "widths": (64, 128, 256, 512),
        "stem_chs": 64,
        "drop_rate": 0.0,
    },
    "edge": {
        "block": BasicBlock,
        "depths": (2, 2, 2, 2),
        "widths": (48, 96, 192, 384),
        "stem_chs": 32,
        "drop_rate": 0.3,
    },
}


@register_model(cam_layer="stages.1")  # 6x6 at 48 px: the last stage before the eyes and mouth merge
def simam_resnet(num_classes: int, variant: str, in_size: tuple[int, int] | None, **kwargs: Any) -> SimAMResNet:
    """ResNet-50 + CA + SimAM + SC (paper) or its 4-stage basic-block edge size."""
    return SimAMResNet("simam_resnet", variant, num_classes, in_size, **{**_VARIANTS[variant], **kwargs})
