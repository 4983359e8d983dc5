"""What sharding buys INT8 on the CPU: engines at batch 8, one session vs one single-thread session per core.

    python bench/int8_shards.py [--rounds 80]   # under a minute on 2 cores

Runs the engines as the SDK loads them (``load_engine``, ONNX Runtime, ``FER_EDGE_THREADS``
threads, spinning off), with ``FER_EDGE_ORT_SHARDS`` 1 (one session) or 2 (the INT8 default on
2 cores), interleaved round by round; prints p50 per batch and the INT8 speed-up over FP32.
FP32 is the default's shipped package and faer's benchmark export (the `fer-edge build` graph).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from fer_edge.bench.zoo import zoo_package
from fer_edge.constants import SHIPPED_MODELS_DIR
from fer_edge.engines.resolve import load_engine


def _engine(path: os.PathLike[str] | str, shards: int):  # type: ignore[no-untyped-def]
    os.environ["FER_EDGE_ORT_SHARDS"] = str(shards)
    return load_engine(path, backend="onnxruntime")[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=80)
    args = parser.parse_args()
    models = {"fer_default": SHIPPED_MODELS_DIR / "fer_default.json", "faer": zoo_package("faer").sidecar_path}
    setups = {}
    for name, fp32 in models.items():
        int8 = SHIPPED_MODELS_DIR / f"{name}_int8.json"
        setups[name] = {"fp32": _engine(fp32, 1), "int8": _engine(int8, 1), "int8 sharded": _engine(int8, 2)}
    os.environ.pop("FER_EDGE_ORT_SHARDS")
    x = np.random.default_rng(0).standard_normal((8, 3, 48, 48)).astype(np.float32)
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds + 2):  # the first two rounds warm up and are dropped
        for name, engines in setups.items():
            for kind, engine in engines.items():
                start = time.perf_counter()
                engine.infer(x)
                times.setdefault((name, kind), []).append(time.perf_counter() - start)
    print("| model | FP32 ms | INT8 ms, one session | INT8 ms, sharded | speed-up one / sharded |")
    print("|---|---:|---:|---:|---:|")
    for name in setups:
        fp32, one, sharded = (1000 * float(np.median(times[(name, k)][2:])) for k in ("fp32", "int8", "int8 sharded"))
        print(f"| `{name}` | {fp32:.2f} | {one:.2f} | {sharded:.2f} | {fp32 / one:.2f}x / **{fp32 / sharded:.2f}x** |")


if __name__ == "__main__":
    main()
