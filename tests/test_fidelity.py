"""Fidelity of the zoo to its papers: each test would have caught one defect found by reading the
code against ../shared/seeds/ (the seed-models issue), and the border-band check covers the
whole registry so no model silently ignores part of its input.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fer_edge.models import VARIANTS, create_model, list_models
from fer_edge.models.han_pff import IFFB, MultiScaleChannelAttention
from fer_edge.models.layers.norm import safe_mean
from fer_edge.models.local_joint import QuadrantSplit
from fer_edge.training.losses import RegionIndependenceLoss
from fer_edge.training.presets import TrainObjective, build_optimizer, recipe_for


def _randomize_norms(model: torch.nn.Module) -> None:
    """Un-zero the residual BN scales and layer scales (zero-init makes every block an identity)."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
        if isinstance(getattr(m, "gamma", None), torch.nn.Parameter):
            m.gamma.data.fill_(0.5)


def _calibrate_norms(model: torch.nn.Module, x: torch.Tensor) -> None:
    """BN running statistics from one batch (cumulative average), then eval: at random init a deep
    net with unit running variances is nearly constant in its input (ResNet-50 at 224 px moves its
    logits by 1e-6 between two random images), which would make every band look dead."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    model(x)
    model.eval()


CASES = [(name, variant, size) for name in list_models() for variant in VARIANTS for size in ("default", 48)]


@pytest.mark.parametrize("name,variant,size", CASES, ids=[f"{n}-{v}-{s}" for n, v, s in CASES])
def test_every_border_band_reaches_the_logits(name: str, variant: str, size: object) -> None:
    """Perturbing any 16-pixel border band moves the logits by a fair share of what the centre does.

    faer edge at 112 px dropped its last rows/columns in the stride-2 downsamplers: the bottom band
    moved the logits by 6e-7 while the centre moved them by ~1e-1.
    """
    torch.manual_seed(0)
    model = create_model(name, variant=variant, in_size=None if size == "default" else size).eval()
    _randomize_norms(model)
    h, w = model.default_cfg["in_size"]
    x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(2))
    batch = [x]
    for band in ("top", "bottom", "left", "right"):
        y = x.clone()
        if band == "top":
            y[:, :, :16] += 1.0
        elif band == "bottom":
            y[:, :, -16:] += 1.0
        elif band == "left":
            y[:, :, :, :16] += 1.0
        else:
            y[:, :, :, -16:] += 1.0
        batch.append(y)
    centre = x.clone()
    centre[:, :, h // 2 - 8: h // 2 + 8, w // 2 - 8: w // 2 + 8] += 1.0
    batch.append(centre)
    with torch.no_grad():
        _calibrate_norms(model, torch.randn(4, 3, h, w, generator=torch.Generator().manual_seed(3)))
        logits = model(torch.cat(batch))
    moves = (logits[1:] - logits[0]).abs().amax(dim=1)
    centre_move = float(moves[-1])
    assert centre_move > 1e-5, f"{name}: the centre does not reach the logits ({centre_move:.2e})"
    for band, move in zip(("top", "bottom", "left", "right"), moves[:-1].tolist()):
        assert move > 0.01 * centre_move, f"{name} {variant} {h}px: {band} band moves logits {move:.2e} " \
                                          f"vs centre {centre_move:.2e}"


def test_han_pff_shared_classifier_is_trained() -> None:
    """The shared classifier (one per model, on every level's vector) gets gradient from the objective."""
    torch.manual_seed(0)
    model = create_model("han_pff", variant="edge", in_size=48)
    for recipe in ("paper", "fast"):
        objective = TrainObjective(model, recipe_for("han_pff", recipe), 7).train()
        model.zero_grad(set_to_none=True)
        loss, _ = objective(torch.randn(4, 3, 48, 48), torch.tensor([0, 1, 2, 3]))
        loss.backward()
        grad = model.shared_classifier.weight.grad
        assert grad is not None and grad.abs().sum() > 0, recipe


def test_han_pff_region_independence_acts_on_every_level() -> None:
    """One region-independence term (own centres) per level vector plus one on the fused vector."""
    torch.manual_seed(0)
    model = create_model("han_pff", variant="edge", in_size=48)
    objective = TrainObjective(model, recipe_for("han_pff", "fast"), 7).train()
    assert objective.independence is not None and len(objective.independence) == 1 + model.num_levels
    loss, _ = objective(torch.randn(4, 3, 48, 48), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    for term in objective.independence:
        assert isinstance(term, RegionIndependenceLoss)
        assert term.centers.grad is not None and term.centers.grad.abs().sum() > 0


def _ms_cam_by_hand(attn: MultiScaleChannelAttention, x: torch.Tensor) -> torch.Tensor:
    """sigmoid(L(x) + G(x)), each branch conv1x1 -> BN -> ReLU -> conv1x1 -> BN written out as einsums."""

    def branch(seq: torch.nn.Sequential, v: torch.Tensor) -> torch.Tensor:
        for i, unit in enumerate(seq):
            conv, bn = unit[0], unit[1]
            v = torch.einsum("oc,bchw->bohw", conv.weight[:, :, 0, 0], v)
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            v = (v - bn.running_mean[None, :, None, None]) * scale[None, :, None, None] + bn.bias[None, :, None, None]
            if i == 0:
                v = v.clamp_min(0)
        return v

    return torch.sigmoid(branch(attn.local, x) + branch(attn.global_ctx, x.mean(dim=(2, 3), keepdim=True)))


def test_iffb_gate_is_a_channel_attention_weight() -> None:
    """IFFB = iAFF: w1 = MS-CAM(a + b), first = w1 a + (1 - w1) b, w2 = MS-CAM(first), out = w2 a + (1 - w2) b.

    The defect: the gate was sigmoid(ECA(ctx)) with ECA returning ctx * weight, so no channel
    attention formed. Checked against a hand computation on a tiny tensor.
    """
    torch.manual_seed(0)
    block = IFFB(4).eval()
    _randomize_norms(block)
    a_full, b = torch.randn(1, 4, 6, 6), torch.randn(1, 4, 3, 3)
    with torch.no_grad():
        a = block.down(a_full)
        w1 = _ms_cam_by_hand(block.attn1, a + b)
        first = w1 * a + (1 - w1) * b
        w2 = _ms_cam_by_hand(block.attn2, first)
        torch.testing.assert_close(block(a_full, b), w2 * a + (1 - w2) * b)
        weight = block.attn1(a + b)
    assert weight.shape == (1, 4, 3, 3) and bool(((weight > 0) & (weight < 1)).all())
    assert float(weight.std()) > 1e-3  # a real per-channel/position weight, not a constant


def test_faer_paper_recipe_lowers_the_backbone_lr_only_for_pretrained_weights() -> None:
    assert recipe_for("faer", "paper").backbone_lr_scale == 1.0
    assert recipe_for("faer", "paper", pretrained_backbone=True).backbone_lr_scale == 0.01
    model = create_model("faer", variant="edge", in_size=48)
    optimizer = build_optimizer(TrainObjective(model, recipe_for("faer", "paper"), 7), recipe_for("faer", "paper"))
    assert {group["lr"] for group in optimizer.param_groups} == {2.5e-4}


def test_faer_center_loss_uses_the_pooled_vector_before_the_head_norm() -> None:
    torch.manual_seed(0)
    model = create_model("faer", variant="edge", in_size=48).eval()
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        pooled = safe_mean(model.cc_attention(model.stages(model.stem(x))), (2, 3))
        out = model.forward_train(x)
        torch.testing.assert_close(out["features"], pooled.flatten(1))
        torch.testing.assert_close(out["logits"], model.fc(model.head_norm(pooled).flatten(1)))


@pytest.mark.parametrize("side", [3, 7, 4])
def test_local_joint_quadrants_are_equal(side: int) -> None:
    """3x3 (48 px) and 7x7 (112 px) maps split into four equal quadrants covering the whole map."""
    x = torch.randn(1, 2, side, side)
    quadrants = QuadrantSplit()(x)
    even = side + side % 2
    assert [q.shape[2:] for q in quadrants] == [torch.Size([even // 2, even // 2])] * 4
    resized = F.interpolate(x, size=(even, even), mode="bilinear", align_corners=False) if side % 2 else x
    torch.testing.assert_close(torch.cat([torch.cat(quadrants[:2], 3), torch.cat(quadrants[2:], 3)], 2), resized)


def test_local_joint_branches_have_their_own_trunk_stage() -> None:
    """Each quadrant runs the rest of the trunk (a bottleneck stage, own weights), not one 3x3 conv."""
    model = create_model("local_joint", variant="edge", in_size=48)
    trunks = [branch.trunk for branch in model.branches]
    assert all(type(t[0]).__name__ == "Bottleneck" for t in trunks)
    assert trunks[0][0].conv1[0].weight.data_ptr() != trunks[1][0].conv1[0].weight.data_ptr()
