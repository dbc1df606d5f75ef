"""Parity gates: the numbers a build must meet before it ships, and a failure message a person can act on.

Defaults are the project's promise; a device profile's `gates` table overrides them, and `--gate NAME=VALUE`
flags override both. Every gate result names the stage, the metric, the measured value and the limit.
This is THE gate table: device profiles (devices/profiles/*.toml) carry the same names, the build's accuracy
control reads its `*_fp32_int8` limits, and each gate applies only to the output kinds it makes sense for
(GATE_KINDS): AUC gates to multi-label heads, MAE gates to regression heads, accuracy gates to one-of-N heads.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import JepaEdgeError

DEFAULT_GATES: dict[str, float] = {
    # multi-label heads (ECG superdiagnostic): macro AUC, thresholded decisions
    "auc_drop_teacher": 0.01,  # macro AUC: teacher FP32 minus student INT8, at most
    "auc_drop_fp32_int8": 0.003,  # macro AUC: student FP32 minus student INT8, at most
    # every output kind
    "cosine": 0.995,  # mean embedding cosine, student FP32 vs INT8, at least
    # multi-label: thresholded decisions; one-of-N (echo view): argmax class; equal to student FP32's, at least
    "agreement": 0.99,
    # regression heads (echo LVEF): MAE of the decoded value against the truth, in its unit (EF points)
    "mae_increase_teacher": 0.5,  # MAE: student INT8 minus teacher FP32, at most
    "mae_increase_fp32_int8": 0.2,  # MAE: student INT8 minus student FP32, at most (also NNCF accuracy control)
    # the regression twin of `agreement`: mean |value INT8 - value student FP32| per video, at most. MAE alone can
    # miss a broken INT8 whose errors happen to land nearer the truth on a small set; parity means the SAME values
    "value_diff_fp32_int8": 1.0,
    # one-of-N heads (echo view): accuracy
    "accuracy_drop_teacher": 0.02,  # accuracy: teacher FP32 minus student INT8, at most
    "accuracy_drop_fp32_int8": 0.01,  # accuracy: student FP32 minus student INT8, at most (accuracy control)
    # perturbation sweep (echo depth attenuation / acoustic shadow): under the worst perturbation, how much MORE
    # the INT8 stage loses relative to its own clean score than the student FP32 loses relative to its own
    "perturbation_mae_margin": 0.5,  # regression: extra MAE increase, EF points, at most
    "perturbation_accuracy_margin": 0.02,  # one-of-N: extra accuracy loss, at most
}
# which way each gate points, and which comparison field it reads
GATE_RULES: dict[str, tuple[str, str, str]] = {
    "auc_drop_teacher": ("max", "teacher", "auc_drop"),
    "auc_drop_fp32_int8": ("max", "student-fp32", "auc_drop"),
    "cosine": ("min", "student-fp32", "cosine_mean"),
    "agreement": ("min", "student-fp32", "agreement"),
    "mae_increase_teacher": ("max", "teacher", "mae_increase"),
    "mae_increase_fp32_int8": ("max", "student-fp32", "mae_increase"),
    "value_diff_fp32_int8": ("max", "student-fp32", "mean_abs_value_diff"),
    "accuracy_drop_teacher": ("max", "teacher", "accuracy_drop"),
    "accuracy_drop_fp32_int8": ("max", "student-fp32", "accuracy_drop"),
    "perturbation_mae_margin": ("max", "student-fp32", "perturbation_mae_excess"),
    "perturbation_accuracy_margin": ("max", "student-fp32", "perturbation_accuracy_excess"),
}
# the output kinds (`TaskOutput.kind`) each gate makes sense for; a gate is never applied to any other kind
GATE_KINDS: dict[str, tuple[str, ...]] = {
    "auc_drop_teacher": ("multilabel",),
    "auc_drop_fp32_int8": ("multilabel",),
    "cosine": ("multilabel", "multiclass", "regression"),
    "agreement": ("multilabel", "multiclass"),
    "mae_increase_teacher": ("regression",),
    "mae_increase_fp32_int8": ("regression",),
    "value_diff_fp32_int8": ("regression",),
    "accuracy_drop_teacher": ("multiclass",),
    "accuracy_drop_fp32_int8": ("multiclass",),
    "perturbation_mae_margin": ("regression",),
    "perturbation_accuracy_margin": ("multiclass",),
}
PERTURBATION_GATES = ("perturbation_mae_margin", "perturbation_accuracy_margin")


def gates_for_kind(gates: Mapping[str, float], kind: str) -> dict[str, float]:
    """The gates of `gates` that apply to an output of `kind` ("multilabel", "multiclass", "regression")."""
    return {name: float(v) for name, v in gates.items() if kind in GATE_KINDS.get(name, ())}


class GateConfigError(JepaEdgeError):
    """A gate name or value that cannot be used (unknown name, not a number, out of range)."""


class GateFailure(JepaEdgeError):
    """At least one gate failed; the message lists every failure by stage, metric, value and limit."""

    def __init__(self, failures: list[GateResult]) -> None:
        self.failures = failures
        super().__init__("parity gates failed: " + "; ".join(f.message() for f in failures))


@dataclass(frozen=True)
class GateResult:
    stage: str
    gate: str
    metric: str
    reference: str
    value: float | None
    limit: float
    direction: str  # "max": value <= limit passes; "min": value >= limit passes
    passed: bool
    detail: str = ""  # what exactly failed, where the metric alone does not say

    def message(self) -> str:
        op = "<=" if self.direction == "max" else ">="
        shown = "missing" if self.value is None else f"{self.value + 0.0:.6g}"  # + 0.0: no "-0"
        verdict = "ok" if self.passed else "FAILED"
        text = (f"stage {self.stage!r}: {self.gate} ({self.metric} vs {self.reference}) = {shown}, "
                f"limit {op} {self.limit:g} {verdict}")
        return f"{text} ({self.detail})" if self.detail else text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"message": self.message()}


def _check_value(name: str, value: Any, source: str) -> float:
    if name not in DEFAULT_GATES:
        raise GateConfigError(f"{source}: unknown gate {name!r}; choose from {sorted(DEFAULT_GATES)}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise GateConfigError(f"{source}: gate {name} needs a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0 or (GATE_RULES[name][0] == "min" and number > 1):
        raise GateConfigError(f"{source}: gate {name}={value!r} out of range")
    return number


def parse_gate_flags(flags: Iterable[str]) -> dict[str, float]:
    """`["cosine=0.99", ...]` -> {"cosine": 0.99}, with errors naming the bad flag."""
    out: dict[str, float] = {}
    for flag in flags:
        name, sep, value = flag.partition("=")
        if not sep:
            raise GateConfigError(f"--gate {flag!r}: expected NAME=VALUE, e.g. cosine=0.995")
        out[name.strip()] = _check_value(name.strip(), value.strip(), f"--gate {flag!r}")
    return out


def resolve_gates(profile_gates: Mapping[str, Any] | None = None, overrides: Mapping[str, Any] | None = None,
                  profile_name: str = "profile") -> dict[str, float]:
    """Defaults <- device profile gates (keys it does not know are ignored: a profile may gate more) <- flags."""
    gates = dict(DEFAULT_GATES)
    for name, value in (profile_gates or {}).items():
        if name in DEFAULT_GATES:
            gates[name] = _check_value(name, value, f"device profile {profile_name!r}")
    for name, value in (overrides or {}).items():
        gates[name] = _check_value(name, value, "gate override")
    return gates


def check_gates(comparisons: Mapping[str, Mapping[str, Mapping[str, Any]]], gates: Mapping[str, float],
                gated_stages: Iterable[str], kind: str = "multilabel") -> list[GateResult]:
    """Apply every gate that fits outputs of `kind` (see GATE_KINDS) to every gated stage.

    `comparisons[stage][reference]` holds a stage comparison (`compare_stages` for multi-label heads,
    `output_eval.compare_outputs` otherwise); reference is "teacher" or "student-fp32". A comparison may say
    more about a value in `<field>_detail` (e.g. which perturbation was the worst); it becomes the detail."""
    results = []
    for stage in gated_stages:
        for gate, limit in gates_for_kind(gates, kind).items():
            direction, reference, field_name = GATE_RULES[gate]
            comp = comparisons.get(stage, {}).get(reference)
            value = None if comp is None else comp.get(field_name)
            ok = value is not None and (value <= limit + 1e-12 if direction == "max" else value >= limit - 1e-12)
            detail = "" if comp is None else str(comp.get(f"{field_name}_detail") or "")
            results.append(GateResult(stage, gate, field_name, reference, value, float(limit), direction, bool(ok),
                                      detail))
    return results
