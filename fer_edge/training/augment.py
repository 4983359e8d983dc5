"""Training augmentation, split around the one preprocessing function.

Geometric and colour changes act on the uint8 crop *before* :func:`preprocess` (as a camera would
have produced them); random erasing acts on the normalised tensor *after* it (an occluder, filled
with noise in normalised units). Every draw comes from a caller-supplied generator, so a sample's
augmentation is a function of (seed, epoch, index) and a resumed run repeats it exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch


@dataclass(frozen=True)
class Augment:
    """Augmentation strengths; zero disables a step."""

    flip: float = 0.5  # probability of a horizontal flip
    crop_scale: tuple[float, float] = (0.8, 1.0)  # random resized crop: area fraction kept
    crop_ratio: tuple[float, float] = (0.9, 1.1)  # aspect ratio range of the crop
    rotate: float = 10.0  # max degrees
    brightness: float = 0.3
    contrast: float = 0.3
    erase: float = 0.25  # probability of one random erasing patch
    erase_scale: tuple[float, float] = (0.02, 0.2)

    def image(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Flip, random resized crop (+ small rotation) and brightness/contrast jitter of a uint8 crop."""
        h, w = img.shape[:2]
        if self.flip and rng.random() < self.flip:
            img = img[:, ::-1]
        area = h * w * rng.uniform(*self.crop_scale)
        ratio = math.exp(rng.uniform(math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1])))
        cw = min(w, max(1, round(math.sqrt(area * ratio))))
        ch = min(h, max(1, round(math.sqrt(area / ratio))))
        cx, cy = rng.uniform(0, w - cw) + cw / 2, rng.uniform(0, h - ch) + ch / 2
        angle = rng.uniform(-self.rotate, self.rotate) if self.rotate else 0.0
        # one affine warp: rotate about the crop centre, move it to the origin, scale the crop to
        # the full size, and centre it in the output
        rotate = np.vstack([cv2.getRotationMatrix2D((cx, cy), angle, 1.0), [0.0, 0.0, 1.0]])
        to_out = np.array([[w / cw, 0.0, w / 2 - w / cw * cx], [0.0, h / ch, h / 2 - h / ch * cy]])
        full = to_out @ rotate
        img = cv2.warpAffine(np.ascontiguousarray(img), full, (w, h), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REFLECT_101)
        if self.brightness or self.contrast:
            alpha = 1.0 + rng.uniform(-self.contrast, self.contrast)
            beta = 255.0 * rng.uniform(-self.brightness, self.brightness) * 0.5
            mean = float(img.mean())
            img = np.clip((img.astype(np.float32) - mean) * alpha + mean + beta, 0, 255).astype(np.uint8)
        return img

    def tensor(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Random erasing on one normalised CHW float array (in place)."""
        if not self.erase or rng.random() >= self.erase:
            return x
        _, h, w = x.shape
        area = h * w * rng.uniform(*self.erase_scale)
        ratio = math.exp(rng.uniform(math.log(0.3), math.log(3.3)))
        eh, ew = min(h, max(1, round(math.sqrt(area / ratio)))), min(w, max(1, round(math.sqrt(area * ratio))))
        y0, x0 = int(rng.integers(0, h - eh + 1)), int(rng.integers(0, w - ew + 1))
        x[:, y0:y0 + eh, x0:x0 + ew] = rng.standard_normal((x.shape[0], eh, ew)).astype(x.dtype)
        return x


def mixup(x: torch.Tensor, target: torch.Tensor, alpha: float, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup (Zhang et al., 2018): the batch blended with a shuffled copy of itself, and the targets
    with the same weight ``lam ~ Beta(alpha, alpha)`` (one per batch; index targets become one-hot,
    so a recipe's label smoothing, which acts on index targets only, no longer applies to them).

    Why: a student distilled from targets fixed per face (``--teacher-once``) fits them ever closer
    over fine-tunes while its held-out accuracy stalls; blended faces are new inputs every epoch.
    The draws use torch's RNG, which the training loop reseeds per epoch, so a resumed run repeats them.
    """
    if target.ndim == 1:
        target = torch.nn.functional.one_hot(target, num_classes).to(x.dtype)
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    order = torch.randperm(len(x), device=x.device)
    return lam * x + (1 - lam) * x[order], lam * target + (1 - lam) * target[order]
