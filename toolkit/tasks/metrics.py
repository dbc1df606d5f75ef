"""Evaluation metrics for probes, distillation parity and edge builds (numpy only, no sklearn).

Every stage that reports a number imports it from here, so "macro AUC" means the same thing in the probe,
the distillation benchmark and the parity gates. Classes whose labels take a single value in the evaluated
rows have no defined AUC: they come back as NaN and are left out of macro averages.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.stats import rankdata

Metric = Callable[[np.ndarray, np.ndarray], float]


def _binary(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y).reshape(-1)
    s = np.asarray(s, dtype=np.float64).reshape(-1)
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.shape[0]} vs {s.shape[0]}")
    return y.astype(bool), s


def _two_d(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y)
    s = np.asarray(s, dtype=np.float64)
    if y.ndim == 1:
        y, s = y[:, None], s.reshape(-1, 1)
    if y.shape != s.shape or y.ndim != 2:
        raise ValueError(f"labels {y.shape} and scores {s.shape} must both be (n, classes)")
    return y, s


def auc(y: np.ndarray, s: np.ndarray) -> float:
    """Binary ROC AUC via the Mann-Whitney rank statistic (ties count one half); NaN if y has one value."""
    yb, s = _binary(y, s)
    n_pos = int(yb.sum())
    n_neg = yb.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)  # average ranks: ties share, which gives them half credit
    return float((ranks[yb].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def per_class_auc(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """AUC of every column; NaN where a class has a single label value in these rows."""
    y, s = _two_d(y, s)
    return np.array([auc(y[:, c], s[:, c]) for c in range(y.shape[1])], dtype=np.float64)


def macro_auc(y: np.ndarray, s: np.ndarray) -> float:
    """Mean AUC over the classes where it is defined (NaN if none is)."""
    values = per_class_auc(y, s)
    valid = values[~np.isnan(values)]
    return float(valid.mean()) if valid.size else float("nan")


def roc_curve(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) with one point per distinct score, highest threshold first, starting at (0, 0)."""
    yb, s = _binary(y, s)
    n_pos = max(int(yb.sum()), 0)
    n_neg = yb.size - n_pos
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], yb[order]
    last_of_value = np.r_[np.nonzero(np.diff(s_sorted))[0], s_sorted.size - 1]
    tps = np.cumsum(y_sorted)[last_of_value]
    fps = (last_of_value + 1) - tps
    tpr = np.r_[0.0, tps / n_pos] if n_pos else np.full(tps.size + 1, np.nan)
    fpr = np.r_[0.0, fps / n_neg] if n_neg else np.full(fps.size + 1, np.nan)
    thresholds = np.r_[np.inf, s_sorted[last_of_value]]
    return fpr.astype(np.float64), tpr.astype(np.float64), thresholds


def _resample_stats(values: np.ndarray, value: float, alpha: float) -> tuple[float, float, float]:
    values = values[~np.isnan(values)]
    if values.size == 0:
        return value, float("nan"), float("nan")
    lo, hi = np.quantile(values, [alpha / 2.0, 1.0 - alpha / 2.0])
    return value, float(lo), float(hi)


def bootstrap_ci(metric: Metric, y: np.ndarray, s: np.ndarray, n_boot: int = 1000, seed: int = 0,
                 alpha: float = 0.05) -> tuple[float, float, float]:
    """(metric on all rows, lower, upper) percentile interval from resampling rows with replacement.

    Resamples where the metric is undefined (NaN, e.g. one class only) are dropped.
    """
    y = np.asarray(y)
    s = np.asarray(s)
    if y.shape[0] != s.shape[0]:
        raise ValueError(f"labels and scores differ in rows: {y.shape[0]} vs {s.shape[0]}")
    rng = np.random.default_rng(seed)
    n = y.shape[0]
    values = np.empty(n_boot, dtype=np.float64)
    for i in range(n_boot):
        idx = rng.integers(0, n, n)
        values[i] = metric(y[idx], s[idx])
    return _resample_stats(values, float(metric(y, s)), alpha)


def paired_bootstrap_diff(metric: Metric, y: np.ndarray, s_a: np.ndarray, s_b: np.ndarray, n_boot: int = 1000,
                          seed: int = 0, alpha: float = 0.05) -> tuple[float, float, float]:
    """(metric(b) - metric(a), lower, upper): both models scored on the SAME resampled rows each round."""
    y = np.asarray(y)
    s_a = np.asarray(s_a)
    s_b = np.asarray(s_b)
    if not (y.shape[0] == s_a.shape[0] == s_b.shape[0]):
        raise ValueError(f"rows differ: labels {y.shape[0]}, a {s_a.shape[0]}, b {s_b.shape[0]}")
    rng = np.random.default_rng(seed)
    n = y.shape[0]
    values = np.empty(n_boot, dtype=np.float64)
    for i in range(n_boot):
        idx = rng.integers(0, n, n)
        values[i] = metric(y[idx], s_b[idx]) - metric(y[idx], s_a[idx])
    return _resample_stats(values, float(metric(y, s_b) - metric(y, s_a)), alpha)


def _f1_counts(y: np.ndarray, pred: np.ndarray) -> float:
    tp = int(np.sum(y & pred))
    fp = int(np.sum(~y & pred))
    fn = int(np.sum(y & ~pred))
    denom = 2 * tp + fp + fn
    return float(2 * tp / denom) if denom else float("nan")


