"""Knowledge distillation for ``fer-edge train --teacher``: soft targets from trained models.

Why: FER+ vote distributions come from 10 annotators, so they are noisy for ambiguous faces; a
stronger trained model (or an ensemble) gives a smoother target on the *augmented* image the
student sees. The target becomes ``(1 - weight) * votes + weight * mean_t softmax(teacher_t(x))``
(Hinton et al. 2015 at temperature 1). Teachers run through the runtime's engines (ONNX
packages on ONNX Runtime, checkpoints on PyTorch), on the same preprocessed batch as the student.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from fer_edge.errors import InvalidInputError
from fer_edge.package import InputSpec


class Teacher:
    """The averaged class probabilities of one or more trained models, as a target mixer."""

    def __init__(self, models: list[str], spec: InputSpec, classes: tuple[str, ...], weight: float) -> None:
        from fer_edge.engines.resolve import load_engine

        if not 0.0 < weight <= 1.0:
            raise InvalidInputError(f"--teacher-weight must be in (0, 1], got {weight}")
        self.engines = [load_engine(m)[0] for m in models]
        for model, engine in zip(models, self.engines):
            if engine.input_spec != spec:
                raise InvalidInputError(f"teacher {model} takes {engine.input_spec}, the student {spec}: "
                                        "a teacher must see the student's preprocessed faces")
            if tuple(engine.classes) != classes:
                raise InvalidInputError(f"teacher {model} predicts {engine.classes}, the student {classes}")
        self.models = [os.fspath(m) for m in models]
        self.weight = weight

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        batch = np.ascontiguousarray(x.detach().cpu().float().numpy())
        probs = []
        for engine in self.engines:
            logits = engine.infer(batch)
            logits = logits - logits.max(axis=1, keepdims=True)
            e = np.exp(logits)
            probs.append(e / e.sum(axis=1, keepdims=True))
        return torch.from_numpy(np.mean(probs, axis=0)).to(x.device)

    def mix(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Soft targets (B, C): the votes (or one-hot labels) blended with the teachers' probabilities."""
        probs = self.probabilities(x)
        if target.ndim == 1:
            target = torch.nn.functional.one_hot(target, probs.shape[1]).float()
        target = target / target.sum(dim=1, keepdim=True).clamp_min(1e-12)
        return (1.0 - self.weight) * target + self.weight * probs
