"""Measure a model's parameters and multiply-accumulates (MACs) with forward hooks.

Why measured, not typed: widths and depths change during development and the printed numbers
must follow the code. Counted: Conv2d and Linear layers (the multiply-accumulates of their
weights, for the actual output size of one forward pass). Not counted: element-wise ops,
norms, pooling, softmax — together a few percent for these models.
"""

from __future__ import annotations

import torch
from torch import nn


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not); buffers such as BatchNorm statistics excluded."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, in_size: tuple[int, int], in_chs: int = 3) -> int:
    """Multiply-accumulates of one eval-mode forward pass on a single ``in_size`` image."""
    total = 0

    def conv_hook(module: nn.Module, _inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(module, nn.Conv2d)
        k = module.kernel_size[0] * module.kernel_size[1]
        total += output.numel() * (module.in_channels // module.groups) * k

    def linear_hook(module: nn.Module, _inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(module, nn.Linear)
        total += output.numel() * module.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, in_chs, *in_size))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total
