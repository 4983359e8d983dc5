"""Decode a split's images once, skip the unreadable ones, and cache the result.

FER+ train is 28.5k small PNGs: decoding them every epoch would cost more than a small model's
forward pass. :func:`decode_records` decodes once into one uint8 array and keeps it in an
``.npz`` under the cache folder (written atomically), keyed by the files' names, sizes and
modification times, so an edited dataset is never served from a stale cache.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import cv2
import numpy as np

from fer_edge.errors import DatasetError
from fer_edge.fileio import atomic_write
from fer_edge.training.readers import Records

CACHE_VERSION = "1"


def cache_root() -> Path:
    """``$FER_EDGE_HOME/cache/datasets`` (default ``~/.cache/fer_edge``)."""
    home = os.environ.get("FER_EDGE_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "fer_edge")
    return Path(home) / "cache" / "datasets"


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to (height, width) with the interpolation rule preprocess uses (area when shrinking)."""
    if image.shape[:2] == size:
        return image
    shrinking = image.shape[0] > size[0] or image.shape[1] > size[1]
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def _read_one(item: Path | np.ndarray, box: np.ndarray | None, gray: bool) -> np.ndarray | None:
    """One uint8 image (HxW when ``gray`` else HxWx3 BGR), or None when unreadable."""
    image: np.ndarray | None
    if isinstance(item, np.ndarray):
        image = item
    else:
        try:
            image = cv2.imread(str(item), cv2.IMREAD_COLOR)
        except cv2.error:
            image = None
    if image is None or image.size == 0:
        return None
    if box is not None and box[2] > 0 and box[3] > 0:
        x, y, w, h = (int(v) for v in box)
        image = image[max(y, 0):y + h, max(x, 0):x + w]
        if image.size == 0:
            return None
    if gray and image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)  # the runtime's conversion (preprocess)
    elif not gray and image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return image


def _cache_key(records: Records, gray: bool, size: tuple[int, int] | None) -> str | None:
    if not records.items or isinstance(records.items[0], np.ndarray):
        return None  # inline pixels decode instantly
    digest = hashlib.sha256(f"{CACHE_VERSION}|{gray}|{size}".encode())
    for i, path in enumerate(records.items):
        try:
            stat = os.stat(path)  # type: ignore[arg-type]
            digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}".encode())
        except OSError:
            digest.update(f"{path}|missing".encode())
        if records.boxes is not None:
            digest.update(records.boxes[i].tobytes())
    return digest.hexdigest()[:24]


def decode_records(records: Records, gray: bool, size: tuple[int, int] | None = None,
                   cache_dir: Path | None = None, use_cache: bool = True) -> tuple[Records, np.ndarray]:
    """Decode every image of ``records``; return the readable records and their images.

    Images are kept at their native size when all share one (so augmentation crops the original
    pixels); otherwise each is resized to ``size``. Unreadable or corrupt files are skipped with
    one warning giving their count; if none is readable, :class:`DatasetError` names the source.
    """
    key = _cache_key(records, gray, size) if use_cache else None
    cache_file = (cache_dir or cache_root()) / f"{records.format}-{key}.npz" if key else None
    if cache_file is not None and cache_file.is_file():
        with np.load(cache_file) as cached:
            images, valid = cached["images"], cached["valid"]
    else:
        boxes = records.boxes
        decoded = [_read_one(item, None if boxes is None else boxes[i], gray)  # type: ignore[arg-type]
                   for i, item in enumerate(records.items)]
        valid = np.asarray([img is not None for img in decoded], dtype=bool)
        good = [img for img in decoded if img is not None]
        if not good:
            raise DatasetError(f"{records.source}: none of its {len(records)} images could be read")
        if len({img.shape for img in good}) > 1:
            if size is None:
                raise DatasetError(f"{records.source}: images differ in size; a target size is needed")
            good = [_resize(img, size) for img in good]
        images = np.stack(good)
        if cache_file is not None:
            with atomic_write(cache_file) as handle:
                np.savez(handle, images=images, valid=valid)
    bad = int((~valid).sum())
    if bad:
        warnings.warn(f"{records.source}: skipped {bad} unreadable or corrupt image(s) of {len(records)}",
                      stacklevel=2)
    kept = records.subset(valid)
    if bad:
        kept.dropped["unreadable"] = kept.dropped.get("unreadable", 0) + bad
    return kept, images
