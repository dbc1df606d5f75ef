"""Parity under perturbation: macro AUC of each stage as a perturbation gets harsher.

A student that matches the teacher on clean records but falls apart on a noisy one is not at parity; the
sweep applies the same seeded perturbation to the raw mV records once, then runs every stage on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data.ecg_perturb import KINDS, PerturbationError, perturb
from ..data.preprocess import EcgPreprocessing
from ..tasks import metrics
from .evaluate import OutputsModel, run_stage


@dataclass(frozen=True)
class SweepAxis:
    """One perturbation kind and its severities, mildest first (unit: see `ecg_perturb.perturb`)."""

    kind: str
    severities: tuple[float | str, ...]
    unit: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise PerturbationError(f"sweep: unknown perturbation {self.kind!r}; choose from {list(KINDS)}")
        if not self.severities:
            raise PerturbationError(f"sweep: {self.kind} has no severities")


DEFAULT_SWEEP: tuple[SweepAxis, ...] = (
    SweepAxis("noise", (24.0, 12.0, 6.0, 0.0), "SNR dB"),
    SweepAxis("baseline-wander", (0.25, 0.5, 1.0), "mV"),
    SweepAxis("powerline-50", (0.1, 0.3, 1.0), "mV"),
    SweepAxis("powerline-60", (0.1, 0.3, 1.0), "mV"),
    SweepAxis("lead-off", ("I", "II", "V2", "V5"), "lead"),
)


@dataclass(frozen=True)
class SweepStage:
    """A stage taking part in the sweep: its model and its own preprocessing."""

    model: OutputsModel
    pre: EcgPreprocessing


def run_sweep(signals: np.ndarray | Sequence[np.ndarray], fs: float, labels: np.ndarray,
              stages: Mapping[str, SweepStage],
              axes: Sequence[SweepAxis] = DEFAULT_SWEEP, seed: int = 0, batch_size: int = 32,
              leads: Sequence[str] | None = None,
              progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Rows {kind, unit, severity, stage, macro_auc} for every axis x severity x stage, plus a 'clean' row."""
    lead_names = tuple(leads) if leads is not None else next(iter(stages.values())).pre.leads
    conditions: list[tuple[str, str, float | str | None]] = [("clean", "", None)]
    conditions += [(axis.kind, axis.unit, sev) for axis in axes for sev in axis.severities]
    rows = []
    for kind, unit, severity in conditions:
        perturbed = signals if severity is None else perturb_records(signals, fs, kind, severity, seed, lead_names)
        for name, stage in stages.items():
            out = run_stage(name, stage.model, perturbed, fs, stage.pre, batch_size=batch_size, latency_runs=0,
                            info={})
            rows.append({"kind": kind, "unit": unit, "severity": severity, "stage": name,
                         "macro_auc": float(metrics.macro_auc(labels, out.logits))})
        if progress:
            progress(f"{kind} {severity if severity is not None else ''}".strip())
    return rows


def perturb_records(signals: np.ndarray | Sequence[np.ndarray], fs: float, kind: str, severity: float | str,
                    seed: int, leads: Sequence[str]) -> np.ndarray | list[np.ndarray]:
    """`perturb` on a stacked array, or record by record (same seed each) on records of different lengths."""
    if isinstance(signals, np.ndarray):
        return perturb(signals, fs, kind, severity, seed=seed, leads=leads)
    return [perturb(rec[None], fs, kind, severity, seed=seed, leads=leads)[0] for rec in signals]


def sweep_conditions(axes: Sequence[SweepAxis] = DEFAULT_SWEEP) -> int:
    """How many perturbed passes a sweep makes (for progress bars): clean + every severity of every axis."""
    return 1 + sum(len(a.severities) for a in axes)
