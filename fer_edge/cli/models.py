"""``fer-edge models``: the zoo as a table of measured parameters and multiply-accumulates.

Numbers come from building each model and running one forward pass with counting hooks
(:mod:`fer_edge.models.profile`), so they always describe the code as it is.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", choices=("paper", "edge"), help="only this size (default: both)")
    parser.add_argument("--in-size", type=int, help="measure at this square size instead of each variant's default")
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of a table")


def run(args: argparse.Namespace) -> int:
    from fer_edge.models import VARIANTS, create_model, list_models, list_pretrained
    from fer_edge.models.profile import count_macs, count_params

    shipped = set(list_pretrained())

    rows: list[dict[str, Any]] = []
    for name in list_models():
        for variant in (args.variant,) if args.variant else VARIANTS:
            model = create_model(name, variant=variant, in_size=args.in_size)
            size = model.default_cfg["in_size"]
            rows.append(
                {
                    "model": name,
                    "variant": variant,
                    "in_size": list(size),
                    "params_m": round(count_params(model) / 1e6, 2),
                    "gmacs": round(count_macs(model, size) / 1e9, 3),
                    "trained_weights": (name, variant) in shipped,
                }
            )
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    print("FLOPs are counted as multiply-accumulates (GMACs) of Conv2d and Linear layers, one image, measured.")
    print(f"{'model':<14}{'variant':<9}{'input':>9}{'params (M)':>12}{'GMACs':>9}  trained weights")
    for r in rows:
        size = f"{r['in_size'][0]}x{r['in_size'][1]}"
        ships = "shipped" if r["trained_weights"] else "-"
        print(f"{r['model']:<14}{r['variant']:<9}{size:>9}{r['params_m']:>12.2f}{r['gmacs']:>9.3f}  {ships}")
    return 0
