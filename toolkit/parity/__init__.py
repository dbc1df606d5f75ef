"""Accuracy parity: teacher FP32 -> student FP32 -> student INT8 on every back end, gated, with a readable report.

`run_parity(teacher, bundle, data)` is what `jepa-edge parity` calls; the pieces (stage evaluation over any
Engine-like model, gates, perturbation sweeps, the HTML report) are importable on their own.
"""

from .evaluate import (
    ParityError,
    StageOutputs,
    compare_regression,
    compare_stages,
    cosine_rows,
    record_windows,
    run_stage,
    stage_metrics,
)
from .gates import DEFAULT_GATES, GateConfigError, GateFailure, GateResult, check_gates, parse_gate_flags, resolve_gates
from .report import render_html
from .run import ParityConfig, ParityResult, evaluate_stages, run_parity, write_reports
from .sweep import DEFAULT_SWEEP, SweepAxis, SweepStage, run_sweep

__all__ = [
    "DEFAULT_GATES", "DEFAULT_SWEEP", "GateConfigError", "GateFailure", "GateResult", "ParityConfig", "ParityError",
    "ParityResult", "StageOutputs", "SweepAxis", "SweepStage", "check_gates", "compare_regression", "compare_stages",
    "cosine_rows", "evaluate_stages", "parse_gate_flags", "record_windows", "render_html", "resolve_gates",
    "run_parity", "run_stage", "run_sweep", "stage_metrics", "write_reports",
]
