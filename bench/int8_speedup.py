"""INT8 vs FP32, side by side in one run: every shipped zoo model and the default at one batch.

    python bench/int8_speedup.py [--batch 8] [--threads 2] [--latency-json FILE]   # ~2 min on 2 cores

FP32 is each model's FP32 ONNX package (the default's shipped one; for a zoo id, its benchmark
export, which has the same graph as `fer-edge build --model ID`); INT8 is the shipped
``<id>_int8`` package. Candidates are timed interleaved, round by round (best of rounds), so
the ratio holds up when other work comes and goes on the machine. Accuracy comes from the
sidecars (FER+ valid, strict majority), the FP32 groups from the build's own measurement.
Writes ``bench/results/int8_speedup.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnx

from fer_edge.bench import machine_info
from fer_edge.bench.zoo import zoo_package
from fer_edge.builder.quantize import latency_ms
from fer_edge.constants import SHIPPED_MODELS_DIR
from fer_edge.fileio import write_json_atomic
from fer_edge.package import load_package

MODELS = ("fer_default", "simam_resnet", "han_pff", "local_joint", "faer")


def _accuracy(sidecar_path: Path) -> float | None:
    value = (json.loads(sidecar_path.read_text()).get("metrics") or {}).get("ferplus/val", {}).get("accuracy")
    return round(100 * value, 2) if isinstance(value, float) else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="bench/results/int8_speedup.json")
    parser.add_argument("--latency-json", help="also write {id: {fp32: ms, int8: ms}} (tools/zoo_card.py reads it)")
    args = parser.parse_args()
    rows = []
    for model_id in MODELS:
        int8 = load_package(SHIPPED_MODELS_DIR / f"{model_id}_int8.json")
        fp32 = load_package(SHIPPED_MODELS_DIR / "fer_default.json") if model_id == "fer_default" else \
            zoo_package(model_id, precision="fp32")
        spec = int8.sidecar.input
        probe = np.random.default_rng(0).standard_normal((args.batch, 3, *spec.size)).astype(np.float32)
        fp32_ms, int8_ms = latency_ms([onnx.load(str(fp32.model_path)), onnx.load(str(int8.model_path))], probe,
                                      threads=args.threads, rounds=11, iters=10)
        selection = (int8.sidecar.calibration or {}).get("op_selection") or {}
        rows.append({"model": model_id, "batch": args.batch, "fp32_ms": round(fp32_ms, 2),
                     "int8_ms": round(int8_ms, 2), "speedup": round(fp32_ms / int8_ms, 2),
                     "int8_accuracy": _accuracy(int8.sidecar_path),
                     "float_op_groups": selection.get("float_op_groups")})
    write_json_atomic(Path(args.out), {"machine": machine_info(), "threads": args.threads, "rows": rows})
    if args.latency_json:
        write_json_atomic(Path(args.latency_json), {r["model"]: {"fp32": r["fp32_ms"], "int8": r["int8_ms"]}
                                                    for r in rows})
    print("| model | FP32 ms | INT8 ms | INT8 speed-up | INT8 acc (FER+ valid) | kept FP32 |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['fp32_ms']} | {r['int8_ms']} | {r['speedup']}x | {r['int8_accuracy']} | "
              f"{', '.join(r['float_op_groups'] or []) or '-'} |")


if __name__ == "__main__":
    main()
