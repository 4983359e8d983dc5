"""Classification metrics in plain numpy, so tests can check them against a hand computation.

Macro averages follow scikit-learn's convention: a class with no prediction (or no sample) has
precision (recall) 0 and still counts in the mean, over the classes present in the labels or the
predictions.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """``cm[true, pred]`` counts, int64 (num_classes, num_classes)."""
    labels, preds = np.asarray(labels, dtype=np.int64), np.asarray(preds, dtype=np.int64)
    if labels.shape != preds.shape:
        raise ValueError(f"labels {labels.shape} and predictions {preds.shape} differ in shape")
    return np.bincount(labels * num_classes + preds, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes)


def classification_report(labels: np.ndarray, preds: np.ndarray, classes: tuple[str, ...]) -> dict[str, Any]:
    """Accuracy, macro precision/recall/F1, per-class accuracy (= recall) and the confusion matrix."""
    n = len(classes)
    cm = confusion_matrix(labels, preds, n)
    tp = np.diag(cm).astype(np.float64)
    support, predicted = cm.sum(axis=1), cm.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros(n), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(n), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(n), where=denom > 0)
    present = (support > 0) | (predicted > 0)
    total = int(cm.sum())
    return {
        "num_images": total,
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "macro_precision": float(precision[present].mean()) if present.any() else 0.0,
        "macro_recall": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class_accuracy": {c: float(recall[i]) for i, c in enumerate(classes) if support[i] > 0},
        "support": {c: int(support[i]) for i, c in enumerate(classes)},
        "confusion_matrix": cm.tolist(),
        "classes": list(classes),
    }
