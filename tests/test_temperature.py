"""Temperature scaling: the fitted T recovers a known over-confidence, and ECE measures what it says."""

from __future__ import annotations

import numpy as np
import pytest

from fer_edge.errors import InvalidInputError
from fer_edge.recognizer.recognizer import softmax
from fer_edge.training.temperature import expected_calibration_error, fit_temperature, nll


def _calibrated_sample(n: int = 20000, classes: int = 7, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose softmax is exactly the distribution the labels are drawn from."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2.0, (n, classes))
    probs = softmax(logits)
    labels = (probs.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return logits, labels


def test_fit_recovers_the_overconfidence_factor() -> None:
    logits, labels = _calibrated_sample()
    assert fit_temperature(logits, labels) == pytest.approx(1.0, abs=0.05)
    assert fit_temperature(3.0 * logits, labels) == pytest.approx(3.0, rel=0.05)  # over-confident by 3x


def test_temperature_lowers_ece_and_nll_without_changing_predictions() -> None:
    logits, labels = _calibrated_sample()
    hot = 3.0 * logits
    t = fit_temperature(hot, labels)
    before, after = expected_calibration_error(softmax(hot), labels), expected_calibration_error(softmax(hot, t), labels)
    assert before > 0.1 and after < 0.02
    assert nll(hot, labels, t) < nll(hot, labels)
    assert (softmax(hot, t).argmax(1) == hot.argmax(1)).all()


def test_vote_distributions_are_targets_too() -> None:
    logits, labels = _calibrated_sample(n=5000)
    votes = np.eye(7)[labels] * 10
    assert fit_temperature(logits, votes) == pytest.approx(fit_temperature(logits, labels), rel=1e-3)


def test_ece_of_a_perfectly_calibrated_two_bin_case() -> None:
    probs = np.array([[0.8, 0.2]] * 10)
    labels = np.array([0] * 8 + [1] * 2)  # 80 % right at confidence 0.8
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0, abs=1e-12)
    assert expected_calibration_error(probs, np.zeros(10, int)) == pytest.approx(0.2)


def test_bad_input_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="non-empty"):
        fit_temperature(np.zeros((0, 7)), np.zeros(0, int))
    with pytest.raises(InvalidInputError, match="targets"):
        fit_temperature(np.zeros((3, 7)), np.zeros(2, int))
    with pytest.raises(InvalidInputError, match="class indices"):
        nll(np.zeros((2, 7)), np.array([0, 9]))
