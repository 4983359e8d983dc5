"""SimAM, the parameter-free 3-D attention of Yang et al. (ICML 2021), as used by Hu et al. 2024.

Paper (seeds/002, section 1.2): SimAM infers a 3-D weight per activation from an energy
function, with no parameters; simam_resnet places it at the first and last layers together
with CA. Formula per (n, c) plane with ``mu`` the mean and ``n = max(H*W - 1, 1)``:

    e = (x - mu)^2 / (4 * (sum((x - mu)^2) / n + lambda)) + 0.5,   out = x * sigmoid(e)

This module is also a *plugin seam*: export replaces its subgraph with one ``SimAM_TRT`` node
whose attributes come from :meth:`SimAM.plugin_attrs` (the TensorRT plugin implements the same
formula with FP32 statistics).
"""

from __future__ import annotations

import torch
from torch import nn

from fer_edge.models.layers.norm import centred_scaled


class SimAM(nn.Module):
    """Parameter-free attention ``x * sigmoid(e)``; FP16-safe for inputs up to ~1e3.

    The centred plane is divided by its max-abs ``s`` before squaring; with ``d' = d / s`` the
    energy is ``d'^2 / (4 * (sum(d'^2) / n + (sqrt(lambda) / s)^2)) + 0.5`` — identical to the
    formula above in exact arithmetic, but every intermediate stays below 65504 in float16.
    """

    plugin_op = "SimAM_TRT"

    def __init__(self, lambda_: float = 1e-4) -> None:
        super().__init__()
        if lambda_ <= 0:
            raise ValueError(f"SimAM lambda_ must be > 0 (it keeps the energy finite), got {lambda_}")
        self.lambda_ = float(lambda_)

    def plugin_attrs(self) -> dict[str, float]:
        """Attributes of the ``SimAM_TRT`` node that replaces this module in the plugin form."""
        return {"lambda": self.lambda_}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = max(x.shape[2] * x.shape[3] - 1, 1)
        d, s = centred_scaled(x, (2, 3))
        d2 = d * d
        var = (d2 * (1.0 / n)).sum(dim=(2, 3), keepdim=True) + (self.lambda_**0.5 / s) ** 2
        e = d2 / (4.0 * var) + 0.5
        return x * torch.sigmoid(e)

    def extra_repr(self) -> str:
        return f"lambda_={self.lambda_}"
