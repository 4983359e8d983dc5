"""CPU reference of the plugin kernels (fer_edge._C, the same math headers the CUDA kernels compile)
against a float64 NumPy oracle and against the PyTorch layers the export replaces."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from fer_edge.errors import InvalidInputError, PluginLibraryError

plugins = pytest.importorskip("fer_edge.plugins")
try:
    from fer_edge import _C
except ImportError:
    pytest.skip("fer_edge._C is not built (python setup.py build_ext --inplace)", allow_module_level=True)

SHAPES = [(2, 3, 7, 5), (1, 4, 1, 1), (3, 2, 1, 9), (2, 8, 14, 14), (1, 2, 13, 11)]
SCALES = [1.0, 1e3]
LAMBDA = 1e-4


def simam64(x: np.ndarray, lambda_: float) -> np.ndarray:
    x = x.astype(np.float64)
    n = max(x.shape[2] * x.shape[3] - 1, 1)
    d2 = (x - x.mean(axis=(2, 3), keepdims=True)) ** 2
    e = d2 / (4 * (d2.sum(axis=(2, 3), keepdims=True) / n + lambda_)) + 0.5
    return x / (1 + np.exp(-e))


def cc64(x: np.ndarray, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    x, q, k, v = (a.astype(np.float64) for a in (x, q, k, v))
    logits = k * x.mean(axis=(2, 3), keepdims=True) + q
    flat = logits.reshape(*logits.shape[:2], -1)
    r = np.exp(flat - flat.max(axis=-1, keepdims=True))
    r /= r.sum(axis=-1, keepdims=True)
    return x + r.reshape(x.shape) * v


def inputs(shape: tuple[int, ...], scale: float, count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(shape) * scale + scale * 0.3).astype(np.float32) for _ in range(count)]


def fp32_tol(*arrays: np.ndarray) -> float:
    """1e-5 absolute at unit scale; FP32 cannot resolve 1e-5 at 1e3, so 1e-6 relative there."""
    return max(1e-5, 1e-6 * max(float(np.abs(a).max()) for a in arrays))


def assert_fp16_close(actual: np.ndarray, expected: np.ndarray, rtol: float) -> None:
    """Per element within rtol, with a floor of rtol * max|expected| for values near zero."""
    assert actual.dtype == np.float16
    a, e = actual.astype(np.float64), expected.astype(np.float64)
    assert np.isfinite(a).all()
    bound = rtol * (np.abs(e) + np.abs(e).max())
    assert (np.abs(a - e) <= bound).all(), f"max error {np.abs(a - e).max()} vs bound {bound.min()}"


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("shape", SHAPES)
def test_simam_fp32_matches_float64(shape: tuple[int, ...], scale: float) -> None:
    (x,) = inputs(shape, scale, 1)
    out = plugins.simam_reference(x, LAMBDA)
    assert out.dtype == np.float32 and out.shape == x.shape
    np.testing.assert_allclose(out, simam64(x, LAMBDA), rtol=0, atol=fp32_tol(x))


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("shape", SHAPES)
def test_cc_attention_fp32_matches_float64(shape: tuple[int, ...], scale: float) -> None:
    x, q, k, v = inputs(shape, scale, 4)
    out = plugins.cc_attention_reference(x, q, k, v)
    assert out.dtype == np.float32 and out.shape == x.shape
    np.testing.assert_allclose(out, cc64(x, q, k, v), rtol=0, atol=fp32_tol(x, v))


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("shape", SHAPES)
def test_fp16_rounds_once_from_fp32(shape: tuple[int, ...], scale: float) -> None:
    """FP16 I/O with FP32 arithmetic: within one FP16 rounding (2^-11) of the exact result."""
    x, q, k, v = (a.astype(np.float16) for a in inputs(shape, scale, 4))
    assert_fp16_close(plugins.simam_reference(x, LAMBDA), simam64(x, LAMBDA), rtol=2.0**-11 + 1e-6)
    assert_fp16_close(plugins.cc_attention_reference(x, q, k, v), cc64(x, q, k, v), rtol=2.0**-11 + 1e-6)


def test_large_planes_stay_finite_in_fp16() -> None:
    """Sums of squares of 1e3-sized FP16 values overflow FP16; the FP32 statistics must not."""
    (x,) = inputs((1, 2, 56, 56), 1e3, 1)
    out = plugins.simam_reference(x.astype(np.float16), LAMBDA)
    assert np.isfinite(out).all()


class TestAgainstPyTorchLayers:
    """The plugin replaces these modules in the exported graph, so they must agree."""

    torch = pytest.importorskip("torch")

    @pytest.mark.parametrize("scale", SCALES)
    @pytest.mark.parametrize("shape", SHAPES)
    def test_simam(self, shape: tuple[int, ...], scale: float) -> None:
        from fer_edge.models.layers.simam import SimAM

        (x,) = inputs(shape, scale, 1, seed=1)
        layer = SimAM(lambda_=LAMBDA)
        with self.torch.no_grad():
            ref32 = layer(self.torch.from_numpy(x)).numpy()
            ref16 = layer(self.torch.from_numpy(x).half()).numpy()
        np.testing.assert_allclose(plugins.simam_reference(x, LAMBDA), ref32, rtol=0, atol=fp32_tol(x))
        assert_fp16_close(plugins.simam_reference(x.astype(np.float16), LAMBDA), ref16, rtol=2e-3)

    @pytest.mark.parametrize("scale", SCALES)
    @pytest.mark.parametrize("shape", SHAPES)
    def test_cc_attention(self, shape: tuple[int, ...], scale: float) -> None:
        from fer_edge.models.layers.cc_attention import CCAttentionCore

        arrays = inputs(shape, scale, 4, seed=2)
        core = CCAttentionCore()
        with self.torch.no_grad():
            ref32 = core(*(self.torch.from_numpy(a) for a in arrays)).numpy()
            ref16 = core(*(self.torch.from_numpy(a).half() for a in arrays)).numpy()
        np.testing.assert_allclose(plugins.cc_attention_reference(*arrays), ref32, rtol=0, atol=fp32_tol(*arrays))
        half = [a.astype(np.float16) for a in arrays]
        assert_fp16_close(plugins.cc_attention_reference(*half), ref16, rtol=2e-3)

    def test_simam_lambda_matches_plugin_attribute(self) -> None:
        from fer_edge.models.layers.simam import SimAM

        layer = SimAM(lambda_=0.5)
        (x,) = inputs((1, 3, 4, 4), 1.0, 1)
        with self.torch.no_grad():
            ref = layer(self.torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(plugins.simam_reference(x, layer.plugin_attrs()["lambda"]), ref, atol=1e-5)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: plugins.simam_reference(np.zeros((2, 3, 4), np.float32)), "NCHW"),
        (lambda: plugins.simam_reference(np.zeros((1, 1, 2, 2), np.float64)), "float32 or float16"),
        (lambda: plugins.simam_reference(np.zeros((1, 1, 2, 2), np.float32), 0.0), "lambda_"),
        (lambda: plugins.cc_attention_reference(*[np.zeros((1, 1, 2, 2), np.float32)] * 3 + [np.zeros((1, 1, 2, 3), np.float32)]), "v must match x"),
        (lambda: plugins.cc_attention_reference(*[np.zeros((1, 1, 2, 2), np.float32)] * 3 + [np.zeros((1, 1, 2, 2), np.float16)]), "v must match x"),
    ],
)
def test_invalid_inputs_are_named(call, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        call()


def test_native_module_checks_rank_itself() -> None:
    with pytest.raises(ValueError, match="4-D NCHW"):
        _C.simam(np.zeros((3, 3), np.float32), 1e-4)


def test_missing_extension_says_how_to_build(monkeypatch: pytest.MonkeyPatch) -> None:
    import fer_edge

    monkeypatch.setitem(sys.modules, "fer_edge._C", None)  # what Python sees when the .so is absent
    monkeypatch.delattr(fer_edge, "_C", raising=False)
    with pytest.raises(PluginLibraryError, match="pip install -e"):
        plugins.simam_reference(np.zeros((1, 1, 2, 2), np.float32))


def test_plugin_library_override(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv(plugins.PLUGIN_LIBRARY_ENV, str(tmp_path / "missing.so"))
    with pytest.raises(PluginLibraryError, match="not a file"):
        plugins.plugin_library_path()
    lib = tmp_path / "libcustom.so"
    lib.write_bytes(b"\x7fELF")
    monkeypatch.setenv(plugins.PLUGIN_LIBRARY_ENV, str(lib))
    assert plugins.plugin_library_path() == lib


def test_packaged_version_is_the_sdk_version(monkeypatch: pytest.MonkeyPatch) -> None:
    from fer_edge import __version__

    monkeypatch.delenv(plugins.PLUGIN_LIBRARY_ENV, raising=False)
    assert _C.PLUGIN_LIBRARY_VERSION == __version__
    expected = __version__ if plugins.plugin_library_path() is not None else None
    assert plugins.plugin_library_version() == expected
