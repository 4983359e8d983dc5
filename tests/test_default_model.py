"""The shipped default model (issue 7): intact, as accurate as its model card says, INT8 faithful to FP32.

The floor is the accuracy measured on all of FER+ valid when the package was made
(`tools/make_default_model.sh`, recorded in the sidecar) minus a 1.5-point margin.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fer_edge.builder.calibration import labelled_faces
from fer_edge.engines.resolve import DEFAULT_DIR, load_engine
from fer_edge.package import load_package

FP32, INT8 = DEFAULT_DIR / "fer_default.json", DEFAULT_DIR / "fer_default_int8.json"
MARGIN = 0.015
MAX_PACKAGE_BYTES = 20 * 1024 * 1024


def _require_trained() -> None:
    if not FP32.is_file() or not INT8.is_file():
        pytest.skip(f"the default packages are not in {DEFAULT_DIR}")
    if not load_package(FP32, verify=False).sidecar.metrics:
        pytest.skip("the default package is untrained (its sidecar records no measured metrics)")


def test_shipped_packages_match_their_sidecars() -> None:
    _require_trained()
    for path, precision in ((FP32, "fp32"), (INT8, "int8")):
        package = load_package(path)  # raises ChecksumMismatchError when the file is not the one described
        side = package.sidecar
        assert (side.format, side.precision, side.model_id, side.variant) == ("onnx", precision, "simam_resnet", "edge")
        assert package.model_path.stat().st_size <= MAX_PACKAGE_BYTES
        assert "ferplus/val" in side.metrics and side.training.get("model_id", "simam_resnet") == "simam_resnet"


@pytest.fixture(scope="module")
def valid_predictions(ferplus_dir: Path) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per class count scored (the package's own, and 7 for an 8-class default, as ``classes=7``
    answers): strict-majority labels and the FP32 and INT8 predictions over those classes."""
    _require_trained()
    fp32, _ = load_engine(FP32, backend="onnxruntime")
    int8, _ = load_engine(INT8, backend="onnxruntime")
    out = {}
    for count in sorted({len(fp32.classes), 7}):
        faces, labels = labelled_faces(ferplus_dir / "FER2013Valid", fp32.input_spec, count)
        out[count] = labels, fp32.infer(faces)[:, :count].argmax(1), int8.infer(faces)[:, :count].argmax(1)
    return out


def test_accuracy_on_ferplus_valid_is_above_the_floor(valid_predictions) -> None:  # type: ignore[no-untyped-def]
    for count, (labels, pred32, pred8) in valid_predictions.items():
        key = "ferplus/val" if count == 7 else f"ferplus_{count}class/val"
        for path, pred in ((FP32, pred32), (INT8, pred8)):
            recorded = load_package(path, verify=False).sidecar.metrics[key]
            accuracy = float((pred == labels).mean())
            assert len(labels) == recorded["num_images"], key
            assert accuracy >= recorded["accuracy"] - MARGIN, f"{path.name} {key}: {accuracy:.4f} on {len(labels)} faces"


def test_int8_agrees_with_fp32(valid_predictions) -> None:  # type: ignore[no-untyped-def]
    for labels, pred32, pred8 in valid_predictions.values():
        agreement = float((pred32 == pred8).mean())
        assert agreement >= 0.97, f"INT8 and FP32 agree on {agreement:.4f} of {len(labels)} FER+ valid faces"
        assert float((pred8 == labels).mean()) >= float((pred32 == labels).mean()) - 0.01
