"""Knowledge distillation for ``fer-edge train --teacher``: soft targets from trained models.

Why: FER+ vote distributions come from 10 annotators, so they are noisy for ambiguous faces; a
stronger trained model (or an ensemble) gives a smoother target on the *augmented* image the
student sees. The target becomes ``(1 - weight) * votes + weight * mean_t softmax(teacher_t(x))``
(Hinton et al. 2015 at temperature 1). Teachers run through the runtime's engines (ONNX
packages on ONNX Runtime, checkpoints on PyTorch), on the same preprocessed batch as the student.
A teacher may know fewer classes than the student (a 7-class teacher of an 8-class student with
contempt): on a class it lacks, the target is the votes' alone.

``--teacher-once`` scores each training face once instead, un-augmented and mirrored (the two
averaged), before the first epoch: with an ensemble of ONNX teachers the per-batch scoring costs
more than the student's own step (measured: simam_resnet edge with four INT8 teachers, 321 s per
epoch online), so the one-off pass buys a longer schedule for the same CPU time.
"""

from __future__ import annotations

import json
import os

import numpy as np
import torch
from torch.utils.data import DataLoader

from fer_edge.errors import InvalidInputError
from fer_edge.fileio import sha256_file
from fer_edge.package import InputSpec
from fer_edge.training.datasets import FaceDataset


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
            if not set(engine.classes) <= set(classes):
                raise InvalidInputError(f"teacher {model} predicts {engine.classes}, beyond the student's {classes}")
        self.columns = [np.asarray([classes.index(c) for c in engine.classes]) for engine in self.engines]
        self.num_classes = len(classes)
        self.models = [os.fspath(m) for m in models]
        self.weight = weight

    def probabilities(self, x: torch.Tensor) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per teacher: its probabilities (B, its classes) and the student columns they belong to."""
        batch = np.ascontiguousarray(x.detach().cpu().float().numpy())
        out = []
        for engine, columns in zip(self.engines, self.columns):
            logits = engine.infer(batch)
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            out.append((e / e.sum(axis=1, keepdims=True), columns))
        return out

    def mix(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Soft targets (B, C): the votes (or one-hot labels) blended with the teachers' probabilities.

        A teacher's distribution keeps the votes on the classes it lacks and spreads the rest of the
        mass by its own probabilities, so every target still sums to 1."""
        if target.ndim == 1:
            target = torch.nn.functional.one_hot(target, self.num_classes).float()
        votes = (target / target.sum(dim=1, keepdim=True).clamp_min(1e-12)).detach().cpu().double().numpy()
        teacher = np.zeros_like(votes)
        for probs, columns in self.probabilities(x):
            lacking = np.setdiff1d(np.arange(self.num_classes), columns)
            own = votes.copy()
            own[:, columns] = probs * (1.0 - votes[:, lacking].sum(axis=1, keepdims=True))
            teacher += own / len(self.columns)
        mixed = (1.0 - self.weight) * votes + self.weight * teacher
        return torch.from_numpy(mixed).to(dtype=target.dtype, device=target.device)

    def fingerprint(self, num_faces: int) -> str:
        """What the one-off targets depend on beyond the faces: each teacher's file content, the
        weight, the student's class count and the face count (a cache key for ``--teacher-once``)."""
        files = [sha256_file(engine.package.model_path) for engine in self.engines]
        return json.dumps({"teachers": files, "weight": self.weight, "classes": self.num_classes, "faces": num_faces})

    def targets_once(self, dataset: FaceDataset, batch_size: int = 256) -> np.ndarray:
        """Mixed targets (N, C) for every face of ``dataset``, scored un-augmented and mirrored."""
        clean = FaceDataset(dataset.records, dataset.images, dataset.spec, None, dataset.soft_labels)
        mixed = []
        for x, target in DataLoader(clean, batch_size=batch_size, shuffle=False, num_workers=0):
            mixed.append(((self.mix(x, target) + self.mix(x.flip(-1), target)) / 2).float().numpy())
        return np.concatenate(mixed)
