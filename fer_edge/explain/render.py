"""Pictures of explanations: a heatmap over its crop, a labelled tile per face, a grid per image."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from fer_edge.errors import InvalidInputError
from fer_edge.explain.api import Explanation
from fer_edge.fileio import atomic_write

TILE = 144  # 48 px crops shown at 3x: the heat blobs are a few model pixels wide


def overlay(crop: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """BGR uint8: the crop with the heatmap (JET colours) blended over it."""
    base = cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR) if crop.ndim == 2 else crop[:, :, :3]
    heat = cv2.applyColorMap(np.uint8(np.clip(heatmap, 0, 1) * 255), cv2.COLORMAP_JET)
    heat = cv2.resize(heat, (base.shape[1], base.shape[0]), interpolation=cv2.INTER_LINEAR)
    return cv2.addWeighted(np.ascontiguousarray(base), 1 - alpha, heat, alpha, 0)


def tile(crop: np.ndarray, item: Explanation) -> np.ndarray:
    """Crop and overlay side by side at :data:`TILE` px, the top-3 classes written underneath."""
    pair = [cv2.resize(im, (TILE, TILE), interpolation=cv2.INTER_NEAREST)
            for im in (overlay(crop, np.zeros_like(item.heatmap), 0.0), overlay(crop, item.heatmap))]
    text = np.full((52, 2 * TILE, 3), 255, np.uint8)
    for row, (name, p) in enumerate(item.top):
        mark = " <- heat" if name == item.target else ""
        cv2.putText(text, f"{name} {p:.2f}{mark}", (4, 15 + 16 * row), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    return np.vstack([np.hstack(pair), text])


def grid(tiles: Sequence[np.ndarray], columns: int = 4) -> np.ndarray:
    """Tiles of one shape in rows of ``columns``, white where a row is short."""
    if not tiles:
        raise InvalidInputError("no face to put in a grid")
    blank = np.full_like(tiles[0], 255)
    rows = [list(tiles[i:i + columns]) for i in range(0, len(tiles), columns)]
    width = min(columns, len(tiles))
    return np.vstack([np.hstack(row + [blank] * (width - len(row))) for row in rows])


def write_png(path: Path, image: np.ndarray) -> None:
    """Encode and write atomically (a crash never leaves half a PNG)."""
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise InvalidInputError(f"cannot encode an image of shape {image.shape} as PNG")
    with atomic_write(path) as handle:
        handle.write(data.tobytes())
