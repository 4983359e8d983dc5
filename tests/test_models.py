"""Every registered model x variant: shapes, gradients, determinism, overfitting, ONNX parity, bad args.

Parametrized over the registry, so a newly registered model is tested at once. Paper variants
run at 64x64 (their 224 default only changes the cost); edge variants at 64 and 48.
"""

from __future__ import annotations

import hashlib
import io
import math
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from fer_edge.errors import InvalidInputError, ModelNotFoundError
from fer_edge.models import VARIANTS, ZooModel, create_model, list_models
from fer_edge.models.profile import count_macs

CASES = [(name, variant) for name in list_models() for variant in VARIANTS]
IDS = [f"{n}-{v}" for n, v in CASES]
EXTRAS = {"han_pff": "level_logits", "local_joint": "region_logits"}
# sha256 of simam_resnet edge's (name, shape) list: the shipped default is being trained on this layout
SIMAM_EDGE_SIGNATURE = "246ecc3b6385b03276f1aff5aca3ed6c5429c038fcbfddca3b004d1a8146ce2b"


def build(name: str, variant: str, num_classes: int = 7, **kw: object) -> ZooModel:
    torch.manual_seed(0)
    return create_model(name, num_classes=num_classes, variant=variant, in_size=64, **kw)


def randomize_norm_stats(model: torch.nn.Module) -> None:
    """Non-trivial BatchNorm statistics and affine terms, so eval-mode comparisons test something."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
        if hasattr(m, "gamma") and isinstance(m.gamma, torch.nn.Parameter):  # ConvNeXt layer scale
            m.gamma.data.fill_(0.5)


@pytest.mark.parametrize("name,variant", CASES, ids=IDS)
def test_forward_shapes_and_training_outputs(name: str, variant: str) -> None:
    model = build(name, variant, num_classes=8)
    x = torch.randn(2, 3, 64, 64)
    for mode in (True, False):
        model.train(mode)
        with torch.no_grad():
            assert model(x).shape == (2, 8)
            out = model.forward_train(x)
        assert out["logits"].shape == (2, 8)
        assert out["features"].shape == (2, model.num_features)
        if name in EXTRAS:
            extra = out[EXTRAS[name]]
            assert isinstance(extra, list) and len(extra) == 4 and all(z.shape == (2, 8) for z in extra)
    cfg = model.default_cfg
    assert cfg["model_id"] == name and cfg["variant"] == variant and cfg["num_classes"] == 8
    assert cfg["in_size"] == (64, 64) and cfg["color"] in ("rgb", "gray") and len(cfg["mean"]) == len(cfg["std"]) == 3


@pytest.mark.parametrize("name", list_models())
def test_edge_accepts_other_input_sizes(name: str) -> None:
    model = build(name, "edge").eval()
    for size in (48, 112, (64, 80)):
        hw = (size, size) if isinstance(size, int) else size
        assert model(torch.randn(1, 3, *hw)).shape == (1, 7)


def test_local_joint_fuses_decisions_by_mean_softmax() -> None:
    model = build("local_joint", "edge").eval()
    out = model.forward_train(torch.randn(3, 3, 64, 64))
    fused = torch.stack([z.softmax(1) for z in out["region_logits"]]).mean(0)
    torch.testing.assert_close(out["logits"].softmax(1), fused)
    torch.testing.assert_close(out["logits"].exp().sum(1), torch.ones(3))


def test_faer_attribute_head() -> None:
    model = build("faer", "edge", attribute_head=True)
    out = model.forward_train(torch.randn(2, 3, 64, 64))
    assert out["attributes"].shape == (2, 40)
    assert "attributes" not in build("faer", "edge").forward_train(torch.randn(2, 3, 64, 64))


def test_faer_edge_stem_leaves_the_last_stage_at_least_3x3() -> None:
    """At 48 px ConvNeXt's 4x patchify stem cut the face to 12x12 and left CC Attention a 2x2 map; below
    96 px the edge stem is an overlapping stride-2 one. At 112 px it stays ConvNeXt's own."""
    for size, stride, last in ((48, 2, 3), (64, 2, 4), (112, 4, 4)):
        model = create_model("faer", variant="edge", in_size=size)
        assert model.stem_stride == stride and model.arch_kwargs == {"stem_stride": stride}
        with torch.no_grad():
            assert model.stages(model.stem(torch.randn(1, 3, size, size))).shape[2:] == (last, last), size
    assert create_model("faer", variant="paper", in_size=48).stem_stride == 4  # the paper's stem, at any size


