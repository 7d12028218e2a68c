"""Evaluation metrics against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from models_ml.evaluation import calibration_table, evaluate, lift_by_decile, population_stability_index


def test_lift_by_decile_by_hand() -> None:
    # 10 customers, scores descending; positives are the top two and one in the middle
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
    y = np.array([1, 1, 0, 0, 1, 0, 0, 0, 0, 0])
    lift = lift_by_decile(y, scores, bins=5)  # quintiles of 2
    assert lift["positive_rate"].tolist() == [1.0, 0.0, 0.5, 0.0, 0.0]
    assert lift["lift"].tolist() == pytest.approx([1 / 0.3, 0, 0.5 / 0.3, 0, 0])
    assert lift["cumulative_capture"].tolist() == pytest.approx([2 / 3, 2 / 3, 1, 1, 1])


def test_evaluate_perfect_and_inverted_ranking() -> None:
    y = np.array([0, 0, 1, 1])
    assert evaluate(y, np.array([0.1, 0.2, 0.8, 0.9])).roc_auc == 1.0
    assert evaluate(y, np.array([0.9, 0.8, 0.2, 0.1])).roc_auc == 0.0
    m = evaluate(y, np.array([0.5, 0.5, 0.5, 0.5]))
    assert m.brier == pytest.approx(0.25) and m.base_rate == 0.5


def test_calibration_table_by_hand() -> None:
    p = np.array([0.1, 0.1, 0.9, 0.9])
    y = np.array([0, 1, 1, 1])
    table = calibration_table(y, p, bins=2)
    assert table["mean_predicted"].tolist() == pytest.approx([0.1, 0.9])
    assert table["observed_rate"].tolist() == pytest.approx([0.5, 1.0])


def test_psi_zero_for_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(size=20_000)
    assert population_stability_index(a, rng.uniform(size=20_000)) < 0.01
    # half the mass moved from the lower to the upper half: PSI by hand over 2 bins
    shifted = np.concatenate([rng.uniform(0.5, 1, 15_000), rng.uniform(0, 0.5, 5_000)])
    expected = (0.25 - 0.5) * np.log(0.25 / 0.5) + (0.75 - 0.5) * np.log(0.75 / 0.5)
    assert population_stability_index(a, shifted, bins=2) == pytest.approx(expected, abs=0.02)


def test_evaluation_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both classes"):
        evaluate(np.array([1, 1]), np.array([0.2, 0.3]))
