"""The zoo's layers against direct NumPy formulas, and their float16 behaviour on large inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fer_edge.models.han_pff import SpatialGradient
from fer_edge.models.layers.attention import CA, ECA, LocalContextAttention, MixedAttention
from fer_edge.models.layers.cc_attention import CCAttention, CCAttentionCore
from fer_edge.models.layers.norm import LayerNorm2d, safe_mean
from fer_edge.models.layers.simam import SimAM

SHAPES = [(2, 3, 7, 5), (1, 4, 16, 16), (2, 2, 1, 1), (1, 8, 3, 1)]


def simam_numpy(x: np.ndarray, lam: float = 1e-4) -> np.ndarray:
    mu = x.mean(axis=(2, 3), keepdims=True)
    d2 = (x - mu) ** 2
    n = max(x.shape[2] * x.shape[3] - 1, 1)
    e = d2 / (4 * (d2.sum(axis=(2, 3), keepdims=True) / n + lam)) + 0.5
    return x / (1 + np.exp(-e))


def cc_core_numpy(x: np.ndarray, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    z = k * x.mean(axis=(2, 3), keepdims=True) + q
    z = z.reshape(*z.shape[:2], -1)
    r = np.exp(z - z.max(axis=-1, keepdims=True))
    r = (r / r.sum(axis=-1, keepdims=True)).reshape(x.shape)
    return x + r * v


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("lam", [1e-4, 0.5])
def test_simam_matches_numpy(shape: tuple[int, ...], lam: float) -> None:
    x = np.random.default_rng(0).normal(0, 3, shape)
    y = SimAM(lam)(torch.tensor(x, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(y, simam_numpy(x, lam), atol=1e-5, rtol=0)


@pytest.mark.parametrize("shape", SHAPES)
def test_cc_attention_core_matches_numpy(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(1)
    x, q, k, v = (rng.normal(0, 2, shape) for _ in range(4))
    out = CCAttentionCore()(*(torch.tensor(t, dtype=torch.float32) for t in (x, q, k, v))).numpy()
    np.testing.assert_allclose(out, cc_core_numpy(x, q, k, v), atol=1e-5, rtol=0)


def large(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """Values spread over [-1e3, 1e3], plus a constant plane (max-abs scaling must not divide by 0)."""
    x = (torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1) * 1e3
    x[0, 0] = 1e3
    return x


def test_simam_float16_stays_finite_where_the_direct_formula_overflows() -> None:
    x = large((2, 4, 28, 28))
    naive = x.half() - x.half().mean(dim=(2, 3), keepdim=True)
    assert not torch.isfinite((naive * naive).sum(dim=(2, 3))).all()  # the hazard is real in FP16
    y16 = SimAM()(x.half())
    assert torch.isfinite(y16).all()
    y32 = SimAM()(x)
    assert torch.allclose(y16.float(), y32, rtol=5e-3, atol=2.0)  # float16 has ~3 decimal digits at 1e3


def test_cc_attention_core_float16_stays_finite() -> None:
    x, q, k, v = (large((2, 4, 7, 7), seed) for seed in range(4))
    out16 = CCAttentionCore()(x.half(), q.half(), k.half(), v.half())
    assert out16.dtype == torch.float16 and torch.isfinite(out16).all()
    assert (k.half() * x.half().mean(dim=(2, 3), keepdim=True)).isinf().any()  # the FP16 hazard exists
    ref = cc_core_numpy(*(t.double().numpy() for t in (x, q, k, v)))
    np.testing.assert_allclose(out16.float().numpy(), ref, rtol=5e-3, atol=2.0)


def test_layernorm2d_matches_layer_norm_and_is_fp16_safe() -> None:
    ln = LayerNorm2d(6)
    with torch.no_grad():
        ln.weight.uniform_(0.5, 1.5)
        ln.bias.uniform_(-1, 1)
    x = torch.randn(2, 6, 5, 3) * 4
    ref = torch.nn.functional.layer_norm(x.permute(0, 2, 3, 1), (6,), ln.weight, ln.bias, 1e-6).permute(0, 3, 1, 2)
    torch.testing.assert_close(ln(x), ref, atol=1e-5, rtol=1e-5)
    big = large((2, 6, 5, 3))
    out16 = ln.half()(big.half())
    assert torch.isfinite(out16).all()
    torch.testing.assert_close(out16.float(), ln.float()(big), atol=2e-2, rtol=1e-2)


def test_safe_mean_equals_mean_and_bounds_float16_sums() -> None:
    x = torch.randn(2, 3, 9, 11)
    torch.testing.assert_close(safe_mean(x, (2, 3)), x.mean(dim=(2, 3), keepdim=True))
    big = torch.full((1, 1, 28, 28), 1e3, dtype=torch.float16)
    assert big.sum().isinf()  # 784 * 1e3 > 65504
    assert safe_mean(big, (2, 3)).item() == pytest.approx(1e3, rel=1e-3)


@pytest.mark.parametrize("layer", [CA(8), ECA(8), MixedAttention(8), LocalContextAttention(8), CCAttention(8)])
def test_attention_blocks_keep_shape_and_gradients(layer: torch.nn.Module) -> None:
    x = torch.randn(2, 8, 6, 5, requires_grad=True)
    y = layer(x)
    assert y.shape == x.shape
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_plugin_seams() -> None:
    simam = SimAM(2e-4)
    assert SimAM.plugin_op == "SimAM_TRT" and simam.plugin_attrs() == {"lambda": 2e-4}
    block = CCAttention(16)
    assert isinstance(block.core, CCAttentionCore)
    assert CCAttentionCore.plugin_op == "CCAttention_TRT" and block.core.plugin_attrs() == {}
    with pytest.raises(ValueError, match="lambda"):
        SimAM(0.0)


def test_eca_kernel_size_follows_channel_count() -> None:
    assert ECA(64).conv.kernel_size == (3,)
    assert ECA(1024).conv.kernel_size == (5,)


def test_spatial_gradient_is_sobel_magnitude() -> None:
    ramp = torch.arange(8.0).repeat(8, 1)  # intensity grows by 1 per column
    x = torch.stack([ramp, ramp.t()]).unsqueeze(0)  # channel 0: d/dx = 1, channel 1: d/dy = 1
    g = SpatialGradient(2)(x)
    assert torch.allclose(g[0, :, 2:-2, 2:-2], torch.full((2, 4, 4), 8.0))  # Sobel gain 8, magnitude
    assert torch.isfinite(SpatialGradient(2)(x.half() * 1e3)).all()
