"""Run one stage (any Engine-like model) over held-out windows, and compare stages with the shared metrics.

A "stage" is one way of running the model: the teacher in torch FP32, the student in torch FP32, the
student INT8 on onnxruntime / OpenVINO / TensorRT. Each stage sees windows preprocessed with ITS OWN
preprocessing (teacher and student may have fitted different normalisation constants), and every record's
logits and embedding are the mean over that record's windows, so stages are compared record by record.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..data.preprocess import EcgPreprocessing
from ..errors import JepaEdgeError
from ..tasks import metrics


class OutputsModel(Protocol):
    """What a stage needs from an engine: named outputs ("logits", "embedding") for a float32 batch."""

    def outputs(self, x: np.ndarray) -> dict[str, np.ndarray]: ...


class ParityError(JepaEdgeError):
    """Stages that cannot be compared (different labels, rows, shapes) or a stage that returned garbage."""


@dataclass
class StageOutputs:
    """Per-record outputs of one stage plus what actually ran and how fast."""

    name: str
    logits: np.ndarray  # (records, classes) float64
    embedding: np.ndarray  # (records, dim) float64
    info: dict[str, Any] = field(default_factory=dict)
    latency: dict[str, float] = field(default_factory=dict)

    @property
    def probabilities(self) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.logits))


def record_windows(signals: np.ndarray | Sequence[np.ndarray], fs: float,
                   pre: EcgPreprocessing) -> tuple[np.ndarray, np.ndarray]:
    """Preprocess raw mV signals, (records, leads, samples) or a list of (leads, samples_i) records of any
    length, into (windows, leads, window) float32 model inputs at the preprocessing's hop, and the record index
    of every window."""
    if isinstance(signals, np.ndarray) and signals.ndim != 3:
        raise ParityError(f"expected raw signals (records, leads, samples), got shape {signals.shape}")
    for rec in signals:
        if rec.ndim != 2 or rec.shape[0] != pre.num_leads:
            raise ParityError(f"a record of shape {rec.shape}; the model expects {pre.num_leads} leads ({pre.leads})")
    windows, owner = [], []
    for i, rec in enumerate(signals):
        w = pre.windows(pre(rec, fs_in=fs))
        windows.append(w)
        owner.append(np.full(len(w), i))
    return np.concatenate(windows).astype(np.float32), np.concatenate(owner)


def _mean_per_record(values: np.ndarray, owner: np.ndarray, records: int) -> np.ndarray:
    sums = np.zeros((records, values.shape[1]), dtype=np.float64)
    np.add.at(sums, owner, values.astype(np.float64))
    return sums / np.bincount(owner, minlength=records)[:, None]


def latency_ms(model: OutputsModel, x: np.ndarray, runs: int = 10, warmup: int = 2) -> dict[str, float]:
    """Batch-1 latency of `model` on one real window: median and p90 over `runs` calls after `warmup`."""
    one = np.ascontiguousarray(x[:1])
    for _ in range(warmup):
        model.outputs(one)
    times = []
    for _ in range(max(runs, 1)):
        start = time.perf_counter()
        model.outputs(one)
        times.append((time.perf_counter() - start) * 1e3)
    return {"batch1_median_ms": float(np.median(times)), "batch1_p90_ms": float(np.percentile(times, 90)),
            "batch1_runs": float(len(times))}


def run_stage(name: str, model: OutputsModel, signals: np.ndarray | Sequence[np.ndarray], fs: float,
              pre: EcgPreprocessing, batch_size: int = 32, latency_runs: int = 10, info: dict[str, Any] | None = None,
              progress: Callable[[int, int], None] | None = None) -> StageOutputs:
    """Run `model` on every window of every record; average per record; time it."""
    x, owner = record_windows(signals, fs, pre)
    logits, embeddings = [], []
    start = time.perf_counter()
    for i in range(0, len(x), batch_size):
        out = model.outputs(x[i : i + batch_size])
        if "logits" not in out or "embedding" not in out:
            raise ParityError(f"stage {name!r}: model returned outputs {sorted(out)}; need 'logits' and 'embedding'")
        logits.append(np.asarray(out["logits"], dtype=np.float64))
        embeddings.append(np.asarray(out["embedding"], dtype=np.float64))
        if progress:
            progress(min(i + batch_size, len(x)), len(x))
    elapsed = time.perf_counter() - start
    logits_all, emb_all = np.concatenate(logits), np.concatenate(embeddings)
    if not (np.isfinite(logits_all).all() and np.isfinite(emb_all).all()):
        raise ParityError(f"stage {name!r}: outputs contain NaN or Inf")
    lat = {"throughput_windows_per_s": float(len(x) / elapsed) if elapsed > 0 else float("nan"),
           "windows": float(len(x))}
    if latency_runs > 0:
        lat.update(latency_ms(model, x, runs=latency_runs))
    records = len(signals)
    if info is None:
        info_fn = getattr(model, "info", None)
        info = info_fn() if callable(info_fn) else {}
    return StageOutputs(name, _mean_per_record(logits_all, owner, records), _mean_per_record(emb_all, owner, records),
                        info=dict(info), latency=lat)


def decisions(stage: StageOutputs, thresholds: np.ndarray) -> np.ndarray:
    """Thresholded multi-label decisions (probability >= threshold), the thing a bedside alarm acts on."""
    return stage.probabilities >= np.asarray(thresholds, dtype=np.float64)[None, :]


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def stage_metrics(y: np.ndarray, stage: StageOutputs, classes: list[str], specificity: float = 0.9,
                  n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Accuracy of one stage against the labels: macro AUC with CI, per-class AUC, sens@spec, ECE."""
    if stage.logits.shape != y.shape:
        raise ParityError(f"stage {stage.name!r}: logits {stage.logits.shape} do not match labels {y.shape}")
    value, lo, hi = metrics.bootstrap_ci(metrics.macro_auc, y, stage.logits, n_boot=n_boot, seed=seed)
    per_class = metrics.per_class_auc(y, stage.logits)
    sens = metrics.per_class_sensitivity_at_specificity(y, stage.logits, specificity)
    return {
        "macro_auc": _finite(value), "macro_auc_ci": [_finite(lo), _finite(hi)],
        "per_class_auc": {c: _finite(v) for c, v in zip(classes, per_class, strict=True)},
        "specificity": specificity,
        "sensitivity_at_specificity": {c: _finite(v) for c, v in zip(classes, sens, strict=True)},
        "macro_sensitivity_at_specificity": _finite(np.nanmean(sens)) if np.isfinite(sens).any() else None,
        "ece": _finite(metrics.expected_calibration_error(y, stage.probabilities)),
    }


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of matching rows (1.0 where both rows are zero)."""
    num = (a * b).sum(axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0)


def compare_stages(y: np.ndarray, reference: StageOutputs, stage: StageOutputs, classes: list[str],
                   thresholds: np.ndarray, n_boot: int = 1000, seed: int = 0,
                   same_embedding_space: bool = True) -> dict[str, Any]:
    """How far `stage` is from `reference` on the same records: AUC differences with paired bootstrap CIs,
    decision agreement, embedding cosine (only within one embedding space) and max |logit difference|."""
    if reference.logits.shape != stage.logits.shape:
        raise ParityError(f"stage {stage.name!r} logits {stage.logits.shape} vs {reference.name!r} "
                          f"{reference.logits.shape}: not the same records and classes")
    diff, lo, hi = metrics.paired_bootstrap_diff(metrics.macro_auc, y, reference.logits, stage.logits,
                                                 n_boot=n_boot, seed=seed)
    per_class_diff = metrics.per_class_auc(y, stage.logits) - metrics.per_class_auc(y, reference.logits)
    return {
        "reference": reference.name,
        "stage": stage.name,
        "macro_auc_diff": _finite(diff),  # stage - reference; negative = stage is worse
        "macro_auc_diff_ci": [_finite(lo), _finite(hi)],
        "auc_drop": _finite(-diff),
        "per_class_auc_diff": {c: _finite(v) for c, v in zip(classes, per_class_diff, strict=True)},
    } | compare_unlabelled(reference, stage, thresholds, same_embedding_space)


def compare_unlabelled(reference: StageOutputs, stage: StageOutputs, thresholds: np.ndarray,
                       same_embedding_space: bool = True) -> dict[str, Any]:
    """What needs no ground truth: decision agreement, logit differences, embedding cosine (within one space)."""
    if reference.logits.shape != stage.logits.shape:
        raise ParityError(f"stage {stage.name!r} logits {stage.logits.shape} vs {reference.name!r} "
                          f"{reference.logits.shape}: not the same records and classes")
    d_ref, d_stage = decisions(reference, thresholds), decisions(stage, thresholds)
    delta = np.abs(stage.logits - reference.logits)
    out: dict[str, Any] = {
        "reference": reference.name,
        "stage": stage.name,
        "agreement": float((d_ref == d_stage).mean()),
        "record_agreement": float((d_ref == d_stage).all(axis=1).mean()),
        "max_abs_logit_diff": float(delta.max()),
        "mean_abs_logit_diff": float(delta.mean()),
        "cosine_mean": None,
        "cosine_min": None,
    }
    if same_embedding_space:
        if reference.embedding.shape != stage.embedding.shape:
            raise ParityError(f"stage {stage.name!r} embedding {stage.embedding.shape} vs {reference.name!r} "
                              f"{reference.embedding.shape}: not the same embedding space")
        cos = cosine_rows(reference.embedding, stage.embedding)
        out["cosine_mean"] = float(cos.mean())
        out["cosine_min"] = float(cos.min())
    return out


def compare_regression(truth: np.ndarray, reference: np.ndarray, test: np.ndarray) -> dict[str, Any]:
    """Regression parity (e.g. echo LVEF): MAE of each against the truth, Bland-Altman of test vs reference."""
    bias, lo, hi = metrics.bland_altman(reference, test)
    return {"mae_reference": metrics.mae(truth, reference), "mae_test": metrics.mae(truth, test),
            "mae_between": metrics.mae(reference, test), "bias": bias, "loa": [lo, hi],
            "reference": np.asarray(reference, dtype=np.float64).tolist(),
            "test": np.asarray(test, dtype=np.float64).tolist()}
