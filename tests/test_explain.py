"""Grad-CAM on the zoo: valid target layers for every registered model, heatmaps that are finite and
sized like the crop, and, for shipped trained models, more heat on the eyes and mouth than a
uniform map would put there. Everything runs the real models (torch on CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from skimage import data

from fer_edge.cli import main
from fer_edge.errors import InvalidInputError
from fer_edge.explain import class_activation_maps, explain, find_layer, heat_fraction
from fer_edge.models import cam_layer, create_model, list_models
from fer_edge.vision.align import crop_face, template_regions
from fer_edge.vision.detector import YuNetDetector

# the shipped models whose heat sits clearly on the eyes and mouth (faer's is near uniform: README)
FOCUSED = ("simam_resnet", "han_pff", "local_joint")


@pytest.fixture(scope="module")
def astronaut_crop() -> np.ndarray:
    image = np.ascontiguousarray(data.astronaut()[:, :, ::-1])
    face = YuNetDetector().detect(image)[0]
    return crop_face(image, face.box, face.landmarks, (48, 48))


@pytest.fixture(scope="module")
def valid_crops(ferplus_dir: Path) -> list[np.ndarray]:
    """64 FER+ valid faces (already in the fer2013 framing), the first by file name."""
    files = sorted((ferplus_dir / "FER2013Valid").glob("*.png"))[:64]
    return [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files]


@pytest.mark.parametrize("name", list_models())
def test_every_registry_model_declares_a_valid_target_layer(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, variant="edge", in_size=48)
    layer = find_layer(model, cam_layer(name))
    seen: list[tuple[int, ...]] = []
    layer.register_forward_hook(lambda _m, _i, out: seen.append(tuple(out.shape)))
    maps, probs = class_activation_maps(model, torch.randn(2, 3, 48, 48), layer)
    assert len(seen[0]) == 4 and min(seen[0][2:]) >= 3, f"{name}: {cam_layer(name)} outputs {seen[0]}"
    assert maps.shape == (2, 48, 48) and np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    find_layer(create_model(name, variant="paper"), cam_layer(name))  # the same path exists at the paper size


def test_heatmaps_are_finite_and_sized_like_the_crop(astronaut_crop: np.ndarray) -> None:
    model = create_model("simam_resnet", pretrained=True)
    big = cv2.resize(astronaut_crop, (96, 80))
    for method in ("gradcam", "gradcam++"):
        items = explain(model, [astronaut_crop, big], method=method)
        assert [it.heatmap.shape for it in items] == [(48, 48), (80, 96)]
        assert all(np.isfinite(it.heatmap).all() and it.heatmap.max() == pytest.approx(1.0, abs=0.05) for it in items)
    assert items[0].target == "happy" and items[0].top[0][0] == "happy" and len(items[0].top) == 3
    sad = explain(model, astronaut_crop, targets=["sad"])[0]
    assert sad.target == "sad" and not np.allclose(sad.heatmap, items[0].heatmap)


def test_typed_errors_for_bad_layers_methods_and_targets(astronaut_crop: np.ndarray) -> None:
    model = create_model("simam_resnet", variant="edge", in_size=48)
    with pytest.raises(InvalidInputError, match="did you mean"):
        explain(model, [astronaut_crop], layer="stages.11")
    with pytest.raises(InvalidInputError, match="NCHW"):
        explain(model, [astronaut_crop], layer="fc")
    with pytest.raises(InvalidInputError, match="method"):
        explain(model, [astronaut_crop], method="scorecam")
    with pytest.raises(InvalidInputError, match="targets"):
        explain(model, [astronaut_crop], targets=["bored"])


@pytest.mark.parametrize("name", FOCUSED)
def test_trained_models_look_at_eyes_and_mouth(name: str, valid_crops: list[np.ndarray]) -> None:
    regions = template_regions((48, 48))
    mask = regions["eyes"] | regions["mouth"]
    items = explain(create_model(name, pretrained=True), valid_crops)
    fraction = heat_fraction([it.heatmap for it in items], mask)
    assert fraction > mask.mean() + 0.02, f"{name}: {fraction:.3f} of the heat on eyes+mouth, uniform {mask.mean():.3f}"


def test_explain_command_writes_crops_overlays_grid_and_top3(tmp_path: Path) -> None:
    image = tmp_path / "astronaut.png"
    cv2.imwrite(str(image), data.astronaut()[:, :, ::-1])
    assert main(["explain", str(image), "--model", "han_pff", "--save", str(tmp_path / "out")]) == 0
    doc = json.loads((tmp_path / "out" / "astronaut.json").read_text())
    assert doc["layer"] == cam_layer("han_pff") and len(doc["faces"]) == 1
    face = doc["faces"][0]
    assert len(face["top3"]) == 3 and face["top3"][0][0] == face["target"]
    for name in (*face["files"].values(), "astronaut_grid.png"):
        picture = cv2.imread(str(tmp_path / "out" / name))
        assert picture is not None and picture.size > 0, name
    assert main(["explain", str(image), "--model", "nosuch", "--save", str(tmp_path / "o2")]) == 1
