"""Print the README's zoo model-card tables from what the shipped sidecars record.

Usage: ``python tools/zoo_card.py [LATENCY.json]``. Accuracy numbers come from the sidecars of
``fer_edge/data/models/<id>.json`` (FP32, float16-stored weights, run on PyTorch) and
``<id>_int8.json`` (ONNX Runtime INT8), recorded by ``tools/make_zoo_models.sh``; parameters and
MACs are measured from the code; latency (optional) is a JSON file mapping ``<id>`` to
``{"fp32": ms, "int8": ms}`` from ``fer-edge bench`` (the command is in the README).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from fer_edge.constants import SHIPPED_MODELS_DIR
from fer_edge.models import create_model, list_pretrained
from fer_edge.models.profile import count_macs, count_params
from fer_edge.package import load_package


def _pct(value: float) -> str:
    return f"{100 * value:.2f} %"


def _metrics(stem: str) -> dict[str, Any]:
    return load_package(SHIPPED_MODELS_DIR / f"{stem}.json", verify=False).sidecar.metrics


def _epochs(training: dict[str, Any]) -> str:
    """``best/scheduled`` epochs of the shipped run, after those of the weights it fine-tuned (if any);
    for a weight average, each averaged run's."""
    if "averaged_from" in training:
        return "mean of " + " and ".join(f"({_epochs(part)})" for part in training["averaged_from"])
    own = f"{training.get('epoch')}/{training['config']['epochs']}"
    parent = training.get("initialised_from")
    return own if not parent else f"{_epochs(parent)} + {own}"


def _teachers(training: dict[str, Any]) -> list[str]:
    """The models a shipped run (or any run it was fine-tuned from or averaged with) was distilled from."""
    own = list((training.get("config") or {}).get("teacher") or [])
    nested = [training.get("initialised_from"), *training.get("averaged_from", [])]
    found = own + [t for part in nested if part for t in _teachers(part)]
    return list(dict.fromkeys(found))


def main() -> None:
    latency = json.loads(Path(sys.argv[1]).read_text()) if len(sys.argv) > 1 else {}
    print("| model | params (M) | GMACs | epochs | FP32 strict | FP32 authors | INT8 strict | INT8 authors "
          "| INT8 = FP32 label | macro F1 (FP32) | eyes / mouth occluded (FP32) | CPU ms FP32 / INT8 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    per_class, calibration = [], []
    for model_id, variant in list_pretrained():
        model = create_model(model_id, pretrained=True)
        size = model.default_cfg["in_size"]
        side = load_package(SHIPPED_MODELS_DIR / f"{model_id}.json", verify=False).sidecar
        fp32, int8 = _metrics(model_id), _metrics(f"{model_id}_int8")
        strict32, strict8 = fp32["ferplus/val"], int8["ferplus/val"]
        occ = strict32.get("occlusion", {})
        ms = latency.get(model_id, {})
        speed = f"{ms['fp32']:.2f} / {ms['int8']:.2f}" if ms else "-"
        agree = strict8.get("agreement", {}).get("fraction")
        print(f"| `{model_id}` ({variant}, {size[0]}x{size[1]}) | {count_params(model) / 1e6:.2f} "
              f"| {count_macs(model, size) / 1e9:.3f} | {_epochs(side.training)} "
              f"| **{_pct(strict32['accuracy'])}** | {_pct(fp32['ferplus_authors/val']['accuracy'])} "
              f"| {_pct(strict8['accuracy'])} | {_pct(int8['ferplus_authors/val']['accuracy'])} "
              f"| {_pct(agree) if agree is not None else '-'} | {_pct(strict32['macro_f1'])} "
              f"| {_pct(occ['eyes']['accuracy'])} / {_pct(occ['mouth']['accuracy'])} | {speed} |")
        per_class.append((model_id, strict32["per_class_accuracy"], strict8["per_class_accuracy"]))
        teachers = _teachers(side.training)
        calibration.append((model_id, side.temperature, strict32, strict8, ", ".join(Path(t).stem for t in teachers)))
    classes = list(per_class[0][1])
    print("\nPer-class accuracy, FP32 / INT8 (strict protocol):\n")
    print("| model | " + " | ".join(classes) + " |")
    print("|---|" + "---:|" * len(classes))
    for model_id, acc32, acc8 in per_class:
        print(f"| `{model_id}` | " + " | ".join(f"{100 * acc32[c]:.1f} / {100 * acc8[c]:.1f}" for c in classes) + " |")
    print("\nCalibration (temperature fitted on the held-out FER+ train faces; ECE on FER+ valid, strict):\n")
    print("| model | distilled from | temperature | ECE FP32, T = 1 -> T | ECE INT8, T = 1 -> T |")
    print("|---|---|---:|---:|---:|")
    for model_id, temperature, strict32, strict8, teachers in calibration:
        eces = [f"{_pct(m.get('ece_uncalibrated', m['ece']))} -> {_pct(m['ece'])}" if "ece" in m else "-"
                for m in (strict32, strict8)]
        print(f"| `{model_id}` | {teachers or '-'} | {temperature:.3f} | {eces[0]} | {eces[1]} |")


if __name__ == "__main__":
    main()
