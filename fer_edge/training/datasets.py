"""PyTorch side of the datasets: decoded images -> model inputs through the one preprocess function.

``FaceDataset`` yields ``(x, target)`` where ``x`` is exactly what the runtime would feed the model
for that crop (plus augmentation when training) and ``target`` is the class index, or the vote
distribution when training on soft labels. Augmentation draws come from a generator seeded by
(seed, epoch, index), so they do not depend on worker count or order and a resumed run repeats them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from fer_edge.errors import DatasetError
from fer_edge.package import InputSpec
from fer_edge.training.augment import Augment
from fer_edge.training.images import decode_records
from fer_edge.training.readers import Records, read_dataset
from fer_edge.vision.preprocess import preprocess


class FaceDataset(Dataset):
    """Decoded uint8 faces + labels -> ``(float32 CHW tensor, target)``."""

    def __init__(self, records: Records, images: np.ndarray, spec: InputSpec, augment: Augment | None = None,
                 soft_labels: bool = False, seed: int = 0) -> None:
        if soft_labels and records.soft is None:
            soft_labels = False  # the source has no votes: fall back to one-hot targets
        self.records, self.images, self.spec = records, images, spec
        self.augment, self.soft_labels, self.seed, self.epoch = augment, soft_labels, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of ``epoch`` (call before iterating it)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[index]
        rng = np.random.default_rng([self.seed, self.epoch, index]) if self.augment else None
        if self.augment and rng is not None:
            image = self.augment.image(image, rng)
        x = preprocess(image, self.spec)[0]
        if self.augment and rng is not None:
            x = self.augment.tensor(x, rng)
        if self.soft_labels:
            target = torch.from_numpy(self.records.soft[index])  # type: ignore[index]
        else:
            target = torch.tensor(int(self.records.labels[index]))
        return torch.from_numpy(x), target


class EpochSampler(Sampler[int]):
    """Shuffled, or class-balanced (each class drawn equally often, with replacement: FER data is
    heavily imbalanced), order per epoch, split across ranks.

    The order is drawn from ``default_rng([seed, epoch])``, so every rank agrees on it without
    communication and a resumed run draws the same one.
    """

    def __init__(self, labels: np.ndarray, num_classes: int, balanced: bool, seed: int, rank: int = 0,
                 world: int = 1) -> None:
        self.labels, self.balanced, self.seed, self.rank, self.world = labels, balanced, seed, rank, world
        counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
        weights = 1.0 / np.maximum(counts[labels], 1.0)
        self.probs = weights / weights.sum()
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.world)

    def __iter__(self) -> Iterator[int]:
        rng, n = np.random.default_rng([self.seed, self.epoch]), len(self.labels)
        order = rng.choice(n, size=n, p=self.probs) if self.balanced else rng.permutation(n)
        order = np.resize(order, len(self) * self.world)  # pad by wrapping so ranks get equal shares
        return iter(order[self.rank::self.world].tolist())


@dataclass
class SplitData:
    """One decoded split: records (aligned with ``images``) and the dataset over them."""

    records: Records
    images: np.ndarray
    dataset: FaceDataset


def holdout_indices(n: int, seed: int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(held-out, kept) indices of a training set of ``n``: the slice ``fer-edge train --holdout``
    selects checkpoints on, reproducible from the seed so evaluation can find the same faces."""
    order = np.random.default_rng([seed, 7919]).permutation(n)
    cut = max(1, int(n * fraction))
    return np.sort(order[:cut]), np.sort(order[cut:])


def class_prior(records: Records, soft: bool = True, weights: np.ndarray | None = None) -> list[float]:
    """How often each class is the training target: the mean vote distribution (``soft``, where the
    source has votes) or label frequency, each image weighted by how often the sampler draws it
    (``weights``; None = uniformly). A model learns this prior with its targets, and
    ``Recognizer(prior_correction=...)`` divides it out (logit adjustment, Menon et al. 2021)."""
    n = len(records.classes)
    keep = records.labels >= 0
    if soft and records.soft is not None:
        targets = np.asarray(records.soft, dtype=np.float64)[:, :n]
    else:
        targets = np.eye(n)[np.where(keep, records.labels, 0)] * keep[:, None]
    share = np.ones(len(records)) if weights is None else np.asarray(weights, dtype=np.float64)
    counts = share @ targets
    if counts.sum() <= 0:
        raise DatasetError(f"{records.source} has no expression labels to measure a class prior on")
    return [round(float(c), 6) for c in np.maximum(counts / counts.sum(), 1e-6)]


def load_split(path: str | os.PathLike[str], split: str, spec: InputSpec, num_classes: int,
               augment: Augment | None = None, soft_labels: bool = False, seed: int = 0,
               cache_dir: Path | None = None, limit: int | None = None) -> SplitData:
    """Read, decode (cached) and wrap one split. Training splits of FER+ read every image whose top
    vote is an expression (``votes`` protocol); evaluation splits use the strict-majority protocol."""
    protocol = "votes" if split == "train" else "majority"
    records = read_dataset(path, split, num_classes, protocol=protocol)
    if limit is not None:
        records = records.subset(np.arange(min(limit, len(records))))
    records, images = decode_records(records, gray=spec.color == "gray", size=spec.size, cache_dir=cache_dir)
    return SplitData(records, images, FaceDataset(records, images, spec, augment, soft_labels, seed))