def test_checkpoints_rebuild_faer_with_the_stem_it_was_trained_with(tmp_path: Path) -> None:
    """Checkpoints record a model's architecture arguments; one from before the recording (faer edge
    trained with the 4x stem at 48 px) rebuilds with stride 4, not today's default for its size."""
    from fer_edge.package import InputSpec
    from fer_edge.training.checkpoint import checkpoint_meta, load_checkpoint, save_checkpoint

    spec, x = InputSpec(size=(48, 48)), torch.randn(2, 3, 48, 48)
    for stride, recorded in ((2, True), (4, True), (4, False)):
        torch.manual_seed(stride)
        model = create_model("faer", 7, "edge", 48, stem_stride=stride).eval()
        meta = checkpoint_meta("faer", "edge", 7, spec, model.arch_kwargs if recorded else None)
        rebuilt, _ = load_checkpoint(save_checkpoint(tmp_path / f"{stride}{recorded}.pt", model, meta))
        assert rebuilt.stem_stride == stride
        with torch.no_grad():
            torch.testing.assert_close(rebuilt(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize("name,variant", CASES, ids=IDS)
def test_backward_gives_finite_gradients(name: str, variant: str) -> None:
    no_drop_path = {"drop_path": 0.0} if name == "faer" else {}  # a dropped block has no gradient, rightly
    model = build(name, variant, **no_drop_path).train()
    randomize_norm_stats(model)  # un-zero the residual BN scales so every weight gets a gradient
    out = model.forward_train(torch.randn(2, 3, 64, 64))
    loss = torch.nn.functional.cross_entropy(out["logits"], torch.tensor([1, 3]))
    for z in out.get(EXTRAS.get(name, ""), []):
        loss = loss + torch.nn.functional.cross_entropy(z, torch.tensor([1, 3]))
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    dead = [k for k, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f"parameters without gradient: {dead[:5]}"


@pytest.mark.parametrize("name,variant", CASES, ids=IDS)
def test_eval_is_deterministic(name: str, variant: str) -> None:
    model = build(name, variant).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
        # one image gives the same logits alone as inside a batch (no cross-sample leakage)
        torch.testing.assert_close(model(x[:1]), model(x)[:1], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", list_models())
def test_edge_overfits_a_small_batch(name: str) -> None:
    model = build(name, "edge", drop_rate=0.0).train()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 3, 48, 48, generator=g), torch.arange(16) % 7
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(20):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("name", list_models())
def test_edge_runs_in_float16(name: str) -> None:
    """FP16 engines are the edge default: the whole network must stay finite and close in half precision."""
    model = build(name, "edge").eval()
    randomize_norm_stats(model)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = model(x)
        half = model.half()(x.half())
    assert half.dtype == torch.float16 and torch.isfinite(half).all()
    torch.testing.assert_close(half.float(), ref, atol=3e-2, rtol=3e-2)


def export_onnx(model: torch.nn.Module, size: int = 64) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(
            model,
            (torch.randn(1, 3, size, size),),
            buf,
            input_names=["input"],
            output_names=["logits"],
            opset_version=17,
            dynamo=False,
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )
    return buf.getvalue()


@pytest.mark.parametrize("name,variant", CASES, ids=IDS)
def test_onnx_export_matches_pytorch(name: str, variant: str) -> None:
    model = build(name, variant).eval()
    randomize_norm_stats(model)
    data = export_onnx(model)
    graph = onnx.load_from_string(data).graph
    assert [i.name for i in graph.input] == ["input"] and [o.name for o in graph.output] == ["logits"]
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(x).numpy()
    assert np.abs(expected).max() > 1e-3  # logits are not trivially ~0
    for batch in (1, 4):
        got = session.run(None, {"input": x[:batch].numpy()})[0]
        assert np.abs(got - expected[:batch]).max() <= 1e-4


@pytest.mark.parametrize(("name", "scope"), [("simam_resnet", "/simam_first/"), ("faer", "/cc_attention/core/")])
def test_exported_node_names_carry_plugin_module_scopes(name: str, scope: str) -> None:
    """Export finds the SimAM / CCAttentionCore subgraphs by these TorchScript-exporter node names."""
    graph = onnx.load_from_string(export_onnx(build(name, "edge").eval())).graph
    assert any(node.name.startswith(scope) for node in graph.node)


def test_edge_sizes_fit_the_budget() -> None:
    for name in list_models():
        macs = count_macs(create_model(name, variant="edge"), (112, 112))
        assert 0.03e9 < macs <= 0.6e9, (name, macs)
    simam = count_macs(create_model("simam_resnet", variant="edge"), (112, 112))
    assert 0.3e9 <= simam <= 0.45e9


def test_simam_resnet_edge_layout_is_frozen() -> None:
    """The shipped default's checkpoints load only if these parameter names and shapes never change."""
    sd = create_model("simam_resnet", variant="edge").state_dict()
    layout = str([(k, tuple(v.shape)) for k, v in sd.items()])
    assert hashlib.sha256(layout.encode()).hexdigest() == SIMAM_EDGE_SIGNATURE


def test_bad_arguments_name_the_problem() -> None:
    with pytest.raises(ModelNotFoundError, match="did you mean 'simam_resnet'"):
        create_model("simam_resnt")
    with pytest.raises(InvalidInputError, match="num_classes must be 7 or 8"):
        create_model("faer", num_classes=6)
    with pytest.raises(InvalidInputError, match="did you mean 'edge'"):
        create_model("faer", variant="egde")
    with pytest.raises(InvalidInputError, match="in_size"):
        create_model("han_pff", variant="edge", in_size=(64, 0))
    with pytest.raises(InvalidInputError, match="in_size >= 32"):
        create_model("han_pff", variant="edge", in_size=16)
    model = build("simam_resnet", "edge")
    for bad, msg in [
        (torch.randn(3, 64, 64), "4-D"),
        (torch.randn(1, 1, 64, 64), "3 input channels"),
        (torch.zeros(1, 3, 64, 64, dtype=torch.uint8), "floating-point"),
        (torch.randn(1, 3, 16, 16), "smaller than"),
    ]:
        with pytest.raises(InvalidInputError, match=msg):
            model(bad)
    with torch.no_grad():
        assert math.isfinite(float(model.eval()(torch.randn(1, 3, 32, 32)).sum()))


def test_cli_models_lists_every_model_and_variant(capsys: pytest.CaptureFixture[str]) -> None:
    from fer_edge.cli import main

    assert main(["models", "--variant", "edge", "--in-size", "48"]) == 0
    out = capsys.readouterr().out
    assert "multiply-accumulates" in out
    assert all(name in out for name in list_models()) and "48x48" in out
