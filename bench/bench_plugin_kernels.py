"""Micro-benchmark (not a test): the CPU reference kernels (fer_edge._C) vs PyTorch eager for the
SimAM / CC Attention shapes the zoo uses. Reports median ms per call; single-threaded by default
so numbers are comparable on a shared machine.

    OMP_NUM_THREADS=1 python bench/bench_plugin_kernels.py [--repeats 20] [--batch 8]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

import numpy as np

# (op, where, C, H, W): SimAM after simam_resnet's stem and last stage, CC Attention in faer's stages
SHAPES = [("simam", "first", 64, 28, 28), ("simam", "last", 512, 4, 4), ("cca", "stage2", 80, 14, 14),
          ("cca", "stage3", 160, 7, 7)]


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()

    import torch

    from fer_edge.models.layers.cc_attention import CCAttentionCore
    from fer_edge.models.layers.simam import SimAM
    from fer_edge.plugins import cc_attention_reference, simam_reference

    rng = np.random.default_rng(0)
    simam, core = SimAM(), CCAttentionCore()
    print(f"{'op':<6} {'where':<7} {'N,C,H,W':<18} {'_C ms':>8} {'torch ms':>9}")
    for op, where, c, h, w in SHAPES:
        shape = (args.batch, c, h, w)
        arrays = [rng.standard_normal(shape).astype(np.float32) for _ in range(4)]
        tensors = [torch.from_numpy(a) for a in arrays]
        if op == "simam":
            native, eager = partial(simam_reference, arrays[0]), partial(simam, tensors[0])
        else:
            native, eager = partial(cc_attention_reference, *arrays), partial(core, *tensors)
        with torch.no_grad():
            print(f"{op:<6} {where:<7} {shape!s:<18} {median_ms(native, args.repeats):8.3f} "
                  f"{median_ms(eager, args.repeats):9.3f}")


if __name__ == "__main__":
    main()
