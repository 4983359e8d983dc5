"""Weight averaging of runs that share a basin: a model soup (Wortsman et al. 2022), as in SWA.

Why: a run fine-tuned from trained weights (``fer-edge train --init``) stays near them, so the
mean of the two weight sets is itself a good network and is often better on held-out faces than
either; it costs one pass over the training faces and no training. Batch-norm statistics of
averaged weights are not the average of the statistics, so they are recomputed on the training
faces, un-augmented, with the held-out slice left out. The result is scored on that held-out
slice exactly as ``fer-edge train --holdout`` scores its epochs, so it can be compared with them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from fer_edge.errors import InvalidInputError
from fer_edge.package import InputSpec
from fer_edge.training.checkpoint import checkpoint_from, model_from, provenance, save_checkpoint
from fer_edge.training.datasets import FaceDataset, holdout_indices, load_split
from fer_edge.training.metrics import classification_report

SAME = ("model_id", "variant", "num_classes", "in_size", "model_kwargs")


def mean_state(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean (float32) of floating-point tensors; integer ones (batch counters) from the first."""
    return {k: torch.stack([s[k].float() for s in states]).mean(dim=0) if v.is_floating_point() else v.clone()
            for k, v in states[0].items()}


def average_checkpoints(sources: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], data: str,
                        holdout: float = 0.1, seed: int = 0, batch_size: int = 256) -> dict[str, Any]:
    """Average the weights of ``sources`` (checkpoints or shipped ids, one architecture), recompute their
    batch-norm statistics on ``data``'s training faces outside the held-out slice (``holdout``, ``seed``:
    the run's own ``--holdout``/``--seed``), score the held-out slice and write a checkpoint to ``out``.
    Returns its metrics."""
    from fer_edge.training.train import predict

    if len(sources) < 2:
        raise InvalidInputError("averaging needs at least two checkpoints")
    checkpoints = [checkpoint_from(s) for s in sources]
    first = checkpoints[0]
    for source, other in zip(sources[1:], checkpoints[1:]):
        differs = {k: (first.get(k), other.get(k)) for k in SAME if first.get(k) != other.get(k)}
        if differs:
            raise InvalidInputError(f"{source} is another model than {sources[0]}: {differs}")
    model = model_from(first, mean_state([c["state_dict"] for c in checkpoints]))
    spec = InputSpec.from_dict(first["input_spec"])
    train = load_split(data, "train", spec, first["num_classes"])
    held_idx, kept_idx = holdout_indices(len(train.records), seed, holdout)

    def part(idx: Any) -> FaceDataset:
        return FaceDataset(train.records.subset(idx), train.images[idx], spec)

    torch.optim.swa_utils.update_bn(DataLoader(part(kept_idx), batch_size=batch_size), model)
    held = part(held_idx)
    report = classification_report(held.records.labels, predict(model, held).argmax(axis=1), tuple(first["classes"]))
    metrics = {"val_accuracy": report["accuracy"], "val_macro_f1": report["macro_f1"],
               "val_images": report["num_images"]}
    meta = {k: v for k, v in first.items() if k not in ("state_dict", "metrics", "training", "epoch")}
    training = {"averaged_from": [provenance(s, c) for s, c in zip(sources, checkpoints)], "data": data, "holdout": holdout, "seed": seed,
                "batch_norm": "recomputed on the training faces outside the held-out slice"}
    save_checkpoint(Path(out), model, meta, metrics=metrics, training=training)
    return metrics

