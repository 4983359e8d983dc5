"""The zoo's shipped trained models (seed-models issue): intact, loaded by default everywhere, as
accurate as their model card says, INT8 faithful to FP32.

Floors are the accuracies measured on all of FER+ valid when the packages were made
(`tools/make_zoo_models.sh`, recorded in the sidecars): the card's target (>= 87 % strict, FP32)
must be what every sidecar records, and the FP32 weights must reproduce their recorded accuracy
within 0.2 pt (a few faces of 2857: float kernels differ between CPUs), the INT8 packages within
1 pt (int8 kernels differ more: VNNI or not).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from fer_edge import Recognizer
from fer_edge.builder.calibration import labelled_faces
from fer_edge.builder.pipeline import build, load_source
from fer_edge.constants import SHIPPED_MODELS_DIR
from fer_edge.engines.resolve import find_packages, load_engine
from fer_edge.errors import ModelNotFoundError
from fer_edge.models import create_model, list_pretrained
from fer_edge.package import load_package
from fer_edge.training.checkpoint import read_checkpoint

ZOO = ("han_pff", "local_joint", "faer", "simam_resnet")
MARGIN = 0.01  # INT8, and both precisions under the authors' protocol
FP32_MARGIN = 0.002
TARGET_STRICT = 0.87
MAX_TOTAL_BYTES = 80 * 1024 * 1024
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "astronaut.jpg"


def _packages(model_id: str) -> tuple[Path, Path]:
    return SHIPPED_MODELS_DIR / f"{model_id}.json", SHIPPED_MODELS_DIR / f"{model_id}_int8.json"


def test_every_seed_model_ships_trained_weights_within_the_size_budget() -> None:
    assert sorted(list_pretrained()) == sorted((m, "edge") for m in ZOO)
    total = sum(p.stat().st_size for p in SHIPPED_MODELS_DIR.iterdir() if p.suffix in (".pt", ".onnx"))
    assert total <= MAX_TOTAL_BYTES, f"shipped models take {total / 2**20:.1f} MiB"


@pytest.mark.parametrize("model_id", ZOO)
def test_shipped_packages_match_their_sidecars(model_id: str) -> None:
    for path, fmt, precision in zip(_packages(model_id), ("torch", "onnx"), ("fp32", "int8")):
        package = load_package(path)
        package.verify_checksum()  # ChecksumMismatchError when the file is not the one described
        side = package.sidecar
        assert (side.model_id, side.variant, side.format, side.precision) == (model_id, "edge", fmt, precision)
        assert {"ferplus/val", "ferplus_authors/val"} <= set(side.metrics), path.name
    strict = load_package(_packages(model_id)[0], verify=False).sidecar.metrics["ferplus/val"]["accuracy"]
    assert strict >= TARGET_STRICT, f"{model_id}: recorded FP32 accuracy {strict:.4f} < the card's {TARGET_STRICT}"


@pytest.mark.parametrize("model_id", ZOO)
def test_create_model_pretrained_loads_the_shipped_weights(model_id: str) -> None:
    model = create_model(model_id, pretrained=True)
    assert model.default_cfg["variant"] == "edge" and model.default_cfg["in_size"] == (48, 48)
    shipped = read_checkpoint(load_package(_packages(model_id)[0]).model_path)["state_dict"]
    for name, value in model.state_dict().items():
        assert value.dtype == torch.float32 or not value.is_floating_point()
        torch.testing.assert_close(value, shipped[name].to(value.dtype), rtol=0, atol=0)


def test_a_variant_without_shipped_weights_is_a_typed_error_naming_what_ships() -> None:
    with pytest.raises(ModelNotFoundError, match=r"shipped: .*han_pff \(edge\)"):
        create_model("han_pff", variant="paper", pretrained=True)


def test_build_uses_the_trained_weights_by_default_and_random_only_when_asked() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "untrained" warning for the default path
        source = load_source("han_pff")
    reference = create_model("han_pff", pretrained=True)
    torch.testing.assert_close(source.torch_model.state_dict()["final_classifier.weight"],
                               reference.state_dict()["final_classifier.weight"])
    assert "ferplus/val" in (source.metrics or {})
    with pytest.warns(UserWarning, match="RANDOM weights"):
        load_source("han_pff", weights="random")


@pytest.mark.parametrize("model_id", ZOO)
def test_recognizer_runs_the_shipped_int8_package(model_id: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FER_EDGE_HOME", str(tmp_path))  # no user-built package in the way
    rec = Recognizer(model=model_id)
    assert rec.info()["package"].endswith(f"{model_id}_int8.json"), rec.info()
    faces = rec(cv2.imread(str(EXAMPLE)))
    assert len(faces) == 1 and faces[0].label in rec.classes
    assert abs(sum(faces[0].probabilities.values()) - 1.0) < 1e-4


def test_an_explicit_precision_that_does_not_exist_is_a_typed_error() -> None:
    from fer_edge.engines.resolve import choose
    from fer_edge.errors import BackendUnavailableError

    with pytest.raises(BackendUnavailableError, match="no fp16 ONNX package"):
        choose(find_packages("han_pff"), "onnxruntime", "cpu", "fp16")


@pytest.fixture(scope="module")
def valid_faces(ferplus_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    spec = load_package(_packages("han_pff")[0], verify=False).sidecar.input
    return labelled_faces(ferplus_dir / "FER2013Valid", spec, 7)


@pytest.mark.parametrize("model_id", ZOO)
def test_accuracy_floor_and_int8_agreement_on_ferplus_valid(model_id: str, valid_faces) -> None:  # type: ignore[no-untyped-def]
    faces, labels = valid_faces
    fp32_path, int8_path = _packages(model_id)
    fp32, _ = load_engine(fp32_path, backend="torch")
    int8, _ = load_engine(int8_path, backend="onnxruntime")
    pred32, pred8 = fp32.infer(faces).argmax(1), int8.infer(faces).argmax(1)
    for path, pred, margin in ((fp32_path, pred32, FP32_MARGIN), (int8_path, pred8, MARGIN)):
        recorded = load_package(path, verify=False).sidecar.metrics["ferplus/val"]
        assert len(labels) == recorded["num_images"]
        accuracy = float((pred == labels).mean())
        assert accuracy >= recorded["accuracy"] - margin, f"{path.name}: {accuracy:.4f} on {len(labels)} faces"
    agreement = float((pred32 == pred8).mean())
    assert agreement >= 0.97, f"{model_id}: INT8 and FP32 agree on {agreement:.4f} of {len(labels)} faces"
    assert float((pred8 == labels).mean()) >= float((pred32 == labels).mean()) - 0.005


def test_build_han_pff_int8_matches_the_shipped_fp32(tmp_path: Path, valid_faces) -> None:  # type: ignore[no-untyped-def]
    """The design card's command, on ONNX Runtime: a package within 0.5 pt of the shipped FP32 model."""
    faces, labels = valid_faces
    package = build("han_pff", "int8", "onnxruntime", str(tmp_path / "han_pff_int8.onnx"), log=lambda _: None)
    engine, _ = load_engine(package.sidecar_path, backend="onnxruntime")
    accuracy = float((engine.infer(faces).argmax(1) == labels).mean())
    fp32 = load_package(_packages("han_pff")[0], verify=False).sidecar.metrics["ferplus/val"]["accuracy"]
    assert accuracy >= fp32 - 0.005, f"built INT8 {accuracy:.4f} vs shipped FP32 {fp32:.4f}"


@pytest.mark.parametrize("stem", [f"{m}_int8" for m in ZOO] + ["fer_default", "fer_default_int8"])
def test_accuracy_floor_under_the_authors_protocol(stem: str, ferplus_dir: Path) -> None:
    """The FER+ authors' majority mode (8 emotions, the number papers report): every shipped ONNX
    package still scores what its sidecar records, on the same faces."""
    from fer_edge.training.evaluate import evaluate

    path = SHIPPED_MODELS_DIR / f"{stem}.json"
    recorded = load_package(path, verify=False).sidecar.metrics["ferplus_authors/val"]
    report = evaluate(path, ferplus_dir, split="val", protocol="authors", backend="onnxruntime")
    assert report["images_used"] == recorded["num_images"] == 3191
    assert report["accuracy"] >= recorded["accuracy"] - MARGIN, f"{stem}: {report['accuracy']:.4f}"
