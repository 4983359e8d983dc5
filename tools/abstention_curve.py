"""Choose the Recognizer's "uncertain" thresholds on FER+ valid, and draw the curve they sit on.

Each face (a subset of FER+ valid, strict-majority labels, 7 classes) is put in a frame the way
tools/measure_fer2013_template.py does (48 px crop upscaled x4 with a 50 % replicated border)
under seven conditions: clean; tiny (really 16-24 px wide in a 160 px frame: YuNet finds almost
none, so at that size the detector already gives no answer); low-res (downscaled to 16-24 px, then
shown at the usual size); small (32-40 px wide in a 160 px frame, about the smallest YuNet finds);
blur (Gaussian, sigma 1.5-3 crop pixels); rotation (20-40 degrees either way, in the image plane);
occlusion (a flat patch of random gray over 90 % of each side of the eyes or the mouth region of
fer_edge.training.evaluate, like a hand or a mask; a noise patch would read as very sharp). Each
frame runs through the real Recognizer (YuNet, alignment, the default INT8 ONNX package on CPU,
min_face 8 so the quality gate, not the detector filter, decides about small faces), which
measures quality and probabilities with abstention off.

Thresholds are then chosen on the even-indexed faces: the grid point with the best accuracy on
answered degraded faces among those answering >= 92 % of detected clean faces there (a margin over
the 90 % promise for the sampling error of ~650 faces; ties within 0.5 points: the one answering
more degraded faces). The table is measured on the odd-indexed
faces, which took no part in the choice. The figure sweeps ``min_confidence`` with the Recognizer's
default gates (``Abstention()``) on (solid) and off (dashed), per condition, on the odd half, with a
dot at the defaults themselves: it shows what the SDK does, also when this run would choose otherwise.

    python tools/abstention_curve.py --out docs/abstention_curve.png
"""

from __future__ import annotations

import argparse
import itertools
import math
import time
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np

from fer_edge import Recognizer
from fer_edge.fileio import atomic_write
from fer_edge.recognizer.abstain import Abstention
from fer_edge.recognizer.sources import read_image
from fer_edge.training.evaluate import OCCLUSION_REGIONS
from fer_edge.training.readers import read_ferplus

CONDITIONS = ("clean", "tiny", "low-res", "small", "blur", "rotation", "occlusion")
SIDES = {"tiny": (16, 24), "low-res": (16, 24), "small": (32, 40)}  # face width in pixels, inclusive
UPSCALE, PAD = 4, 0.5
CLEAN_KEPT = 0.92  # on the selection half, so the held-out half keeps >= 90 %
SMALL_FRAME = 160  # YuNet finds no face in a frame only twice the face's size
GRID: dict[str, tuple[float, ...]] = {
    "min_face_px": (0.0, 20.0, 24.0, 28.0, 32.0, 40.0),
    "min_sharpness": (),  # clean-face sharpness percentiles, filled in at run time
    "max_yaw": (180.0, 60.0, 45.0, 35.0, 25.0),
    "max_pitch": (180.0, 60.0, 45.0, 35.0, 25.0),
    "min_score": (0.0, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9),  # YuNet already drops faces under 0.6
    "min_confidence": tuple(round(0.025 * i, 3) for i in range(27)),  # 0 to 0.65
}


def cover(crop: np.ndarray, region: str, rng: np.random.Generator, coverage: float = 0.9) -> np.ndarray:
    """A copy of ``crop`` with a flat patch of random gray over ``coverage`` of each side of ``region``."""
    top, bottom, left, right = OCCLUSION_REGIONS[region]
    h, w = crop.shape[:2]
    rh, rw = round((bottom - top) * h), round((right - left) * w)
    ph, pw = round(rh * coverage), round(rw * coverage)
    y0, x0 = round(top * h) + int(rng.integers(0, rh - ph + 1)), round(left * w) + int(rng.integers(0, rw - pw + 1))
    out = crop.copy()
    out[y0:y0 + ph, x0:x0 + pw] = int(rng.integers(0, 256))
    return out


