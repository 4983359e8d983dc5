"""Model-card Grad-CAM figures: where each shipped model looks, per class, on FER+ valid faces.

For every shipped seed model, each FER+ valid face (strict-majority label, 7 classes; the crops
are already in the fer2013 framing the models were trained on) is explained for its true class with
the registry's target layer. Per class the mean heatmap is drawn over the mean face of the whole
split, with the template's eye and mouth boxes (fer_edge.vision.align.template_regions) outlined,
and the share of all heat inside those boxes is printed next to what a uniform map would put
there (their area), so a regression in where the model looks shows as a number.

    python tools/explain_card.py --out docs/model_card [MODEL ...]

Naming models redoes only theirs; the others keep their figures and their numbers in gradcam.json
(when it was made on the same faces).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from fer_edge.explain import explain, heat_fraction
from fer_edge.explain.render import TILE, overlay, write_png
from fer_edge.fileio import write_json_atomic
from fer_edge.models import cam_layer, create_model, list_pretrained
from fer_edge.recognizer.sources import read_image
from fer_edge.training.readers import read_ferplus
from fer_edge.vision.align import template_regions


def outline(image: np.ndarray, mask: np.ndarray, scale: int) -> None:
    """Draw the boundary of each box in ``mask`` (white, in place) on an image ``scale`` times the mask."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    for c in contours:
        x, y, w, h = cv2.boundingRect(c)
        cv2.rectangle(image, (x * scale, y * scale), ((x + w) * scale - 1, (y + h) * scale - 1), (255, 255, 255), 1)


def panel(mean_face: np.ndarray, heat: np.ndarray, mask: np.ndarray, title: str) -> np.ndarray:
    picture = cv2.resize(overlay(mean_face, heat / max(float(heat.max()), 1e-9)), (TILE, TILE),
                         interpolation=cv2.INTER_NEAREST)
    outline(picture, mask, TILE // mask.shape[0])
    band = np.full((22, TILE, 3), 255, np.uint8)
    cv2.putText(band, title, (3, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1)
    return np.vstack([picture, band])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ferplus/FER2013Valid"))
    parser.add_argument("--out", type=Path, default=Path("docs/model_card"))
    parser.add_argument("-n", type=int, default=0, help="use only the first N faces (0: all)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("models", nargs="*", help="shipped model ids to redo (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    records = read_ferplus(args.data, 7)
    count = len(records) if args.n <= 0 else min(args.n, len(records))
    crops = [cv2.cvtColor(read_image(str(records.items[i])), cv2.COLOR_BGR2GRAY) for i in range(count)]
    labels = records.labels[:count]
    mean_face = np.mean(crops, axis=0).round().astype(np.uint8)
    regions = template_regions(mean_face.shape)
    both = regions["eyes"] | regions["mouth"]
    numbers: dict[str, Any] = {"faces": count, "data": str(args.data), "uniform": {
        "eyes_mouth": float(both.mean()), "eyes": float(regions["eyes"].mean()), "mouth": float(regions["mouth"].mean())}}
    shipped = [model_id for model_id, _variant in list_pretrained()]
    unknown = sorted(set(args.models) - set(shipped))
    if unknown:
        parser.error(f"no shipped weights for {unknown}; shipped: {shipped}")
    previous = args.out / "gradcam.json"
    if args.models and previous.is_file():
        kept = json.loads(previous.read_text())
        if (kept.get("faces"), kept.get("data")) == (count, str(args.data)):
            numbers.update({k: v for k, v in kept.items() if k in shipped})
    for model_id in args.models or shipped:
        start = time.perf_counter()
        model = create_model(model_id, pretrained=True)
        items = explain(model, crops, targets=[records.classes[k] for k in labels])
        maps = np.stack([it.heatmap for it in items])
        tiles = [panel(mean_face, maps.mean(axis=0), both, f"all {count}: {heat_fraction(maps, both):.1%}")]
        per_class = {}
        for k, name in enumerate(records.classes):
            chosen = maps[labels == k]
            if len(chosen):
                per_class[name] = {"faces": len(chosen), "eyes_mouth": heat_fraction(chosen, both)}
                tiles.append(panel(mean_face, chosen.mean(axis=0), both, f"{name} {len(chosen)}: "
                                                                             f"{per_class[name]['eyes_mouth']:.0%}"))
        write_png(args.out / f"{model_id}_gradcam.png", np.hstack(tiles))
        numbers[model_id] = {"layer": cam_layer(model_id), "method": "gradcam",
                             "eyes_mouth": heat_fraction(maps, both), "eyes": heat_fraction(maps, regions["eyes"]),
                             "mouth": heat_fraction(maps, regions["mouth"]), "per_class": per_class}
        print(f"{model_id} ({cam_layer(model_id)}): {numbers[model_id]['eyes_mouth']:.1%} of the heat on eyes+mouth "
              f"(eyes {numbers[model_id]['eyes']:.1%}, mouth {numbers[model_id]['mouth']:.1%}; uniform "
              f"{both.mean():.1%}), {time.perf_counter() - start:.0f} s")
    write_json_atomic(args.out / "gradcam.json", numbers)


if __name__ == "__main__":
    main()
