"""INT8 vs FP32 as the SDK runs them, side by side in one run: the default and every zoo model at one batch.

    python bench/int8_speedup.py [--batch 8] [--threads 2] [--rounds 80] [--latency-json FILE]   # ~2 min

Each package is loaded the way ``Recognizer`` loads it (``load_engine``, ONNX Runtime, ``--threads``
intra-op threads, spinning off): FP32 as one session; INT8 as the engine's CPU default, a batch of
two or more faces sharded over single-thread sessions, and, for reference, as one session
(``FER_EDGE_ORT_SHARDS=1``). FP32 is the default's shipped package and, for a zoo id, its
benchmark export (the graph `fer-edge build --model ID` writes); INT8 is the shipped ``<id>_int8``
package. All engines are called interleaved, round by round, and the p50 of ``--rounds`` calls
is reported (the first two rounds warm up), so load that comes and goes hits every engine alike.
Accuracy comes from the sidecars (FER+ valid, strict majority). Writes
``bench/results/int8_speedup.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from fer_edge.bench import machine_info
from fer_edge.bench.zoo import zoo_package
from fer_edge.constants import SHIPPED_MODELS_DIR
from fer_edge.engines.resolve import load_engine
from fer_edge.fileio import write_json_atomic
from fer_edge.package import load_package

MODELS = ("fer_default", "simam_resnet", "han_pff", "local_joint", "faer")
KINDS = ("fp32", "int8", "int8_one_session")


def _accuracy(sidecar_path: Path) -> float | None:
    value = (json.loads(sidecar_path.read_text()).get("metrics") or {}).get("ferplus/val", {}).get("accuracy")
    return round(100 * value, 2) if isinstance(value, float) else None


def _engine(path: Path, shards: str | None) -> Any:
    """The engine ``load_engine`` gives, with ``FER_EDGE_ORT_SHARDS`` set to ``shards`` (None: the default)."""
    previous = os.environ.pop("FER_EDGE_ORT_SHARDS", None)
    if shards is not None:
        os.environ["FER_EDGE_ORT_SHARDS"] = shards
    try:
        return load_engine(path, backend="onnxruntime")[0]
    finally:
        os.environ.pop("FER_EDGE_ORT_SHARDS", None)
        if previous is not None:
            os.environ["FER_EDGE_ORT_SHARDS"] = previous


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=80)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--out", default="bench/results/int8_speedup.json")
    parser.add_argument("--latency-json", help="also write {id: {fp32: ms, int8: ms}} (tools/zoo_card.py reads it)")
    args = parser.parse_args()
    os.environ["FER_EDGE_THREADS"] = str(args.threads)
    engines: dict[tuple[str, str], Any] = {}
    sidecars: dict[str, Any] = {}
    for model_id in args.models:
        int8 = load_package(SHIPPED_MODELS_DIR / f"{model_id}_int8.json")
        fp32 = load_package(SHIPPED_MODELS_DIR / "fer_default.json") if model_id == "fer_default" else \
            zoo_package(model_id, precision="fp32")
        sidecars[model_id] = int8.sidecar
        engines[(model_id, "fp32")] = _engine(fp32.sidecar_path, None)
        engines[(model_id, "int8")] = _engine(int8.sidecar_path, None)
        engines[(model_id, "int8_one_session")] = _engine(int8.sidecar_path, "1")
    times: dict[tuple[str, str], list[float]] = {key: [] for key in engines}
    probes = {m: np.random.default_rng(0).standard_normal((args.batch, 3, *sidecars[m].input.size)).astype(np.float32)
              for m in args.models}
    for _ in range(args.rounds + 2):
        for (model_id, kind), engine in engines.items():
            start = time.perf_counter()
            engine.infer(probes[model_id])
            times[(model_id, kind)].append(time.perf_counter() - start)
    rows = []
    for model_id in args.models:
        p50 = {kind: round(1000 * float(np.median(times[(model_id, kind)][2:])), 2) for kind in KINDS}
        selection = (sidecars[model_id].calibration or {}).get("op_selection") or {}
        rows.append({"model": model_id, "batch": args.batch, "fp32_ms": p50["fp32"], "int8_ms": p50["int8"],
                     "int8_one_session_ms": p50["int8_one_session"], "speedup": round(p50["fp32"] / p50["int8"], 2),
                     "speedup_one_session": round(p50["fp32"] / p50["int8_one_session"], 2),
                     "int8_shards": len(engines[(model_id, "int8")].shards) or 1,
                     "int8_accuracy": _accuracy(SHIPPED_MODELS_DIR / f"{model_id}_int8.json"),
                     "float_op_groups": selection.get("float_op_groups")})
    write_json_atomic(Path(args.out), {"machine": machine_info(), "threads": args.threads, "rounds": args.rounds,
                                       "statistic": "p50 per engine call", "rows": rows})
    if args.latency_json:
        write_json_atomic(Path(args.latency_json), {r["model"]: {"fp32": r["fp32_ms"], "int8": r["int8_ms"]}
                                                    for r in rows})
    print("| model | FP32 ms | INT8 ms (shards) | **INT8 speed-up** | INT8 one session: ms, speed-up | "
          "INT8 acc (FER+ valid) | kept FP32 |\n|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| `{r['model']}` | {r['fp32_ms']} | {r['int8_ms']} ({r['int8_shards']}) | **{r['speedup']}x** | "
              f"{r['int8_one_session_ms']}, {r['speedup_one_session']}x | {r['int8_accuracy']} | "
              f"{', '.join(r['float_op_groups'] or []) or '-'} |")


if __name__ == "__main__":
    main()
