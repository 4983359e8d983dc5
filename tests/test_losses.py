"""The training losses against hand computations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fer_edge.training.losses import (
    CENTER_LOSS_LAMBDA,
    CenterLoss,
    FocalLoss,
    RegionIndependenceLoss,
    SoftTargetCrossEntropy,
    joint_loss,
)


def test_soft_cross_entropy_on_indices_and_votes() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    ce = SoftTargetCrossEntropy()
    idx = torch.tensor([0, 2])
    torch.testing.assert_close(ce(logits, idx), F.cross_entropy(logits, idx))
    torch.testing.assert_close(ce(logits, F.one_hot(idx, 3).float()), F.cross_entropy(logits, idx))
    votes = torch.tensor([[6.0, 4.0, 0.0], [0.0, 0.0, 10.0]])  # raw FER+ vote counts
    logp = F.log_softmax(logits, dim=1)
    expected = -(0.6 * logp[0, 0] + 0.4 * logp[0, 1] + logp[1, 2]) / 2
    torch.testing.assert_close(ce(logits, votes), expected)
    with pytest.raises(ValueError, match="shape"):
        ce(logits, torch.ones(2, 4))


def test_center_loss_by_hand_and_centres_learn() -> None:
    loss = CenterLoss(num_classes=2, feat_dim=2)
    with torch.no_grad():
        loss.centers.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    features = torch.tensor([[3.0, 4.0], [1.0, 2.0]])
    # sample 0 -> centre 0: |(3,4)|^2 = 25; sample 1 -> centre 1: |(0,1)|^2 = 1; mean/2 = 6.5
    assert loss(features, torch.tensor([0, 1])).item() == pytest.approx(6.5)
    assert loss(features, torch.tensor([[0.9, 0.1], [0.2, 0.8]])).item() == pytest.approx(6.5)  # soft -> argmax
    assert CENTER_LOSS_LAMBDA == 0.01
    opt = torch.optim.SGD(loss.parameters(), lr=0.5)
    before = loss(features, torch.tensor([0, 1])).item()
    loss(features, torch.tensor([0, 1])).backward()
    opt.step()
    assert loss(features, torch.tensor([0, 1])).item() < before


def test_region_independence_pull_and_push() -> None:
    loss = RegionIndependenceLoss(num_classes=2, feat_dim=2, margin=1.0)
    with torch.no_grad():
        loss.centers.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))  # distance sqrt(2) > margin: no push
    features = torch.tensor([[2.0, 0.0], [0.0, 5.0]])  # on their own (normalised) centres: no pull
    assert loss(features, torch.tensor([0, 1])).item() == pytest.approx(0.0, abs=1e-6)
    # wrong classes: each normalised feature is sqrt(2) from its centre -> pull = 0.5 * 2 = 1
    assert loss(features, torch.tensor([1, 0])).item() == pytest.approx(1.0, abs=1e-6)
    with torch.no_grad():
        loss.centers.copy_(torch.tensor([[1.0, 0.0], [1.0, 0.1]]))  # nearly equal centres are pushed apart
    close = loss(torch.tensor([[1.0, 0.0], [1.0, 0.1]]), torch.tensor([0, 1]))
    dist = math.dist((1.0, 0.0), (1 / math.hypot(1, 0.1), 0.1 / math.hypot(1, 0.1)))
    assert close.item() == pytest.approx((1.0 - dist) ** 2, rel=1e-4)
    close.backward()
    assert loss.centers.grad is not None and loss.centers.grad.abs().sum() > 0


def test_focal_loss_by_hand() -> None:
    """Eq. 7 of seeds/003: summed over the attributes, averaged over the batch (not over both)."""
    logits = torch.tensor([[0.0, 2.0, -1.0], [0.0, 2.0, -1.0]])
    target = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    torch.testing.assert_close(FocalLoss(gamma=0.0)(logits, target), bce.sum(1).mean())
    p_t = torch.tensor([0.5, torch.sigmoid(torch.tensor(2.0)).item(), 1 - torch.sigmoid(torch.tensor(-1.0)).item()])
    expected = ((1 - p_t) ** 2 * -torch.log(p_t)).sum()
    torch.testing.assert_close(FocalLoss()(logits, target), expected)
    assert FocalLoss()(logits, target) < bce.sum(1).mean()  # easy attributes are down-weighted
    alpha = FocalLoss(alpha=0.25)(logits, target)
    torch.testing.assert_close(alpha, (((1 - p_t) ** 2 * -torch.log(p_t)) * torch.tensor([0.25, 0.25, 0.75])).sum())


def test_joint_loss_sums_the_quadrant_losses() -> None:
    target = torch.tensor([0, 1])
    regions = [torch.randn(2, 7, generator=torch.Generator().manual_seed(i)) for i in range(4)]
    expected = sum(F.cross_entropy(z, target) for z in regions)
    torch.testing.assert_close(joint_loss(regions, target, SoftTargetCrossEntropy()), expected)
