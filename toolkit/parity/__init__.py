"""Accuracy parity: teacher FP32 -> student FP32 -> student INT8 on every back end, gated, with a readable report.

`run_parity(teacher, bundle, data)` is what `jepa-edge parity` calls, for ECG (PTB-XL folds) and echo models
(EchoNet-layout videos, `parity.echo`); the pieces (stage evaluation over any Engine-like model, metrics per
output kind, gates, perturbation sweeps, the HTML report) are importable on their own.
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
from .gates import (
    GATE_KINDS,
    GATE_NAMES,
    PERTURBATION_GATES,
    GateConfigError,
    GateFailure,
    GateResult,
    check_gates,
    gates_for_kind,
    parse_gate_flags,
    resolve_gates,
)
from .output_eval import compare_outputs, evaluate_outputs, output_metrics
from .report import render_html
from .run import ECHO_SWEEP, ParityConfig, ParityResult, evaluate_stages, run_parity, write_reports
from .sweep import DEFAULT_SWEEP, SweepAxis, SweepStage, run_sweep

__all__ = [
    "DEFAULT_SWEEP", "ECHO_SWEEP", "GATE_KINDS", "GATE_NAMES", "PERTURBATION_GATES", "GateConfigError",
    "GateFailure", "GateResult", "ParityConfig", "ParityError", "ParityResult", "StageOutputs", "SweepAxis",
    "SweepStage", "check_gates", "compare_outputs", "compare_regression", "compare_stages", "cosine_rows",
    "evaluate_outputs", "evaluate_stages", "gates_for_kind", "output_metrics", "parse_gate_flags", "record_windows",
    "render_html", "resolve_gates", "run_parity", "run_stage", "run_sweep", "stage_metrics", "write_reports",
]