def frame_for(crop: np.ndarray, condition: str, rng: np.random.Generator) -> np.ndarray:
    """A BGR frame holding one degraded FER+ face."""
    if condition in ("tiny", "small"):
        side = int(rng.integers(SIDES[condition][0], SIDES[condition][1] + 1))
        face = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)
        before = (SMALL_FRAME - side) // 2
        frame = cv2.copyMakeBorder(face, before, SMALL_FRAME - side - before, before, SMALL_FRAME - side - before,
                                   cv2.BORDER_REPLICATE)
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    face = cover(crop, str(rng.choice(["eyes", "mouth"])), rng) if condition == "occlusion" else crop
    if condition == "low-res":
        side = int(rng.integers(SIDES[condition][0], SIDES[condition][1] + 1))
        face = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)
    face = cv2.resize(face, (48 * UPSCALE, 48 * UPSCALE), interpolation=cv2.INTER_CUBIC)
    if condition == "blur":
        face = cv2.GaussianBlur(face, (0, 0), float(rng.uniform(1.5, 3.0)) * UPSCALE)
    pad = int(face.shape[0] * PAD)
    frame = cv2.copyMakeBorder(face, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    if condition == "rotation":
        angle = float(rng.uniform(20, 40) * rng.choice([-1, 1]))
        centre = (frame.shape[1] / 2, frame.shape[0] / 2)
        frame = cv2.warpAffine(frame, cv2.getRotationMatrix2D(centre, angle, 1.0), frame.shape[1::-1],
                               borderMode=cv2.BORDER_REPLICATE)
    return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)


def measure(rec: Recognizer, data: Path, n: int, seed: int) -> dict[str, np.ndarray]:
    """Per (face, condition): detected, quality fields, top probability, correct."""
    records = read_ferplus(data, 7)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(records), size=min(n, len(records)), replace=False))
    rows: list[tuple[float, ...]] = []
    for k, i in enumerate(pick):
        crop = cv2.cvtColor(read_image(str(records.items[i])), cv2.COLOR_BGR2GRAY)
        for c, condition in enumerate(CONDITIONS):
            faces = rec(frame_for(crop, condition, rng))
            if not faces:
                rows.append((k, c, 0, 0, 0, 0, 0, 0, 0, 0))
                continue
            f, q = faces[0], faces[0].quality
            assert q is not None
            rows.append((k, c, 1, q.face_px, q.sharpness, abs(q.yaw or 0), abs(q.pitch or 0), q.score,
                         max(f.probabilities.values()), rec.classes.index(f.label) == records.labels[i]))
    table = np.asarray(rows, dtype=np.float64)
    names = ("face", "condition", "detected", "face_px", "sharpness", "yaw", "pitch", "score", "confidence", "correct")
    return {name: table[:, j] for j, name in enumerate(names)}


def answered(m: dict[str, np.ndarray], t: dict[str, float]) -> np.ndarray:
    return ((m["detected"] > 0) & (m["face_px"] >= t["min_face_px"]) & (m["sharpness"] >= t["min_sharpness"])
            & (m["yaw"] <= t["max_yaw"]) & (m["pitch"] <= t["max_pitch"]) & (m["score"] >= t["min_score"])
            & (m["confidence"] >= t["min_confidence"]))


def summary(m: dict[str, np.ndarray], keep: np.ndarray, mask: np.ndarray) -> tuple[float, float, int]:
    """(answered share of detected faces, accuracy on answered, number answered) within ``mask``."""
    detected = mask & (m["detected"] > 0)
    chosen = detected & keep
    share = chosen.sum() / max(detected.sum(), 1)
    return float(share), float(m["correct"][chosen].mean()) if chosen.any() else float("nan"), int(chosen.sum())


def choose(m: dict[str, np.ndarray], split: np.ndarray) -> dict[str, float]:
    clean = split & (m["condition"] == 0)
    degraded = split & (m["condition"] > 0)
    grid = dict(GRID)
    sharp = m["sharpness"][clean & (m["detected"] > 0)]
    grid["min_sharpness"] = (0.0, *np.percentile(sharp, [1, 2, 3, 4, 5, 6, 8, 10]).round(1))
    best: list[tuple[float, int, dict[str, float]]] = []
    keys = list(grid)
    for values in itertools.product(*(grid[k] for k in keys)):
        t = dict(zip(keys, map(float, values)))
        keep = answered(m, t)
        if summary(m, keep, clean)[0] < CLEAN_KEPT:
            continue
        _, acc, count = summary(m, keep, degraded)
        best.append((acc, count, t))
    top = max(acc for acc, _, _ in best)
    return max((b for b in best if b[0] >= top - 0.005), key=lambda b: b[1])[2]


