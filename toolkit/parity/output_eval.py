"""Parity metrics for heads that are not multi-label: a regressed value (echo LVEF) and one-of-N classes (echo view).

Every stage is decoded with ITS OWN `TaskOutput` (a teacher and a student probe may z-score EF with different
mean / std), then judged against the ground truth and against the reference stages on the same videos:

- regression: MAE and bias (stage minus truth) with bootstrap CIs per stage; MAE differences with PAIRED
  bootstrap CIs (stage vs teacher, INT8 vs student FP32); Bland-Altman of the decoded values.
- one-of-N: accuracy with a bootstrap CI and per-class accuracy per stage; accuracy differences with paired
  CIs, argmax agreement overall and per reference class.
- every kind: mean / min embedding cosine vs the student FP32 (same embedding space only).

The perturbation sweep's rows turn into one number per INT8 stage: under the worst perturbation, how much more
it lost (relative to its own clean score) than the student FP32 lost relative to its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..tasks import metrics
from ..tasks.outputs import TaskOutput
from .evaluate import ParityError, StageOutputs, compare_regression, cosine_rows
from .gates import PERTURBATION_GATES, check_gates, gates_for_kind
from .run import STUDENT, TEACHER, ParityResult

KINDS = ("regression", "multiclass")


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _pair(lo: float, hi: float) -> list[float | None]:
    return [_finite(lo), _finite(hi)]


def _mae(y: np.ndarray, v: np.ndarray) -> float:
    return metrics.mae(y, v)


def _bias(y: np.ndarray, v: np.ndarray) -> float:
    return float(np.mean(np.asarray(v, dtype=np.float64) - np.asarray(y, dtype=np.float64)))


def _accuracy(y: np.ndarray, logits: np.ndarray) -> float:
    return metrics.accuracy(y, np.asarray(logits).argmax(axis=1))


def describe_output(output: TaskOutput) -> str:
    """One line naming what a head predicts, for error messages: 'regression LVEF (percent)', 'one-of-N A2C, ...'."""
    if output.kind == "regression":
        return f"regression {', '.join(output.names)}" + (f" ({output.unit})" if output.unit else "")
    return f"{'one-of-N' if output.kind == 'multiclass' else output.kind} {', '.join(output.names)}"


def check_same_task(teacher: TaskOutput, student: TaskOutput, where: str) -> None:
    """ParityError when the student's head does not predict what the teacher's does (kind, names, unit).

    The regression decode constants (mean / std) may differ: each stage is decoded with its own."""
    if (teacher.kind, teacher.names, teacher.unit) != (student.kind, student.names, student.unit):
        raise ParityError(f"{where}: the student predicts {describe_output(student)}, the teacher "
                          f"{describe_output(teacher)}: not the same task")
    if teacher.kind not in KINDS:
        raise ParityError(f"{where}: a {teacher.kind} output cannot be judged on echo ground truth "
                          f"(regression or one-of-N heads only)")


def decoded_values(stage: StageOutputs, output: TaskOutput) -> np.ndarray:
    """Regression: the first decoded value per row (e.g. EF percent); one-of-N: the argmax class per row."""
    if output.kind == "regression":
        return output.values(stage.logits)[:, 0]
    return np.asarray(output.decisions(stage.logits))


def output_metrics(truth: np.ndarray, stage: StageOutputs, output: TaskOutput, n_boot: int = 1000,
                   seed: int = 0) -> dict[str, Any]:
    """Accuracy of one stage against the truth; `value` is the headline metric (`output.metric_name`)."""
    if len(truth) != len(stage.logits):
        raise ParityError(f"stage {stage.name!r}: {len(stage.logits)} rows of outputs for {len(truth)} videos")
    if output.kind == "regression":
        v = decoded_values(stage, output)
        y = np.asarray(truth, dtype=np.float64)
        mae, lo, hi = metrics.bootstrap_ci(_mae, y, v, n_boot=n_boot, seed=seed)
        bias, blo, bhi = metrics.bootstrap_ci(_bias, y, v, n_boot=n_boot, seed=seed)
        return {"metric": output.metric_name, "value": _finite(mae), "unit": output.unit,
                "mae": _finite(mae), "mae_ci": _pair(lo, hi), "bias": _finite(bias), "bias_ci": _pair(blo, bhi),
                "rmse": float(np.sqrt(np.mean((v - y) ** 2))), "r2": _finite(metrics.r2(y, v))}
    y = np.asarray(truth, dtype=np.int64)
    acc, lo, hi = metrics.bootstrap_ci(_accuracy, y, stage.logits, n_boot=n_boot, seed=seed)
    pred = decoded_values(stage, output)
    per_class = {name: (_finite(float(np.mean(pred[y == c] == c))) if (y == c).any() else None)
                 for c, name in enumerate(output.names)}
    return {"metric": "accuracy", "value": _finite(acc), "accuracy": _finite(acc), "accuracy_ci": _pair(lo, hi),
            "per_class_accuracy": per_class,
            "counts": {name: int((y == c).sum()) for c, name in enumerate(output.names)}}


def compare_outputs(truth: np.ndarray, reference: StageOutputs, ref_output: TaskOutput, stage: StageOutputs,
                    stage_output: TaskOutput, n_boot: int = 1000, seed: int = 0,
                    same_embedding_space: bool = True) -> dict[str, Any]:
    """How far `stage` is from `reference` on the same videos (differences are stage minus reference)."""
    if reference.logits.shape != stage.logits.shape:
        raise ParityError(f"stage {stage.name!r} logits {stage.logits.shape} vs {reference.name!r} "
                          f"{reference.logits.shape}: not the same videos and outputs")
    out: dict[str, Any] = {"reference": reference.name, "stage": stage.name}
    if ref_output.kind == "regression":
        y = np.asarray(truth, dtype=np.float64)
        rv, sv = decoded_values(reference, ref_output), decoded_values(stage, stage_output)
        diff, lo, hi = metrics.paired_bootstrap_diff(_mae, y, rv, sv, n_boot=n_boot, seed=seed)
        bias, loa_lo, loa_hi = metrics.bland_altman(rv, sv)
        out.update({"mae_diff": _finite(diff), "mae_diff_ci": _pair(lo, hi), "mae_increase": _finite(diff),
                    "bias_diff": _finite(_bias(y, sv) - _bias(y, rv)),
                    "bland_altman_bias": _finite(bias), "bland_altman_loa": _pair(loa_lo, loa_hi),
                    "mean_abs_value_diff": float(np.mean(np.abs(sv - rv))),
                    "max_abs_value_diff": float(np.max(np.abs(sv - rv)))})
    else:
        y = np.asarray(truth, dtype=np.int64)
        diff, lo, hi = metrics.paired_bootstrap_diff(_accuracy, y, reference.logits, stage.logits, n_boot=n_boot,
                                                     seed=seed)
        rd, sd = decoded_values(reference, ref_output), decoded_values(stage, stage_output)
        per_class = {name: (float(np.mean(sd[rd == c] == c)) if (rd == c).any() else None)
                     for c, name in enumerate(ref_output.names)}
        out.update({"accuracy_diff": _finite(diff), "accuracy_diff_ci": _pair(lo, hi), "accuracy_drop": _finite(-diff),
                    "agreement": float(np.mean(rd == sd)), "per_class_agreement": per_class})
    out["max_abs_logit_diff"] = float(np.abs(stage.logits - reference.logits).max())
    out["cosine_mean"] = out["cosine_min"] = None
    if same_embedding_space:
        if reference.embedding.shape != stage.embedding.shape:
            raise ParityError(f"stage {stage.name!r} embedding {stage.embedding.shape} vs {reference.name!r} "
                              f"{reference.embedding.shape}: not the same embedding space")
        cos = cosine_rows(reference.embedding, stage.embedding)
        out["cosine_mean"], out["cosine_min"] = float(cos.mean()), float(cos.min())
    return out


def perturbation_excess(rows: Sequence[Mapping[str, Any]], stage: str, higher_is_better: bool,
                        reference: str = STUDENT) -> tuple[float | None, str]:
    """(worst extra loss of `stage` over `reference` across perturbations, which perturbation and numbers).

    A stage's loss under a perturbation is relative to its OWN clean score: MAE(perturbed) - MAE(clean) for a
    regression, accuracy(clean) - accuracy(perturbed) for one-of-N heads."""
    by = {(r["condition"], r["stage"]): r["value"] for r in rows}
    conditions = [c for c in dict.fromkeys(r["condition"] for r in rows) if c != "clean"]
    worst: tuple[float, str] | None = None
    for cond in conditions:
        values = [by.get(k) for k in (("clean", stage), (cond, stage), ("clean", reference), (cond, reference))]
        if any(v is None for v in values):
            continue
        s_clean, s_pert, r_clean, r_pert = (float(v) for v in values)
        sign = -1.0 if higher_is_better else 1.0
        excess = sign * (s_pert - s_clean) - sign * (r_pert - r_clean)
        if worst is None or excess > worst[0]:
            worst = (excess, f"worst under {cond}: {stage} {s_clean:.4g} -> {s_pert:.4g}, "
                             f"{reference} {r_clean:.4g} -> {r_pert:.4g}")
    return (None, "") if worst is None else (float(worst[0]), worst[1])


def evaluate_outputs(truth: np.ndarray, stages: Mapping[str, StageOutputs], decoders: Mapping[str, TaskOutput],
                     gated_stages: list[str], gates: Mapping[str, float], n_boot: int = 1000, seed: int = 0,
                     gate_source: str = "defaults",
                     sweep_rows: Sequence[Mapping[str, Any]] | None = None) -> ParityResult:
    """Metrics of every stage, comparisons with the teacher and the student FP32, the perturbation excess of every
    gated stage, and the gates that apply to the teacher's output kind (the twin of `run.evaluate_stages`)."""
    for required in (TEACHER, STUDENT):
        if required not in stages:
            raise ParityError(f"parity needs a {required!r} stage (got {sorted(stages)})")
    output = decoders[TEACHER]
    if output.kind not in KINDS:
        raise ParityError(f"output kind {output.kind!r}: use run.evaluate_stages for multi-label heads")
    applied = gates_for_kind(gates, output.kind)
    not_applied: dict[str, str] = {}
    if not sweep_rows:
        for name in PERTURBATION_GATES:
            if applied.pop(name, None) is not None:
                not_applied[name] = "no perturbation sweep in this run"
    per_stage = {name: output_metrics(truth, s, decoders[name], n_boot, seed) for name, s in stages.items()}
    comparisons: dict[str, dict[str, dict[str, Any]]] = {}
    for name, s in stages.items():
        if name == TEACHER:
            continue
        comparisons[name] = {"teacher": compare_outputs(truth, stages[TEACHER], output, s, decoders[name], n_boot,
                                                        seed, same_embedding_space=False)}
        if name != STUDENT:
            comparisons[name]["student-fp32"] = compare_outputs(truth, stages[STUDENT], decoders[STUDENT], s,
                                                                decoders[name], n_boot, seed)
    field = "perturbation_mae_excess" if output.kind == "regression" else "perturbation_accuracy_excess"
    for name in gated_stages:
        if sweep_rows and name in comparisons:
            value, detail = perturbation_excess(sweep_rows, name, output.higher_is_better)
            comparisons[name]["student-fp32"].update({field: value, f"{field}_detail": detail})
    regression: dict[str, dict[str, Any]] = {}
    if output.kind == "regression":  # Bland-Altman of every INT8 stage vs the student FP32 and vs the teacher
        values = {name: decoded_values(s, decoders[name]) for name, s in stages.items()}
        label = output.names[0]
        unit = f"{label} ({output.unit})" if output.unit else label
        for name in (n for n in gated_stages if n in values):
            for ref in (STUDENT, TEACHER):
                entry = compare_regression(truth, values[ref], values[name])
                regression[f"{label}: {name} vs {ref}"] = entry | {"unit": unit, "reference_stage": ref, "stage": name}
    return ParityResult(classes=list(output.names), labels=np.asarray(truth), thresholds=np.zeros(0),
                        data={}, stages=dict(stages), gated_stages=list(gated_stages), skipped={},
                        metrics=per_stage, comparisons=comparisons, gates=applied, gate_source=gate_source,
                        gate_results=check_gates(comparisons, applied, gated_stages, output.kind),
                        sweep=[dict(r) for r in (sweep_rows or [])], regression=regression,
                        output=output.to_dict(), gates_not_applied=not_applied)


__all__ = ["check_same_task", "compare_outputs", "decoded_values", "describe_output", "evaluate_outputs",
           "output_metrics", "perturbation_excess"]
