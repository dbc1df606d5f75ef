"""What a model's `logits` output means, in one place: multi-label classes, one-of-N classes, or a regressed value.

Every stage that turns logits into something a clinician reads (parity metrics and gates, accuracy control,
golden decisions, the C header, `echo infer`, streaming) asks a `TaskOutput` instead of assuming sigmoid
probabilities: the ECG superdiagnostic head is multi-label (sigmoid, per-class thresholds), the echo view
head one-of-N (softmax, argmax), and the LVEF head a z-scored value (EF = logit * std + mean, in percent).
The description travels in the classifier's meta.json (`output`) and in the bundle manifest
(`model.output`), so firmware decodes exactly what Python decodes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import JepaEdgeError
from . import metrics

KINDS = ("multilabel", "multiclass", "regression")


class OutputError(JepaEdgeError):
    """An output description that cannot decode logits (unknown kind, wrong sizes, non-finite constants)."""


@dataclass(frozen=True)
class TaskOutput:
    """How to read the `logits` tensor (batch, len(names))."""

    kind: str
    names: tuple[str, ...]
    thresholds: tuple[float, ...] = ()  # multilabel: decision when sigmoid(logit) >= threshold
    mean: float = 0.0  # regression: value = logit * std + mean
    std: float = 1.0
    unit: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise OutputError(f"output kind {self.kind!r} unknown; choose from {KINDS}")
        if not self.names:
            raise OutputError("an output needs at least one name (class or quantity)")
        if self.kind == "multilabel" and len(self.thresholds) != len(self.names):
            raise OutputError(f"{len(self.names)} classes but {len(self.thresholds)} thresholds")
        if self.kind == "multiclass" and len(self.names) < 2:
            raise OutputError("a one-of-N output needs at least two classes")
        if self.kind == "regression" and not (math.isfinite(self.mean) and math.isfinite(self.std) and self.std > 0):
            raise OutputError(f"regression decode needs a finite mean and a positive std, got {self.mean}, {self.std}")

    # -- decoding -------------------------------------------------------------------------------------
    @property
    def width(self) -> int:
        """Columns of `logits` this output reads."""
        return len(self.names)

    def _check(self, logits: np.ndarray) -> np.ndarray:
        z = np.asarray(logits, dtype=np.float64)
        if z.ndim != 2 or z.shape[1] != self.width:
            raise OutputError(f"logits of shape {z.shape} do not fit a {self.kind} output of {self.width} column(s)")
        return z

    def values(self, logits: np.ndarray) -> np.ndarray:
        """Regression: the decoded quantity (n, k) in `unit`."""
        if self.kind != "regression":
            raise OutputError(f"a {self.kind} output has no regressed values")
        return self._check(logits) * self.std + self.mean

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Multi-label: sigmoid per class; one-of-N: softmax over classes."""
        z = self._check(logits)
        if self.kind == "multilabel":
            return 1.0 / (1.0 + np.exp(-z))
        if self.kind == "multiclass":
            e = np.exp(z - z.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)
        raise OutputError("a regression output has no probabilities")

    def decisions(self, logits: np.ndarray) -> np.ndarray:
        """What an alarm or a report acts on: boolean (n, classes) for multi-label, class index (n,) for one-of-N."""
        if self.kind == "multilabel":
            return self.probabilities(logits) >= np.asarray(self.thresholds, dtype=np.float64)[None, :]
        if self.kind == "multiclass":
            return self._check(logits).argmax(axis=1)
        raise OutputError("a regression output makes no decisions; compare its values")

    def describe(self, logits: np.ndarray) -> list[dict[str, Any]]:
        """One JSON-ready dict per row: values, or probabilities and the decision."""
        rows: list[dict[str, Any]] = []
        if self.kind == "regression":
            for v in self.values(logits):
                rows.append({n: float(x) for n, x in zip(self.names, v, strict=True)})
            return rows
        probs, dec = self.probabilities(logits), self.decisions(logits)
        for p, d in zip(probs, dec, strict=True):
            row: dict[str, Any] = {"probabilities": {n: float(x) for n, x in zip(self.names, p, strict=True)}}
            row["decision"] = ([n for n, on in zip(self.names, d, strict=True) if on] if self.kind == "multilabel"
                               else self.names[int(d)])
            rows.append(row)
        return rows

    # -- accuracy against ground truth ---------------------------------------------------------------
    @property
    def metric_name(self) -> str:
        """The headline metric a parity run or accuracy control judges this output by."""
        return {"multilabel": "macro_auc", "multiclass": "accuracy"}.get(self.kind, f"{self.names[0].lower()}_mae")

    @property
    def higher_is_better(self) -> bool:
        return self.kind != "regression"

    def metric(self, truth: np.ndarray, logits: np.ndarray) -> float:
        """The headline metric: macro AUC (multi-label), accuracy (one-of-N), MAE of the first value (regression)."""
        if self.kind == "multilabel":
            return float(metrics.macro_auc(np.asarray(truth), self._check(logits)))
        if self.kind == "multiclass":
            return float(metrics.accuracy(np.asarray(truth).reshape(-1), self.decisions(logits)))
        return float(metrics.mae(np.asarray(truth, dtype=np.float64).reshape(-1), self.values(logits)[:, 0]))

    # -- persistence ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "names": list(self.names)}
        if self.kind == "multilabel":
            out["thresholds"] = [float(t) for t in self.thresholds]
            out["decode"] = "probability = sigmoid(logit); positive when probability >= threshold"
        elif self.kind == "multiclass":
            out["decode"] = "probability = softmax(logits); class = argmax(logits)"
        else:
            out.update(mean=float(self.mean), std=float(self.std), unit=self.unit,
                       decode="value = logit * std + mean")
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TaskOutput:
        try:
            return cls(kind=str(d["kind"]), names=tuple(str(n) for n in d["names"]),
                       thresholds=tuple(float(t) for t in d.get("thresholds", ())),
                       mean=float(d.get("mean", 0.0)), std=float(d.get("std", 1.0)), unit=str(d.get("unit", "")))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, OutputError):
                raise
            raise OutputError(f"output description {dict(d)!r} is incomplete: {exc}") from None

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> TaskOutput:
        """The output of a classifier folder's meta.json (or a manifest's `model` + top level).

        Folders written before `output` existed are read by what they carry: an echo regression `target`
        (mean/std) -> regression; a view task -> one-of-N; anything else -> multi-label with its thresholds."""
        if meta.get("output"):
            return cls.from_dict(meta["output"])
        labels = tuple(str(n) for n in meta.get("labels") or ())
        target = meta.get("target")
        if isinstance(target, Mapping) and "mean" in target and "std" in target:
            return cls("regression", labels or ("value",), mean=float(target["mean"]), std=float(target["std"]),
                       unit=str(target.get("unit", "")))
        if str(meta.get("task", "")).startswith("view"):
            return cls("multiclass", labels)
        thresholds = tuple(float(t) for t in (meta.get("thresholds") or [0.5] * len(labels)))
        return cls("multilabel", labels, thresholds)


__all__ = ["KINDS", "OutputError", "TaskOutput"]
