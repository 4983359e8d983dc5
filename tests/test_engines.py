"""Engines: the registry, ONNX Runtime on a real graph, PyTorch vs ONNX Runtime FP32/INT8 on the same
crops, and the TensorRT engine's checks (its real run skips here, with the reason)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx.reference import ReferenceEvaluator
from tiny_package import SPEC, make_package

from fer_edge.constants import EXPRESSIONS_7
from fer_edge.engines import BACKENDS, get_backend
from fer_edge.engines.onnxruntime import OnnxRuntimeManager, providers_for
from fer_edge.engines.resolve import load_engine
from fer_edge.engines.tensorrt import TensorRTManager, check_engine_compat, load_plugin_library, needs_plugin_library
from fer_edge.errors import (
    BackendUnavailableError,
    ChecksumMismatchError,
    EngineMismatchError,
    InvalidInputError,
    PackageError,
    PluginLibraryError,
)
from fer_edge.package import InputSpec, Sidecar, load_package
from fer_edge.trt_compat import TrtVersion

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def package(tmp_path: Path):  # type: ignore[no-untyped-def]
    return make_package(tmp_path, max_batch=4)


def batch(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, *SPEC.size)).astype(np.float32)


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_every_backend_reports_availability_and_version(name: str) -> None:
    manager = get_backend(name)
    assert isinstance(manager.is_available(), bool)
    version = manager.version()
    assert (version is None) == (not manager.is_available()) or name == "tensorrt"
    if not manager.is_available():
        pytest.skip(f"{name} is not installed here")
    assert version


def test_unknown_backend_lists_the_known_ones() -> None:
    with pytest.raises(BackendUnavailableError, match="onnxruntime"):
        get_backend("openvino")


def test_onnxruntime_matches_the_onnx_reference(package) -> None:  # type: ignore[no-untyped-def]
    engine = OnnxRuntimeManager.load(package, threads=1)
    x = batch(3)
    expected = ReferenceEvaluator(onnx.load(str(package.model_path))).run(None, {"input": x})[0]
    got = engine.infer(x)
    assert got.shape == (3, 7) and got.dtype == np.float32
    assert np.allclose(got, expected, atol=1e-4)
    assert engine.describe()["threads"] == 1


def test_onnxruntime_threads_do_not_spin_unless_asked(package, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("FER_EDGE_ORT_SPINNING", raising=False)
    engine = OnnxRuntimeManager.load(package, threads=1)
    assert engine.describe()["spinning"] is False
    assert engine.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"
    monkeypatch.setenv("FER_EDGE_ORT_SPINNING", "1")
    assert OnnxRuntimeManager.load(package, threads=1).describe()["spinning"] is True


@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_sharded_batches_match_the_one_session_answer(package, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
                                                      size: int) -> None:
    """A batch split over single-thread sessions (INT8 on CPU by default, or FER_EDGE_ORT_SHARDS)
    returns the same logits, in order, as one session; an FP32 package is not sharded by default."""
    monkeypatch.delenv("FER_EDGE_ORT_SHARDS", raising=False)
    plain = OnnxRuntimeManager.load(package, threads=2)
    assert plain.describe()["shards"] == 1
    monkeypatch.setenv("FER_EDGE_ORT_SHARDS", "3")
    sharded = OnnxRuntimeManager.load(package, threads=2)
    assert sharded.describe()["shards"] == 3 and len(sharded.shards) == 3
    x = batch(size)
    np.testing.assert_allclose(sharded.infer(x), plain.infer(x), rtol=1e-6, atol=1e-6)


def test_int8_packages_on_the_cpu_shard_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FER_EDGE_ORT_SHARDS", raising=False)
    int8 = make_package(tmp_path, "q", precision="int8")
    assert OnnxRuntimeManager.load(int8, threads=2).describe()["shards"] == 2
    assert OnnxRuntimeManager.load(int8, threads=1).describe()["shards"] == 1


def test_batches_beyond_max_batch_are_chunked(package) -> None:  # type: ignore[no-untyped-def]
    engine = OnnxRuntimeManager.load(package, threads=1)
    assert engine.max_batch == 4
    x = batch(10, seed=1)
    whole = engine.infer(x)
    single = np.concatenate([engine.infer(x[i:i + 1]) for i in range(10)])
    assert np.allclose(whole, single, atol=1e-5)
    assert engine.infer(x[:0]).shape == (0, 7)


@pytest.mark.parametrize("bad, words", [
    (np.zeros((1, 3, 48, 48), np.float64), "float32"), (np.zeros((1, 3, 32, 32), np.float32), r"\(N, 3, 48, 48\)"),
    (np.zeros((3, 48, 48), np.float32), "48"), ([[0.0]], "float32"),
])
def test_bad_engine_input_is_a_typed_error(package, bad: object, words: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInputError, match=words):
        OnnxRuntimeManager.load(package, threads=1).infer(bad)  # type: ignore[arg-type]


def test_corrupted_model_file_fails_the_checksum(package) -> None:  # type: ignore[no-untyped-def]
    with open(package.model_path, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ChecksumMismatchError, match="rebuild"):
        load_engine(package.sidecar_path)


def test_truncated_onnx_with_matching_sidecar_is_a_package_error(tmp_path: Path) -> None:
    pkg = make_package(tmp_path)
    pkg.model_path.write_bytes(pkg.model_path.read_bytes()[:100])
    from fer_edge.package import write_package

    pkg = write_package(pkg.model_path, pkg.sidecar)  # checksum now agrees; the graph is still broken
    with pytest.raises(PackageError, match="cannot load"):
        OnnxRuntimeManager.load(pkg)


def test_input_spec_mismatch_says_to_rebuild(tmp_path: Path) -> None:
    pkg = make_package(tmp_path)
    wrong = Sidecar.from_dict({**pkg.sidecar.to_dict(), "input": {**pkg.sidecar.to_dict()["input"], "size": [64, 64]}})
    from fer_edge.package import write_package

    with pytest.raises(PackageError, match="rebuild"):
        OnnxRuntimeManager.load(write_package(pkg.model_path, wrong))


def test_wrong_class_count_is_refused(tmp_path: Path) -> None:
    pkg = make_package(tmp_path)
    from fer_edge.package import write_package

    eight = Sidecar.from_dict({**pkg.sidecar.to_dict(), "classes": [*EXPRESSIONS_7, "contempt"]})
    with pytest.raises(PackageError, match="7 logits"):
        OnnxRuntimeManager.load(write_package(pkg.model_path, eight))


def test_backend_refuses_another_format(package) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PackageError, match="onnx"):
        get_backend("torch").check_format(package)


def test_onnxruntime_devices() -> None:
    assert providers_for(None, ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    chain = providers_for("tensorrt:1", ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    assert chain[0] == ("TensorrtExecutionProvider", {"device_id": 1})
    assert chain[1] == ("CUDAExecutionProvider", {"device_id": 1}) and chain[-1] == "CPUExecutionProvider"
    with pytest.raises(BackendUnavailableError, match="onnxruntime-gpu"):
        providers_for("cuda", ["CPUExecutionProvider"])
    with pytest.raises(BackendUnavailableError, match="unknown"):
        providers_for("npu", ["CPUExecutionProvider"])


# --- PyTorch vs ONNX Runtime FP32 and INT8 on the same real crops ----------------------------------


@pytest.fixture(scope="module")
def zoo_packages(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A small zoo model saved as a checkpoint, exported to ONNX and quantized to INT8 by the build code."""
    for module in ("torch", "fer_edge.models", "fer_edge.training.checkpoint", "fer_edge.builder.export",
                   "fer_edge.builder.quantize"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not importable here")
    import torch

    from fer_edge.builder.export import export_model
    from fer_edge.builder.quantize import quantize_int8
    from fer_edge.fileio import atomic_path
    from fer_edge.models import create_model
    from fer_edge.package import BatchRange, write_package
    from fer_edge.training.checkpoint import checkpoint_meta, save_checkpoint

    folder = tmp_path_factory.mktemp("zoo")
    torch.manual_seed(0)
    spec = InputSpec(size=(48, 48), color="gray")
    model = create_model("simam_resnet", num_classes=7, variant="edge", in_size=spec.size).eval()
    checkpoint = save_checkpoint(folder / "zoo.pt", model, checkpoint_meta("simam_resnet", "edge", 7, spec))
    faces = crops_tensor(spec, 32)  # a multiple of quantize.py's reader batch (16): ORT's entropy collector fails on a short last batch
    exported = export_model(model, spec, BatchRange(1, 4, 8), faces=faces[:4])
    packages = {}
    for name, graph in (("fp32", exported.portable), ("int8", quantize_int8(exported.portable, faces).model)):
        path = folder / f"zoo_{name}.onnx"
        with atomic_path(path) as tmp:
            onnx.save(graph, str(tmp))
        packages[name] = write_package(path, Sidecar("simam_resnet", "edge", EXPRESSIONS_7, spec, "onnx", path.name,
                                                     precision=name, batch=BatchRange(1, 4, 8), opset=17))
    return checkpoint, packages, faces


def crops_tensor(spec: InputSpec, n: int) -> np.ndarray:
    """Preprocessed real faces: FER+ when present, else the astronaut's aligned face, shifted."""
    from fer_edge.vision.preprocess import preprocess

    folder = REPO.parent / "shared" / "data" / "ferplus" / "FER2013Valid"
    if folder.is_dir():
        import cv2

        crops = [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in sorted(folder.glob("*.png"))[:n]]
    else:
        from skimage import data

        face = data.astronaut()[60:180, 170:280, ::-1]
        crops = [np.ascontiguousarray(np.roll(face, i, axis=1)) for i in range(n)]
    return preprocess(crops, spec)


def test_torch_onnxruntime_fp32_and_int8_agree(zoo_packages) -> None:  # type: ignore[no-untyped-def]
    checkpoint, packages, faces = zoo_packages
    from fer_edge.recognizer.recognizer import softmax

    torch_engine, choice = load_engine(checkpoint, backend="torch")
    assert choice.backend == "torch" and torch_engine.input_spec == packages["fp32"].sidecar.input
    probs = {"torch": softmax(torch_engine.infer(faces))}
    for name, pkg in packages.items():
        engine, choice = load_engine(pkg.sidecar_path, backend="onnxruntime")
        assert choice.package.sidecar.precision == name
        probs[name] = softmax(engine.infer(faces))
    assert np.abs(probs["fp32"] - probs["torch"]).max() < 1e-4
    assert np.abs(probs["int8"] - probs["fp32"]).max() < 0.05
    assert (probs["int8"].argmax(1) == probs["fp32"].argmax(1)).mean() >= 0.9


# --- TensorRT: the compatibility checks run everywhere; a real engine needs TensorRT + GPU --------------


def engine_sidecar(**trt: object) -> Sidecar:
    return Sidecar("simam_resnet", "edge", EXPRESSIONS_7, SPEC, "tensorrt", "m.engine", tensorrt=dict(trt))


def test_engine_compat_accepts_its_own_build() -> None:
    check_engine_compat(engine_sidecar(version="10.3.0", compute_capability="8.7"), TrtVersion(10, 3, 0), (8, 7), "Orin")


@pytest.mark.parametrize("trt, running, cc, words", [
    ({"version": "8.6.2", "compute_capability": "8.7"}, TrtVersion(10, 3, 0), (8, 7), "TensorRT 8.6.2"),
    ({"version": "10.3.0", "compute_capability": [8, 6]}, TrtVersion(10, 3, 0), (8, 7), "compute capability 8.6"),
    ({"version": "10.3.0", "compute_capability": 89}, TrtVersion(10, 3, 0), (8, 7), "8.9"),
])
def test_engine_compat_mismatch_says_what_to_rebuild(trt: dict[str, object], running: TrtVersion,
                                                     cc: tuple[int, int], words: str) -> None:
    with pytest.raises(EngineMismatchError, match=words) as info:
        check_engine_compat(engine_sidecar(**trt), running, cc, "Orin")
    assert "fer-edge build --model simam_resnet --target tensorrt" in str(info.value)


def test_engine_without_build_record_is_refused() -> None:
    with pytest.raises(PackageError, match="compute_capability"):
        check_engine_compat(engine_sidecar(version="10.3.0"), TrtVersion(10, 3, 0), (8, 7), "Orin")


def test_plugin_form_engine_without_plugin_library_is_a_typed_error() -> None:
    from fer_edge.plugins import plugin_library_path

    assert needs_plugin_library(Sidecar("m", "edge", EXPRESSIONS_7, SPEC, "tensorrt", "m.engine", graph_form="plugin"))
    assert not needs_plugin_library(engine_sidecar(version="10.3.0"))
    if plugin_library_path() is not None:
        pytest.skip("the plugin library is built here, so it cannot be missing")
    with pytest.raises(PluginLibraryError, match="plugin library"):
        load_plugin_library(trt=None, api=None, sidecar=engine_sidecar(version="10.3.0"))


@pytest.mark.tensorrt
def test_tensorrt_engine_runs_a_package(tmp_path: Path) -> None:
    if not TensorRTManager.is_available():
        pytest.skip("needs TensorRT, cuda-python and an NVIDIA GPU (none here); the TensorRT engine is "
                    "type-checked instead (test_tensorrt_engine_type_checks)")
    from fer_edge.builder.pipeline import build

    pkg = load_package(build(str(make_package(tmp_path).model_path), target="tensorrt", out=str(tmp_path / "t.engine")))
    engine = TensorRTManager.load(pkg)
    x = batch(engine.max_batch)
    reference = OnnxRuntimeManager.load(make_package(tmp_path / "ref")).infer(x)
    assert np.allclose(engine.infer(x), reference, atol=1e-2)


@pytest.mark.slow
def test_tensorrt_engine_type_checks() -> None:
    """mypy against tensorrt-stubs, through the build engineer's script (installs the stubs from PyPI)."""
    script = REPO / "tools" / "typecheck_tensorrt.sh"
    if not script.is_file() or shutil.which("bash") is None:
        pytest.skip("tools/typecheck_tensorrt.sh is not in this checkout")
    result = subprocess.run(["bash", str(script)], check=False, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
