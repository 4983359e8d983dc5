"""Temperature scaling (Guo et al. 2017): probabilities that mean what they say.

A network trained with cross-entropy is usually over-confident: among faces it calls "happy" with
p = 0.9, fewer than 90 % are happy. Dividing the logits by one scalar T > 1 (fitted by
negative log-likelihood on held-out faces, never on the faces the numbers are reported on) fixes
most of that without changing a single prediction, so it is safe to apply in every backend. The
sidecar stores T; the runtime's softmax divides by it.
"""

from __future__ import annotations

import numpy as np

from fer_edge.errors import InvalidInputError

SEARCH_RANGE = (0.05, 20.0)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _targets(targets: np.ndarray, num_classes: int) -> np.ndarray:
    """(N, C) target distributions from class indices or from (N, C) votes (rows normalised)."""
    targets = np.asarray(targets)
    if targets.ndim == 1:
        if targets.min() < 0 or targets.max() >= num_classes:
            raise InvalidInputError(f"labels must be class indices in [0, {num_classes}), got {targets.min()}.."
                                    f"{targets.max()}")
        return np.eye(num_classes)[targets]
    if targets.shape[1] != num_classes:
        raise InvalidInputError(f"targets have {targets.shape[1]} classes, the logits {num_classes}")
    totals = targets.sum(axis=1, keepdims=True)
    if (totals <= 0).any():
        raise InvalidInputError("every target row needs a positive sum (a face with no votes)")
    return targets / totals


def nll(logits: np.ndarray, targets: np.ndarray, temperature: float = 1.0) -> float:
    """Mean cross-entropy of ``softmax(logits / T)`` against labels or vote distributions."""
    logits = np.asarray(logits, np.float64)
    return float(-(_targets(targets, logits.shape[1]) * _log_softmax(logits / temperature)).sum(axis=1).mean())


def fit_temperature(logits: np.ndarray, targets: np.ndarray, tolerance: float = 1e-4) -> float:
    """The T minimising :func:`nll` (golden-section search on log T; the NLL is unimodal in it)."""
    logits = np.asarray(logits, np.float64)
    if logits.ndim != 2 or len(logits) == 0:
        raise InvalidInputError(f"logits must be a non-empty (N, C) array, got shape {logits.shape}")
    if len(targets) != len(logits):
        raise InvalidInputError(f"{len(logits)} logits but {len(targets)} targets")
    lo, hi = np.log(SEARCH_RANGE[0]), np.log(SEARCH_RANGE[1])
    golden = (np.sqrt(5) - 1) / 2
    a, b = hi - golden * (hi - lo), lo + golden * (hi - lo)
    fa, fb = nll(logits, targets, np.exp(a)), nll(logits, targets, np.exp(b))
    while hi - lo > tolerance:
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - golden * (hi - lo)
            fa = nll(logits, targets, np.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + golden * (hi - lo)
            fb = nll(logits, targets, np.exp(b))
    return float(np.exp((lo + hi) / 2))


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE: the confidence-weighted gap between top-1 confidence and accuracy, over ``bins`` equal-width bins."""
    probabilities = np.asarray(probabilities, np.float64)
    return calibration_gap(probabilities.max(axis=1), probabilities.argmax(axis=1) == np.asarray(labels), bins)


def calibration_gap(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """ECE from each prediction's confidence and whether it was right (for label spaces that differ
    from the model's, e.g. 8 FER+ emotions scored against a 7-class model)."""
    confidence, correct = np.asarray(confidence, np.float64), np.asarray(correct, bool)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    gap = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            gap += members.mean() * abs(confidence[members].mean() - correct[members].mean())
    return float(gap)
