"""Grad-CAM and Grad-CAM++ on zoo models: which pixels of an aligned face drove a class score.

Our own ~60 lines rather than the ``grad-cam`` package (pytorch-grad-cam): its modules import
``torchvision`` at import time, and the only torchvision PyPI offers for the CPU torch this project
pins is a CUDA build whose C++ ops fail to register against it (``operator torchvision::nms does
not exist``), so the package cannot even be imported on the machines we install on; its install
would also pull scikit-learn and scipy for the two methods we use. The maths follow it and the
papers: Selvaraju et al. 2017 (Grad-CAM), Chattopadhay et al. 2018 (Grad-CAM++, the closed form
with an exponential score).
"""

from __future__ import annotations

import difflib

import cv2
import numpy as np
import torch
from torch import nn

from fer_edge.errors import InvalidInputError

METHODS = ("gradcam", "gradcam++")


def find_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name`` (dotted path, e.g. ``stages.2``); a typed error suggests near names."""
    names = [n for n, _ in model.named_modules() if n]
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise InvalidInputError(f"{type(model).__name__} has no layer {name!r}{hint}")
    return model.get_submodule(name)


def _channel_weights(acts: torch.Tensor, grads: torch.Tensor, method: str) -> torch.Tensor:
    """(N, C) weights of the activation channels: mean gradient (Grad-CAM) or Grad-CAM++'s alphas."""
    if method == "gradcam":
        return grads.mean(dim=(2, 3))
    g2, g3 = grads.pow(2), grads.pow(3)
    denom = 2 * g2 + acts.sum(dim=(2, 3), keepdim=True) * g3
    alpha = g2 / torch.where(denom != 0, denom, torch.ones_like(denom))
    return (alpha * torch.relu(grads)).sum(dim=(2, 3))


def class_activation_maps(model: nn.Module, batch: torch.Tensor, layer: nn.Module, targets: list[int] | None = None,
                          method: str = "gradcam") -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps (N, H, W) in [0, 1] at the batch's spatial size, and the softmax (N, classes).

    ``targets``: the class index to explain per image (default: each image's top class). Each map
    is ReLU'd and divided by its maximum (all zeros when no pixel raises the score). The model
    runs in eval mode with gradients on for this call only; its weights are not changed.
    """
    if method not in METHODS:
        raise InvalidInputError(f"method must be one of {METHODS}, got {method!r}")
    captured: list[torch.Tensor] = []

    def keep(_module: nn.Module, _inputs: object, output: object) -> None:
        if not isinstance(output, torch.Tensor) or output.ndim != 4:
            raise InvalidInputError(f"the target layer must output an NCHW tensor, got {type(output).__name__}"
                                    f"{'' if not isinstance(output, torch.Tensor) else ' ' + str(tuple(output.shape))}")
        output.retain_grad()
        captured.append(output)

    was_training = model.training
    model.eval()
    handle = layer.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            logits = model(batch.detach().requires_grad_(True))
            chosen = logits.argmax(dim=1) if targets is None else torch.as_tensor(targets, dtype=torch.long)
            model.zero_grad(set_to_none=True)
            logits.gather(1, chosen[:, None]).sum().backward()
    finally:
        handle.remove()
        model.train(was_training)
    if not captured or captured[-1].grad is None:
        raise InvalidInputError("the target layer did not take part in computing the logits")
    acts, grads = captured[-1].detach(), captured[-1].grad.detach()
    cams = torch.relu((_channel_weights(acts, grads, method)[:, :, None, None] * acts).sum(dim=1)).float().numpy()
    size = (int(batch.shape[3]), int(batch.shape[2]))
    maps = np.stack([cv2.resize(c, size, interpolation=cv2.INTER_LINEAR) for c in cams]).clip(0, None)
    peak = maps.reshape(len(maps), -1).max(axis=1)[:, None, None]
    maps = np.where(peak > 0, maps / np.where(peak > 0, peak, 1), 0).astype(np.float32)
    probs = torch.softmax(logits.detach().float(), dim=1).numpy()
    return maps, probs
