"""Parity gates: what each gate means and which way it points, and a failure message a person can act on.

This module holds the gate *definitions* only (names, direction, the comparison field each reads, the output
kinds it applies to). The gate *values* live in one place: the `[gates]` table of each device profile
(devices/profiles/*.toml); `--gate NAME=VALUE` flags override them for one run. A profile must give every gate
here (there is no hidden default), and each gate applies only to the output kinds it makes sense for
(GATE_KINDS): AUC gates to multi-label heads, MAE gates to regression heads, accuracy gates to one-of-N heads.
What the gates measure, in the units of the profile's numbers:
  auc_drop_teacher / auc_drop_fp32_int8      macro AUC lost by student INT8 vs teacher FP32 / vs student FP32
  cosine                                      mean embedding cosine, student FP32 vs INT8 (every kind)
  agreement                                   identical thresholded decisions (multi-label) or argmax (one-of-N)
  mae_increase_teacher / mae_increase_fp32_int8   MAE of the decoded value (e.g. EF points) gained by INT8
  value_diff_fp32_int8                        mean |value INT8 - value student FP32| per video: parity means
                                              the SAME values; MAE alone can miss a broken INT8 whose errors land
                                              nearer the truth on a small set
  accuracy_drop_teacher / accuracy_drop_fp32_int8   one-of-N accuracy lost
  perturbation_mae_margin / perturbation_accuracy_margin   under the worst perturbation, how much MORE the INT8
                                              stage loses relative to its own clean score than student FP32 does
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import JepaEdgeError

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
GATE_NAMES: tuple[str, ...] = tuple(GATE_RULES)
# the `*_fp32_int8` gate that bounds NNCF accuracy control (INT8 vs FP32 loss), per output kind
ACCURACY_CONTROL_GATES: dict[str, str] = {"multilabel": "auc_drop_fp32_int8", "regression": "mae_increase_fp32_int8",
                                          "multiclass": "accuracy_drop_fp32_int8"}


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
    if name not in GATE_RULES:
        raise GateConfigError(f"{source}: unknown gate {name!r}; choose from {sorted(GATE_RULES)}")
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


def resolve_gates(profile_gates: Mapping[str, Any], overrides: Mapping[str, Any] | None = None,
                  profile_name: str = "profile") -> dict[str, float]:
    """A device profile's `[gates]` table (the only source of gate values) <- `--gate` flags.

    Every gate in GATE_RULES must be in the profile (keys it does not know are ignored: a profile may gate more)."""
    missing = [name for name in GATE_RULES if name not in profile_gates]
    if missing:
        raise GateConfigError(f"{profile_name}: gates {missing} missing from its [gates] table (device profiles "
                              "are the only source of gate values; every gate needs a value)")
    gates = {name: _check_value(name, profile_gates[name], profile_name) for name in GATE_RULES}
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
