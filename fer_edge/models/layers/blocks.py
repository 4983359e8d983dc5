"""ResNet residual blocks (He et al. 2016) shared by the ResNet-based models of the zoo.

han_pff (ResNet-18 stages), local_joint (ResNet-50 bottlenecks) and simam_resnet (ResNet-50, or
basic blocks in its edge size) all build their trunks from these two blocks and
:func:`make_stage`, so a fix to the residual path reaches every model.
"""

from __future__ import annotations

import torch
from torch import nn


def conv_bn(in_chs: int, out_chs: int, kernel_size: int = 3, stride: int = 1, act: bool = True) -> nn.Sequential:
    """Conv (no bias) + BatchNorm (+ ReLU): the unit every ResNet-style stem and head repeats."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_chs),
    ]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _zero_init_bn(unit: nn.Sequential) -> None:
    """Zero the BatchNorm scale of a :func:`conv_bn` unit (the last one of a residual branch)."""
    bn = unit[1]
    assert isinstance(bn, nn.BatchNorm2d)
    nn.init.zeros_(bn.weight)


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity (or 1x1 projection) shortcut: ResNet-18/34's block."""

    expansion = 1

    def __init__(self, in_chs: int, chs: int, stride: int = 1) -> None:
        super().__init__()
        out_chs = chs * self.expansion
        self.conv1 = conv_bn(in_chs, chs, 3, stride)
        self.conv2 = conv_bn(chs, out_chs, 3, 1, act=False)
        self.shortcut = (
            nn.Identity() if stride == 1 and in_chs == out_chs else conv_bn(in_chs, out_chs, 1, stride, act=False)
        )
        self.act = nn.ReLU(inplace=True)
        _zero_init_bn(self.conv2)  # the residual starts as identity: trains faster from scratch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.conv1(x)) + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride), 1x1 expand by 4: ResNet-50's block."""

    expansion = 4

    def __init__(self, in_chs: int, chs: int, stride: int = 1) -> None:
        super().__init__()
        out_chs = chs * self.expansion
        self.conv1 = conv_bn(in_chs, chs, 1)
        self.conv2 = conv_bn(chs, chs, 3, stride)
        self.conv3 = conv_bn(chs, out_chs, 1, act=False)
        self.shortcut = (
            nn.Identity() if stride == 1 and in_chs == out_chs else conv_bn(in_chs, out_chs, 1, stride, act=False)
        )
        self.act = nn.ReLU(inplace=True)
        _zero_init_bn(self.conv3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv3(self.conv2(self.conv1(x))) + self.shortcut(x))


def make_stage(block: type[BasicBlock | Bottleneck], in_chs: int, chs: int, depth: int, stride: int) -> nn.Sequential:
    """``depth`` blocks; the first carries the stride and the channel change."""
    blocks = [block(in_chs, chs, stride)]
    blocks += [block(chs * block.expansion, chs, 1) for _ in range(depth - 1)]
    return nn.Sequential(*blocks)
