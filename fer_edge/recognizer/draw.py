"""Annotate a frame with its results: boxes, labels and per-class probability bars."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from fer_edge.recognizer.results import FaceResult

BOX_COLOUR = (60, 200, 60)
BAR_COLOUR = (255, 160, 40)


def annotate(frame: np.ndarray, faces: Sequence[FaceResult]) -> np.ndarray:
    """A copy of BGR ``frame`` with each face's box, label (smoothed in streams; "uncertain" for a face the
    Recognizer would not answer and that has no answered history) and probability bars."""
    image = frame.copy()
    scale = max(0.6, min(image.shape[:2]) / 800)
    thick = max(1, round(2 * scale))
    for face in faces:
        x, y, w, h = (round(v) for v in face.box)
        cv2.rectangle(image, (x, y), (x + w, y + h), BOX_COLOUR, thick)
        probs = face.smoothed or face.probabilities
        label = face.smoothed_label or face.output_label
        title = f"{label} {max(probs.values()):.2f}" + (f" #{face.track_id}" if face.track_id is not None else "")
        cv2.putText(image, title, (x, max(12, y - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, BOX_COLOUR, thick)
        line = max(10, round(14 * scale))
        bar_x, bar_w = x + w + 4, max(40, round(80 * scale))
        for i, (name, p) in enumerate(probs.items()):
            top = y + i * line
            cv2.rectangle(image, (bar_x, top + 2), (bar_x + int(bar_w * p), top + line - 2), BAR_COLOUR, -1)
            cv2.putText(image, name[:8], (bar_x + bar_w + 4, top + line - 3), cv2.FONT_HERSHEY_SIMPLEX,
                        0.4 * scale, BAR_COLOUR, 1)
    return image
