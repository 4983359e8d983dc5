"""The one preprocessing function: aligned face crop(s) -> normalised NCHW float32 batch.

Training, calibration, export parity checks and the runtime all call :func:`preprocess`, so a
face is seen identically everywhere (BGR/RGB or resize differences are a classic cause of
"scores below the README", USERS.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from fer_edge.errors import InvalidInputError
from fer_edge.package import InputSpec


def _to_model_colour(crop: np.ndarray, color: str, rgb_input: bool) -> np.ndarray:
    """Convert one uint8 crop (HxW gray, HxWx3 BGR/RGB, or HxWx4) to the model's colour, HxWx3."""
    if crop.ndim == 2:
        gray = crop
    elif crop.ndim == 3 and crop.shape[2] in (3, 4):
        if crop.shape[2] == 4:
            crop = crop[:, :, :3]
        if color == "gray":
            gray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY if rgb_input else cv2.COLOR_BGR2GRAY)
        else:
            return np.ascontiguousarray(crop if rgb_input else crop[:, :, ::-1])
    else:
        raise InvalidInputError(f"a face crop must be HxW, HxWx3 or HxWx4 uint8, got shape {crop.shape}")
    return np.repeat(gray[:, :, None], 3, axis=2)


def preprocess(crops: Sequence[np.ndarray] | np.ndarray, spec: InputSpec, rgb_input: bool = False) -> np.ndarray:
    """Turn uint8 face crops into the model input described by ``spec``.

    ``crops`` is one crop or a sequence of crops, each HxW (gray), HxWx3 (BGR unless
    ``rgb_input``) or HxWx4 (alpha dropped); crops of any size are resized to ``spec.size``
    (area interpolation when shrinking, bilinear when enlarging). Returns float32
    ``(N, 3, H, W)`` with ``(pixel / 255 - mean) / std`` per channel, channels in RGB order.
    """
    if isinstance(crops, np.ndarray) and (crops.ndim == 2 or (crops.ndim == 3 and crops.shape[-1] in (3, 4))):
        crops = [crops]
    height, width = spec.size
    mean = np.asarray(spec.mean, dtype=np.float32)
    scale = 1.0 / (255.0 * np.asarray(spec.std, dtype=np.float32))
    batch = np.empty((len(crops), height, width, 3), dtype=np.float32)
    for i, crop in enumerate(crops):
        if not isinstance(crop, np.ndarray) or crop.dtype != np.uint8:
            raise InvalidInputError(f"face crop {i} must be a uint8 numpy array, got {type(crop).__name__}"
                                    f"{'' if not isinstance(crop, np.ndarray) else ' of ' + str(crop.dtype)}")
        if crop.size == 0:
            raise InvalidInputError(f"face crop {i} is empty (shape {crop.shape})")
        image = _to_model_colour(crop, spec.color, rgb_input)
        if image.shape[:2] != (height, width):
            shrinking = image.shape[0] > height or image.shape[1] > width
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
        batch[i] = image
    batch = (batch * scale - mean * 255.0 * scale)
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