def plot(m: dict[str, np.ndarray], split: np.ndarray, t: dict[str, float], out: Path) -> None:
    """Accuracy on answered faces vs the share answered, sweeping ``min_confidence`` with ``t``'s other
    gates on (solid) and off (dashed), per condition; a dot at ``t`` itself."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    sweep = np.linspace(0, 0.95, 40)
    for c, condition in enumerate(CONDITIONS):
        mask = split & (m["condition"] == c)
        for gates, style in ((True, "-"), (False, "--")):
            base = t if gates else {**t, "min_face_px": 0, "min_sharpness": 0, "max_yaw": 180, "max_pitch": 180,
                                    "min_score": 0}
            pts = [summary(m, answered(m, {**base, "min_confidence": float(s)}), mask)[:2] for s in sweep]
            xs, ys = zip(*pts)
            ax.plot(xs, ys, style, color=f"C{c}", label=f"{condition}" + ("" if gates else " (confidence only)"))
        x, y, _ = summary(m, answered(m, t), mask)
        ax.plot([x], [y], "o", color=f"C{c}", markersize=8)
    ax.axvline(0.9, color="gray", lw=0.8, ls=":")
    ax.set_xlabel("fraction of detected faces answered")
    ax.set_ylabel("accuracy on answered faces")
    ax.set_title("FER+ valid (held-out half), default INT8 model; dots: the Recognizer's defaults")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    with atomic_write(out) as handle:
        fig.savefig(handle, format="png", dpi=110)


def print_table(m: dict[str, np.ndarray], held_out: np.ndarray, t: dict[str, float]) -> None:
    """Per condition on the held-out faces: detected, accuracy of all detected, answered, accuracy on answered."""
    off = {k: (180.0 if k.startswith("max") else 0.0) for k in t}
    print("\n| condition | faces | detected | accuracy, all detected | answered of detected | accuracy on answered |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for c, condition in enumerate([*CONDITIONS, "all degraded"]):
        mask = held_out & ((m["condition"] > 0) if c == len(CONDITIONS) else (m["condition"] == c))
        _, acc_all, _ = summary(m, answered(m, off), mask)
        share, acc, _ = summary(m, answered(m, t), mask)
        faces, det = int(mask.sum()), int((mask & (m["detected"] > 0)).sum())
        cells = ["-" if math.isnan(v) else f"{v:.1%}" for v in (det / faces, acc_all, share, acc)]  # nan: none answered
        print(f"| {condition} | {faces} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ferplus/FER2013Valid"))
    parser.add_argument("-n", type=int, default=3000, help="faces drawn from FER+ valid (seeded; default: all of them)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="default", help="the package to measure ('default', a zoo id, a path): "
                        "Abstention's defaults were measured on the default; another package's confidences differ")
    parser.add_argument("--out", type=Path, default=Path("docs/abstention_curve.png"))
    parser.add_argument("--cache", type=Path, default=Path("runs/abstention/measured.npz"),
                        help="per-face measurements (reused when present with the same -n and seed)")
    args = parser.parse_args()
    start = time.perf_counter()
    rec = Recognizer(args.model, min_face=8, abstain=False)
    package = rec.choice.package.sidecar
    key = f"{args.n}-{args.seed}-{args.data.resolve()}-{','.join(CONDITIONS)}-{package.sha256}-{package.temperature}"
    cached = np.load(args.cache) if args.cache.exists() else None
    if cached is not None and str(cached["key"]) == key:
        m = dict(zip(map(str, cached["names"]), cached["table"]))
    else:
        m = measure(rec, args.data, args.n, args.seed)
        with atomic_write(args.cache) as handle:
            np.savez(handle, key=np.asarray(key), names=np.asarray(list(m)), table=np.stack(list(m.values())))
    print(f"{rec.choice.package.model_path.name} (sha256 {package.sha256[:12]}, temperature {package.temperature}, "
          f"{rec.choice.backend}): "
          f"{int(m['face'].max()) + 1} faces x {len(CONDITIONS)} conditions measured in "
          f"{time.perf_counter() - start:.0f} s")
    select, held_out = m["face"] % 2 == 0, m["face"] % 2 == 1
    t = choose(m, select)
    print("chosen thresholds:", {k: round(v, 3) for k, v in t.items()})
    print_table(m, held_out, t)
    shipped = asdict(Abstention())
    if shipped != t:
        print("\nthe Recognizer's defaults", {k: round(v, 3) for k, v in shipped.items()}, "on the same faces:")
        print_table(m, held_out, shipped)
    plot(m, held_out, shipped, args.out)  # the figure shows what the SDK does, whatever this run would choose
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
