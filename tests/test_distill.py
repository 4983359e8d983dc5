"""Distillation targets (``fer-edge train --teacher``): the teachers' real ONNX Runtime probabilities
blended with the data's votes, and teachers that cannot see the student's faces refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_package import SPEC, make_package

from fer_edge.constants import EXPRESSIONS_7
from fer_edge.engines.resolve import load_engine
from fer_edge.errors import InvalidInputError
from fer_edge.package import InputSpec
from fer_edge.training.distill import Teacher


def test_targets_blend_votes_with_the_ensemble_mean(tmp_path: Path) -> None:
    packages = [make_package(tmp_path, f"t{i}", seed=i).sidecar_path for i in range(2)]
    teacher = Teacher([str(p) for p in packages], SPEC, EXPRESSIONS_7, weight=0.25)
    x = torch.randn(3, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    votes = torch.tensor([[4.0, 6, 0, 0, 0, 0, 0], [0, 0, 10, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 4]])
    probs = []
    for path in packages:
        logits = load_engine(path)[0].infer(x.numpy())
        probs.append(np.exp(logits) / np.exp(logits).sum(1, keepdims=True))
    expected = 0.75 * votes / votes.sum(1, keepdim=True) + 0.25 * torch.from_numpy(np.mean(probs, axis=0))
    mixed = teacher.mix(x, votes)
    torch.testing.assert_close(mixed, expected.float(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(mixed.sum(1), torch.ones(3))
    assert teacher.mix(x, torch.tensor([0, 2, 6])).shape == (3, 7)  # index targets become one-hot first


def test_a_teacher_with_another_input_spec_or_bad_weight_is_refused(tmp_path: Path) -> None:
    other = make_package(tmp_path, "t64", spec=InputSpec(size=(64, 64), color="gray", mean=(0.5,) * 3,
                                                         std=(0.5,) * 3, alignment="fer2013"))
    with pytest.raises(InvalidInputError, match="student's preprocessed faces"):
        Teacher([str(other.sidecar_path)], SPEC, EXPRESSIONS_7, 0.5)
    with pytest.raises(InvalidInputError, match="teacher-weight"):
        Teacher([str(other.sidecar_path)], SPEC, EXPRESSIONS_7, 0.0)


def test_a_7_class_teacher_of_an_8_class_student_leaves_contempt_to_the_votes(tmp_path: Path) -> None:
    """The teacher knows no contempt: there the target is the votes' own share, and the teacher's
    probabilities spread the remaining mass over its 7 classes."""
    from fer_edge.constants import EXPRESSIONS_8

    path = make_package(tmp_path, "t7").sidecar_path
    teacher = Teacher([str(path)], SPEC, EXPRESSIONS_8, weight=0.5)
    x = torch.randn(2, 3, 48, 48, generator=torch.Generator().manual_seed(1))
    votes = torch.tensor([[2.0, 0, 0, 0, 0, 0, 0, 8], [5, 5, 0, 0, 0, 0, 0, 0]])
    logits = load_engine(path)[0].infer(x.numpy())
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    mixed = teacher.mix(x, votes).numpy()
    share = (votes / votes.sum(1, keepdim=True)).numpy()
    np.testing.assert_allclose(mixed[:, 7], share[:, 7], atol=1e-6)
    np.testing.assert_allclose(mixed[:, :7], 0.5 * share[:, :7] + 0.5 * probs * (1 - share[:, 7:]), atol=1e-6)
    np.testing.assert_allclose(mixed.sum(1), 1.0, atol=1e-6)
    with pytest.raises(InvalidInputError, match="beyond the student's"):
        Teacher([str(path)], SPEC, EXPRESSIONS_8[:6], 0.5)


def test_teacher_once_scores_clean_and_mirrored_faces_and_caches_them(tmp_path: Path) -> None:
    """``--teacher-once``: each face's target is the mean of the mix on the un-augmented face and on its
    mirror image, whatever augmentation the training dataset has; the cache is reused on resume,
    but only when it was made with the same teachers."""
    from fer_edge.training.augment import Augment
    from fer_edge.training.datasets import FaceDataset
    from fer_edge.training.readers import Records
    from fer_edge.training.train import _fix_targets

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 48, 48), dtype=np.uint8)
    votes = rng.integers(0, 5, (5, 7)).astype(np.float32) + np.eye(7, dtype=np.float32)[:5]
    records = Records(tmp_path, "test", EXPRESSIONS_7, [tmp_path / f"{i}.png" for i in range(5)],
                      votes.argmax(1), soft=votes)
    teacher = Teacher([str(make_package(tmp_path, "t").sidecar_path)], SPEC, EXPRESSIONS_7, weight=0.5)
    clean = torch.stack([FaceDataset(records, images, SPEC)[i][0] for i in range(5)])
    expected = (teacher.mix(clean, torch.from_numpy(votes)) + teacher.mix(clean.flip(-1), torch.from_numpy(votes))) / 2
    dataset = FaceDataset(records, images, SPEC, Augment(erase=1.0), soft_labels=True, seed=1)
    cache = tmp_path / "run" / "teacher_targets.npz"
    cache.parent.mkdir()
    _fix_targets(dataset, teacher, cache)
    np.testing.assert_allclose(dataset.records.soft, expected.numpy(), atol=1e-6)
    assert not np.allclose(expected.numpy(), votes / votes.sum(1, keepdims=True), atol=1e-3)
    uniform = np.full((5, 7), 1 / 7, dtype=np.float32)
    np.savez(cache, targets=uniform, key=np.asarray(teacher.fingerprint(5)))  # a resume reads the cache
    _fix_targets(dataset, teacher, cache)
    np.testing.assert_allclose(dataset.records.soft, 1 / 7)
    other = Teacher([str(make_package(tmp_path, "t2", seed=7).sidecar_path)], SPEC, EXPRESSIONS_7, weight=0.5)
    np.savez(cache, targets=uniform, key=np.asarray(other.fingerprint(5)))  # made with another teacher
    fresh = FaceDataset(records.subset(np.arange(5)), images, SPEC, soft_labels=True)
    fresh.records.soft = votes
    _fix_targets(fresh, teacher, cache)  # a cache keyed to other teachers is scored again, never reused
    np.testing.assert_allclose(fresh.records.soft, expected.numpy(), atol=1e-6)


def test_an_online_teacher_scores_the_blended_faces_the_student_sees(tmp_path: Path) -> None:
    """With ``--mixup`` and an online teacher, the teacher's share of the target is its answer on the
    blended face (function matching), not a blend of its answers on the two original faces."""
    from fer_edge.training.augment import mixup
    from fer_edge.training.train import TrainConfig, _student_batch

    teacher = Teacher([str(make_package(tmp_path, "t").sidecar_path)], SPEC, EXPRESSIONS_7, weight=0.5)
    cfg = TrainConfig(model="simam_resnet", data=str(tmp_path), mixup=0.4)
    x = torch.randn(8, 3, 48, 48, generator=torch.Generator().manual_seed(2))
    labels = torch.tensor([0, 1, 2, 3, 4, 5, 6, 0])
    torch.manual_seed(0)
    rng_state = torch.get_rng_state()
    faces, target = _student_batch(x, labels, teacher, cfg)
    torch.set_rng_state(rng_state)
    blended, blended_votes = mixup(x, labels, 0.4, 7)
    torch.testing.assert_close(faces, blended)
    torch.testing.assert_close(target, teacher.mix(blended, blended_votes))
    torch.set_rng_state(rng_state)
    _, blend_of_answers = mixup(x, teacher.mix(x, labels), 0.4, 7)
    assert (target - blend_of_answers).abs().max() > 1e-5, "the teacher must see the blended faces"