def tune_thresholds_f1(y_val: np.ndarray, s_val: np.ndarray) -> np.ndarray:
    """Per-class threshold (predict positive when score >= t) that maximises F1 on validation rows.

    Candidates are midpoints between consecutive distinct scores (plus just below the lowest), so the
    thresholds generalise instead of sitting exactly on a validation score. A class with no positives gets
    +inf (never predicted) because no threshold can earn F1 there.
    """
    y, s = _two_d(y_val, s_val)
    y = y.astype(bool)
    thresholds = np.empty(y.shape[1], dtype=np.float64)
    for c in range(y.shape[1]):
        yc, sc = y[:, c], s[:, c]
        if not yc.any():
            thresholds[c] = np.inf
            continue
        distinct = np.unique(sc)
        candidates = np.r_[distinct[0] - 1e-6, (distinct[:-1] + distinct[1:]) / 2.0] if distinct.size > 1 \
            else np.array([distinct[0] - 1e-6])
        # F1 for every candidate at once: counts of positives / predictions above each candidate
        order = np.argsort(sc)
        sc_sorted, yc_sorted = sc[order], yc[order]
        below = np.searchsorted(sc_sorted, candidates, side="left")
        pos_below = np.r_[0, np.cumsum(yc_sorted)][below]
        tp = yc.sum() - pos_below
        predicted = sc.size - below
        f1 = 2.0 * tp / (predicted + yc.sum())
        thresholds[c] = float(candidates[int(np.argmax(f1))])
    return thresholds


def f1_at(y: np.ndarray, s: np.ndarray, thresholds: np.ndarray) -> tuple[float, np.ndarray]:
    """(macro F1, per-class F1) predicting positive when score >= threshold; a class with no positives and no
    predictions is NaN and left out of the macro mean."""
    y, s = _two_d(y, s)
    thresholds = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if thresholds.size != y.shape[1]:
        raise ValueError(f"{thresholds.size} thresholds for {y.shape[1]} classes")
    y = y.astype(bool)
    per_class = np.array([_f1_counts(y[:, c], s[:, c] >= thresholds[c]) for c in range(y.shape[1])])
    valid = per_class[~np.isnan(per_class)]
    return (float(valid.mean()) if valid.size else float("nan")), per_class


def sensitivity_at_specificity(y: np.ndarray, s: np.ndarray, specificity: float = 0.9) -> float:
    """Highest sensitivity reachable by a threshold whose specificity is at least `specificity` (binary)."""
    if not 0.0 <= specificity <= 1.0:
        raise ValueError(f"specificity must be in [0, 1], got {specificity}")
    fpr, tpr, _ = roc_curve(y, s)
    if np.isnan(fpr).any() or np.isnan(tpr).any():
        return float("nan")
    ok = (1.0 - fpr) >= specificity - 1e-12
    return float(tpr[ok].max())


def per_class_sensitivity_at_specificity(y: np.ndarray, s: np.ndarray, specificity: float = 0.9) -> np.ndarray:
    """`sensitivity_at_specificity` for every column (NaN where a class has one label value)."""
    y, s = _two_d(y, s)
    return np.array([sensitivity_at_specificity(y[:, c], s[:, c], specificity) for c in range(y.shape[1])])


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """ECE of probabilities p against 0/1 labels (multi-label arrays are flattened): equal-width bins,
    |mean label - mean probability| weighted by the share of predictions in each bin."""
    yb, p = _binary(y, p)
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    if p.size == 0:
        return float("nan")
    if p.min() < 0.0 or p.max() > 1.0:
        raise ValueError("expected_calibration_error needs probabilities in [0, 1] (apply sigmoid first)")
    which = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            total += in_bin.mean() * abs(yb[in_bin].mean() - p[in_bin].mean())
    return float(total)


def mae(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute error."""
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"arrays differ in length: {a.size} vs {b.size}")
    return float(np.mean(np.abs(a - b)))


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    """Coefficient of determination 1 - SS_res / SS_tot (NaN when y is constant)."""
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    pred = np.asarray(pred, dtype=np.float64).reshape(-1)
    if y.shape != pred.shape:
        raise ValueError(f"arrays differ in length: {y.size} vs {pred.size}")
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    if ss_tot == 0.0:
        return float("nan")
    return float(1.0 - np.sum((y - pred) ** 2) / ss_tot)


def accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """Share of exact matches (class ids or labels)."""
    y = np.asarray(y).reshape(-1)
    pred = np.asarray(pred).reshape(-1)
    if y.shape != pred.shape:
        raise ValueError(f"arrays differ in length: {y.size} vs {pred.size}")
    return float(np.mean(y == pred)) if y.size else float("nan")


def wilson_interval(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion hits / n (sound at 0 or n hits, unlike the normal approximation);
    NaNs for n = 0."""
    if n == 0:
        return float("nan"), float("nan")
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


def bland_altman(reference: np.ndarray, test: np.ndarray) -> tuple[float, float, float]:
    """(bias, lower, upper) limits of agreement: mean of test - reference, +- 1.96 sample SD."""
    reference = np.asarray(reference, dtype=np.float64).reshape(-1)
    test = np.asarray(test, dtype=np.float64).reshape(-1)
    if reference.shape != test.shape:
        raise ValueError(f"arrays differ in length: {reference.size} vs {test.size}")
    diff = test - reference
    bias = float(diff.mean())
    sd = float(diff.std(ddof=1)) if diff.size > 1 else 0.0
    return bias, bias - 1.96 * sd, bias + 1.96 * sd


__all__ = [
    "wilson_interval",
    "accuracy", "auc", "bland_altman", "bootstrap_ci", "expected_calibration_error", "f1_at", "macro_auc", "mae",
    "paired_bootstrap_diff", "per_class_auc", "per_class_sensitivity_at_specificity", "r2", "roc_curve",
    "sensitivity_at_specificity", "tune_thresholds_f1",
]
