"""Training on real FER+ faces: it learns, checkpoints reload exactly, resume repeats the same epoch,
and the same command runs under torchrun with 2 gloo processes."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from fer_edge.training.checkpoint import load_checkpoint, read_checkpoint
from fer_edge.training.datasets import load_split
from fer_edge.training.train import TrainConfig, predict, train

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _ferplus_slice(ferplus_dir: Path, root: Path, n_train: int, n_val: int) -> Path:
    """A FER+ root whose label.csv rows point at the real images by absolute path (nothing copied);
    the validation rows come from FER2013Valid, which training never sees."""
    for split, n in (("FER2013Train", n_train), ("FER2013Valid", n_val)):
        (root / split).mkdir(parents=True, exist_ok=True)
        with open(ferplus_dir / split / "label.csv", newline="") as src, \
                open(root / split / "label.csv", "w", newline="") as dst:
            writer = csv.writer(dst)
            for i, row in enumerate(csv.reader(src)):
                if i == n:
                    break
                writer.writerow([str(ferplus_dir / split / row[0]), *row[1:]])
    return root


@pytest.fixture(scope="module")
def trained(ferplus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """2 epochs of simam_resnet edge at 48x48 on 1,500 real FER+ faces (~45 s on one thread), class-balanced
    so that the model cannot score by predicting "neutral" for everything."""
    tmp = tmp_path_factory.mktemp("train")
    os.environ["FER_EDGE_HOME"] = str(tmp / "home")
    data = _ferplus_slice(ferplus_dir, tmp / "ferplus", 1500, 400)
    train(TrainConfig(model="simam_resnet", data=str(data), in_size=48, epochs=2, batch_size=32, lr=3e-3,
                      recipe="fast", soft_labels=True, balanced=True, out=str(tmp / "run"), threads=1,
                      progress=False))
    return data, tmp / "run"


def test_training_beats_chance_on_held_apart_faces(trained: tuple[Path, Path]) -> None:
    data, run = trained
    model, meta = load_checkpoint(run / "best.pt")
    val = load_split(data, "val", meta["input_spec"], meta["num_classes"])
    preds = predict(model, val.dataset).argmax(axis=1)
    labels = val.records.labels
    accuracy = float((preds == labels).mean())
    recalls = [float((preds[labels == c] == c).mean()) for c in np.unique(labels)]
    # uniform chance is 1/7 = 0.14; any constant guess has mean recall exactly 1/(classes present)
    assert accuracy > 1 / 7 + 0.1, accuracy
    assert np.mean(recalls) > 1 / len(recalls) + 0.04, recalls
    assert len(np.unique(preds)) >= 3
    assert meta["metrics"]["val_accuracy"] == pytest.approx(accuracy)
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in log] == [1, 2]


def test_the_checkpoint_records_the_prior_its_targets_had(trained: tuple[Path, Path]) -> None:
    """Class-balanced sampling draws every class equally often, so the recorded prior is the mean,
    over classes, of each class's mean vote distribution (not FER+'s neutral-heavy frequencies)."""
    data, run = trained
    prior = np.asarray(read_checkpoint(run / "best.pt")["training"]["class_prior"])
    _, meta = load_checkpoint(run / "best.pt")
    records = load_split(data, "train", meta["input_spec"], meta["num_classes"]).records
    present = np.unique(records.labels)
    expected = np.mean([records.soft[records.labels == c].mean(axis=0) for c in present], axis=0)
    np.testing.assert_allclose(prior, np.maximum(expected, 1e-6), atol=1e-5)
    frequency = records.soft.mean(axis=0)
    assert prior.sum() == pytest.approx(1.0, abs=1e-5) and not np.allclose(prior, frequency, atol=0.02)


def test_checkpoint_reloads_to_identical_outputs(trained: tuple[Path, Path]) -> None:
    _, run = trained
    raw = read_checkpoint(run / "last.pt")
    model, meta = load_checkpoint(run / "last.pt")
    assert meta["model_id"] == "simam_resnet" and meta["classes"][1] == "happy" and meta["in_size"] == [48, 48]
    assert raw["model_kwargs"] == model.arch_kwargs  # what the trained model was built with
    assert "optimizer" not in meta and "optimizer" in raw
    from fer_edge.models import create_model

    fresh = create_model("simam_resnet", 7, "edge", 48)
    fresh.load_state_dict(raw["state_dict"])
    fresh.eval()
    x = torch.randn(4, 3, 48, 48)
    with torch.no_grad():
        assert torch.equal(model(x), fresh(x))


@pytest.mark.parametrize("mixup", [0.0, 0.2])
def test_resume_after_interrupt_repeats_the_next_epoch(ferplus_dir: Path, tmp_path: Path, mixup: float) -> None:
    os.environ["FER_EDGE_HOME"] = str(tmp_path / "home")
    data = _ferplus_slice(ferplus_dir, tmp_path / "ferplus", 160, 40)
    common: dict[str, Any] = {"model": "simam_resnet", "data": str(data), "in_size": 32, "epochs": 2,
                              "batch_size": 32, "recipe": "fast", "soft_labels": True, "threads": 1,
                              "progress": False, "mixup": mixup}
    train(TrainConfig(**common, out=str(tmp_path / "straight")))
    train(TrainConfig(**common, out=str(tmp_path / "cut"), stop_after=1))
    assert read_checkpoint(tmp_path / "cut" / "last.pt")["epoch"] == 1
    train(TrainConfig(**common, out=str(tmp_path / "cut"), resume=True))
    straight, resumed = read_checkpoint(tmp_path / "straight" / "last.pt"), read_checkpoint(tmp_path / "cut" / "last.pt")
    assert resumed["epoch"] == 2
    for key, value in straight["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key
    assert straight["history"][1]["train_loss"] == resumed["history"][1]["train_loss"]


def test_mixup_blends_faces_and_targets_with_one_weight() -> None:
    from fer_edge.training.augment import mixup

    torch.manual_seed(0)
    x, labels = torch.rand(16, 1, 8, 8), torch.randint(0, 7, (16,))
    rng_state = torch.get_rng_state()
    mixed, target = mixup(x, labels, 0.4, 7)
    assert target.shape == (16, 7) and torch.allclose(target.sum(dim=1), torch.ones(16))
    # each face is lam * itself + (1 - lam) * one other face, and its target the same blend of one-hots
    lam = float(target[torch.arange(16), labels].min())  # a face blended with another class keeps lam of its own
    one_hot = torch.nn.functional.one_hot(labels, 7).float()
    for i in range(16):
        partners = [j for j in range(16) if torch.allclose(mixed[i], lam * x[i] + (1 - lam) * x[j], atol=1e-6)]
        assert partners, f"face {i} is not a blend of itself and another face with weight {lam}"
        assert torch.allclose(target[i], lam * one_hot[i] + (1 - lam) * one_hot[partners[0]], atol=1e-6)
    torch.set_rng_state(rng_state)
    again, _ = mixup(x, labels, 0.4, 7)
    assert torch.equal(mixed, again), "the blend must be a function of torch's seed (resume repeats it)"
    assert not torch.equal(mixed, x)


def test_resume_with_other_settings_is_refused(ferplus_dir: Path, tmp_path: Path) -> None:
    from fer_edge.errors import InvalidInputError

    os.environ["FER_EDGE_HOME"] = str(tmp_path / "home")
    data = _ferplus_slice(ferplus_dir, tmp_path / "ferplus", 64, 20)
    common: dict[str, Any] = {"model": "simam_resnet", "data": str(data), "in_size": 32, "batch_size": 32,
                              "recipe": "fast", "threads": 1, "progress": False, "out": str(tmp_path / "run")}
    train(TrainConfig(**common, epochs=1))
    with pytest.raises(InvalidInputError, match="epochs"):
        train(TrainConfig(**common, epochs=3, resume=True))


def test_init_fine_tunes_the_shipped_weights(ferplus_dir: Path, tmp_path: Path) -> None:
    """``init`` starts from trained weights: at a negligible learning rate the run ends where the shipped
    simam_resnet is (its parameters, and its accuracy on real valid faces), far above a random start."""
    from fer_edge.models.pretrained import pretrained_checkpoint

    os.environ["FER_EDGE_HOME"] = str(tmp_path / "home")
    data = _ferplus_slice(ferplus_dir, tmp_path / "ferplus", 64, 300)
    train(TrainConfig(model="simam_resnet", data=str(data), in_size=48, epochs=1, batch_size=32, lr=1e-9,
                      recipe="fast", soft_labels=True, threads=1, progress=False, init="simam_resnet",
                      out=str(tmp_path / "run")))
    tuned = read_checkpoint(tmp_path / "run" / "last.pt")
    shipped = pretrained_checkpoint("simam_resnet")["state_dict"]
    model, _ = load_checkpoint(tmp_path / "run" / "last.pt")
    for name, _param in model.named_parameters():
        torch.testing.assert_close(tuned["state_dict"][name], shipped[name].float(), atol=1e-5, rtol=0)
    assert tuned["metrics"]["val_accuracy"] > 0.75, tuned["metrics"]
    parent = pretrained_checkpoint("simam_resnet")
    origin = tuned["training"]["initialised_from"]
    assert origin["weights"] == "simam_resnet" and origin["epoch"] == parent["epoch"]
    assert origin["config"] == parent["training"]["config"]


def test_init_with_weights_of_another_model_is_refused(trained: tuple[Path, Path], tmp_path: Path) -> None:
    from fer_edge.errors import InvalidInputError

    data, run = trained
    with pytest.raises(InvalidInputError, match="model_id"):
        train(TrainConfig(model="local_joint", data=str(data), in_size=48, epochs=1, recipe="fast", threads=1,
                          progress=False, init=str(run / "best.pt"), out=str(tmp_path / "run")))


def test_weight_average_recomputes_batch_norm_and_scores_the_held_out_faces(trained: tuple[Path, Path],
                                                                            tmp_path: Path) -> None:
    """The soup's weights are the mean of its sources'; its first batch norm's running mean is the mean of
    that layer's input over the kept (not held-out) training faces; its held-out accuracy is reproducible."""
    from fer_edge.training.averaging import average_checkpoints
    from fer_edge.training.datasets import FaceDataset, holdout_indices

    data, run = trained
    sources = [run / "last.pt", tmp_path / "other.pt"]
    raw = read_checkpoint(run / "last.pt")
    torch.save({**raw, "state_dict": {k: v + 0.01 if v.is_floating_point() else v
                                      for k, v in raw["state_dict"].items()}}, sources[1])
    metrics = average_checkpoints([str(p) for p in sources], tmp_path / "soup.pt", str(data), holdout=0.1, seed=0,
                                  batch_size=1350)
    soup, meta = load_checkpoint(tmp_path / "soup.pt")
    for name, param in soup.named_parameters():
        torch.testing.assert_close(param.detach(), raw["state_dict"][name] + 0.005, atol=1e-6, rtol=0)
    train_split = load_split(data, "train", meta["input_spec"], meta["num_classes"])
    held, kept = holdout_indices(len(train_split.records), 0, 0.1)
    norm = next(m for m in soup.modules() if isinstance(m, torch.nn.BatchNorm2d))
    seen: list[torch.Tensor] = []
    hook = norm.register_forward_hook(lambda _m, inputs, _out: seen.append(inputs[0].mean(dim=(0, 2, 3))))
    kept_faces = FaceDataset(train_split.records.subset(kept), train_split.images[kept], meta["input_spec"])
    predict(soup, kept_faces, batch_size=len(kept))
    hook.remove()
    torch.testing.assert_close(norm.running_mean, seen[0], atol=1e-4, rtol=1e-4)
    held_faces = FaceDataset(train_split.records.subset(held), train_split.images[held], meta["input_spec"])
    accuracy = float((predict(soup, held_faces).argmax(axis=1) == held_faces.records.labels).mean())
    assert metrics["val_accuracy"] == pytest.approx(accuracy) and metrics["val_images"] == len(held)
    assert [p["weights"] for p in read_checkpoint(tmp_path / "soup.pt")["training"]["averaged_from"]] == \
        [str(p) for p in sources]


def test_torchrun_two_gloo_processes(tmp_path: Path) -> None:
    import cv2

    rng = np.random.default_rng(0)
    for name in ("happy", "sad"):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(24):
            cv2.imwrite(str(tmp_path / "data" / name / f"{i}.png"), rng.integers(0, 255, (40, 40), dtype=np.uint8))
    fer_edge_cli = shutil.which("fer-edge")
    assert fer_edge_cli, "the fer-edge console script is not installed"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
           "--no-python", fer_edge_cli, "train", "--model", "simam_resnet", "--data", str(tmp_path / "data"),
           "--in-size", "32", "--epochs", "1", "--batch-size", "8", "--threads", "1", "--recipe", "fast",
           "--out", str(tmp_path / "run"), "--no-progress"]
    env = {**ENV, "FER_EDGE_HOME": str(tmp_path / "home")}
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    ckpt = read_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["training"]["world_size"] == 2 and ckpt["epoch"] == 1
