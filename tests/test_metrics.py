"""Metrics checked against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from jepa_edge.tasks import metrics as m


def test_auc_hand_computed_with_tie() -> None:
    # positives 0.8, 0.4 ; negatives 0.4, 0.1, 0.6 -> pairs: (0.8 > all 3) = 3, (0.4 vs 0.4 tie) = .5,
    # (0.4 > 0.1) = 1, (0.4 < 0.6) = 0  => 4.5 / 6
    y = np.array([1, 0, 1, 0, 0])
    s = np.array([0.8, 0.4, 0.4, 0.1, 0.6])
    assert m.auc(y, s) == pytest.approx(4.5 / 6)
    assert m.auc(y, -s) == pytest.approx(1 - 4.5 / 6)
    assert m.auc(np.array([1, 1, 0, 0]), np.array([0.9, 0.8, 0.2, 0.1])) == 1.0


def test_auc_single_label_value_is_nan_and_skipped_in_macro() -> None:
    assert np.isnan(m.auc(np.ones(4), np.arange(4.0)))
    y = np.array([[1, 0], [0, 0], [1, 0], [0, 0]])
    s = np.array([[0.9, 0.1], [0.2, 0.5], [0.7, 0.3], [0.1, 0.2]])
    per = m.per_class_auc(y, s)
    assert per[0] == 1.0 and np.isnan(per[1])
    assert m.macro_auc(y, s) == 1.0


def test_auc_length_mismatch_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="differ"):
        m.auc(np.array([0, 1]), np.array([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="classes"):
        m.per_class_auc(np.zeros((3, 2)), np.zeros((3, 3)))


def test_roc_curve_points() -> None:
    y = np.array([1, 0, 1, 0])
    s = np.array([0.9, 0.7, 0.7, 0.1])
    fpr, tpr, thr = m.roc_curve(y, s)
    # thresholds inf, 0.9, 0.7, 0.1
    np.testing.assert_allclose(thr[1:], [0.9, 0.7, 0.1])
    np.testing.assert_allclose(tpr, [0, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 1.0])
    # trapezoid area equals the rank AUC (ties included)
    assert np.trapezoid(tpr, fpr) == pytest.approx(m.auc(y, s))


def test_thresholds_and_f1_hand_computed() -> None:
    y = np.array([[1], [1], [0], [0], [1]])
    s = np.array([[0.9], [0.6], [0.5], [0.2], [0.1]])
    # t between .5 and .6 -> tp 2 fp 0 fn 1 -> F1 .8 ; t below .1 -> tp 3 fp 2 -> 6/8=.75 ; best .55
    t = m.tune_thresholds_f1(y, s)
    assert t[0] == pytest.approx(0.55)
    macro, per = m.f1_at(y, s, t)
    assert macro == pytest.approx(0.8) and per[0] == pytest.approx(0.8)
    # class with no positives: never predicted, F1 undefined and excluded from the macro mean
    y2 = np.c_[y, np.zeros(5, dtype=int)]
    s2 = np.c_[s, np.linspace(0, 1, 5)]
    t2 = m.tune_thresholds_f1(y2, s2)
    assert np.isinf(t2[1])
    macro2, per2 = m.f1_at(y2, s2, t2)
    assert np.isnan(per2[1]) and macro2 == pytest.approx(0.8)
    with pytest.raises(ValueError, match="thresholds"):
        m.f1_at(y2, s2, np.array([0.5]))


def test_sensitivity_at_specificity() -> None:
    y = np.array([0, 0, 0, 0, 1, 1, 1, 0, 1, 1])
    s = np.arange(10.0)
    # negatives sit at scores 0,1,2,3,7. spec >= .8 allows one false positive: threshold 4 catches all
    # five positives (4,5,6,8,9) with fp {7} -> sensitivity 1.0
    assert m.sensitivity_at_specificity(y, s, 0.8) == pytest.approx(1.0)
    # spec 1.0 -> only scores >= 8 -> tp 2 -> .4
    assert m.sensitivity_at_specificity(y, s, 1.0) == pytest.approx(0.4)
    per = m.per_class_sensitivity_at_specificity(np.c_[y, y], np.c_[s, s], 1.0)
    np.testing.assert_allclose(per, [0.4, 0.4])
    with pytest.raises(ValueError):
        m.sensitivity_at_specificity(y, s, 1.5)


def test_expected_calibration_error_hand_computed() -> None:
    y = np.array([1, 0, 1, 1])
    p = np.array([0.05, 0.15, 0.95, 0.85])
    # bin0 (.05) acc 1 conf .05 -> .95 ; bin1 (.15) acc 0 conf .15 -> .15 ; bin8 .85 -> .15 ; bin9 .95 -> .05
    assert m.expected_calibration_error(y, p) == pytest.approx((0.95 + 0.15 + 0.15 + 0.05) / 4)
    with pytest.raises(ValueError, match="probabilities"):
        m.expected_calibration_error(y, p * 3)


def test_regression_and_agreement_metrics() -> None:
    assert m.mae([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0)
    # SS_tot = 2, SS_res = .25*2 -> 1 - .25
    assert m.r2([1, 2, 3], [1.5, 2, 2.5]) == pytest.approx(0.75)
    assert np.isnan(m.r2([2, 2, 2], [1, 2, 3]))
    assert m.accuracy([0, 1, 2, 2], [0, 1, 1, 2]) == pytest.approx(0.75)
    bias, lo, hi = m.bland_altman([50, 60, 70], [52, 61, 72])  # diffs 2, 1, 2 -> mean 5/3, sd .57735
    assert bias == pytest.approx(5 / 3)
    assert hi - bias == pytest.approx(1.96 * np.std([2, 1, 2], ddof=1))
    assert lo == pytest.approx(bias - 1.96 * np.std([2, 1, 2], ddof=1))


def test_bootstrap_ci_brackets_value_and_is_seeded() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, (200, 3))
    s = y + rng.normal(0, 1.0, y.shape)
    value, lo, hi = m.bootstrap_ci(m.macro_auc, y, s, n_boot=200, seed=3)
    assert lo < value < hi and 0.6 < value < 0.9
    assert m.bootstrap_ci(m.macro_auc, y, s, n_boot=200, seed=3) == (value, lo, hi)
    # identical scores: the paired difference is exactly zero in every resample
    assert m.paired_bootstrap_diff(m.macro_auc, y, s, s, n_boot=50) == (0.0, 0.0, 0.0)
    better = s + 2 * y
    diff, dlo, dhi = m.paired_bootstrap_diff(m.macro_auc, y, s, better, n_boot=200)
    assert diff > 0 and dlo > 0 and dhi >= diff


def test_wilson_interval_matches_the_textbook_values_and_stays_inside_zero_one() -> None:
    from jepa_edge.tasks.metrics import wilson_interval

    lo, hi = wilson_interval(5, 10)
    assert abs(lo - 0.2366) < 1e-4 and abs(hi - 0.7634) < 1e-4
    lo, hi = wilson_interval(0, 10)
    assert lo == pytest.approx(0.0, abs=1e-12) and abs(hi - 0.2775) < 1e-4
    assert all(np.isnan(wilson_interval(0, 0)))
