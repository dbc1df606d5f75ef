"""Parity per stratum (site, sex, age band, fold or any label column): a device model that matches the teacher
on the pooled set may still drift on one hospital's patients, which is what an external-site review asks.

Each stratum gets the stage outputs of its own records: macro AUC with a bootstrap CI per stage, teacher ->
stage and student FP32 -> INT8 macro AUC differences with paired bootstrap CIs, decision agreement, cosine and
logit differences (agreement, cosine and logit differences only when the data carry no labels).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..data.errors import DataError
from ..tasks import metrics
from .evaluate import StageOutputs, compare_stages, compare_unlabelled

TEACHER = "teacher-fp32"
STUDENT = "student-fp32"
KEEP = ("macro_auc_diff", "macro_auc_diff_ci", "agreement", "record_agreement", "cosine_mean", "max_abs_logit_diff",
        "mean_abs_logit_diff")


def _subset(stage: StageOutputs, idx: np.ndarray) -> StageOutputs:
    return StageOutputs(stage.name, stage.logits[idx], stage.embedding[idx])


def _finite(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def stratum_values(strata: Mapping[str, Sequence[str]], column: str, where: str) -> list[str]:
    """The column's value for every record; DataError naming the columns the data do have."""
    if column not in strata:
        raise DataError(f"{where}: no stratum column {column!r}; this data has {sorted(strata) or 'none'}")
    return [str(v) for v in strata[column]]


def stratify(column: str, values: Sequence[str], labels: np.ndarray | None, stages: Mapping[str, StageOutputs],
             gated: Sequence[str], classes: Sequence[str], thresholds: np.ndarray, n_boot: int = 1000,
             seed: int = 0) -> dict[str, Any]:
    """{column, groups: [{value, records, positives, stages: {name: {macro_auc, ci}}, comparisons: {stage: {ref:
    {...}}}}]} with groups in sorted order of their value."""
    values_arr = np.asarray(values)
    groups = []
    for value in sorted(set(values)):
        idx = np.flatnonzero(values_arr == value)
        sub = {name: _subset(s, idx) for name, s in stages.items()}
        group: dict[str, Any] = {"value": value, "records": int(len(idx))}
        y = None if labels is None else labels[idx]
        if y is not None:
            group["positives"] = {c: int(v) for c, v in zip(classes, y.sum(axis=0), strict=True)}
            group["stages"] = {}
            for name, s in sub.items():
                v, lo, hi = metrics.bootstrap_ci(metrics.macro_auc, y, s.logits, n_boot=n_boot, seed=seed)
                group["stages"][name] = {"macro_auc": _finite(v), "macro_auc_ci": [_finite(lo), _finite(hi)]}
        comps: dict[str, dict[str, Any]] = {}
        for name in stages:
            if name == TEACHER:
                continue
            refs = [(TEACHER, False)] + ([(STUDENT, True)] if name in gated and STUDENT in sub else [])
            comps[name] = {}
            for ref, same_space in refs:
                if y is not None:
                    c = compare_stages(y, sub[ref], sub[name], list(classes), thresholds, n_boot, seed, same_space)
                else:
                    c = compare_unlabelled(sub[ref], sub[name], thresholds, same_space)
                comps[name]["teacher" if ref == TEACHER else "student-fp32"] = {k: c.get(k) for k in KEEP if k in c}
        group["comparisons"] = comps
        groups.append(group)
    return {"column": column, "groups": groups}


__all__ = ["stratify", "stratum_values"]
