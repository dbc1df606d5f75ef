"""Parity gates: the numbers a build must meet before it ships, and a failure message a person can act on.

Defaults are the project's promise; a device profile's `gates` table overrides them, and `--gate NAME=VALUE`
flags override both. Every gate result names the stage, the metric, the measured value and the limit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

DEFAULT_GATES: dict[str, float] = {
    "auc_drop_teacher": 0.01,  # macro AUC: teacher FP32 minus student INT8, at most
    "auc_drop_fp32_int8": 0.003,  # macro AUC: student FP32 minus student INT8, at most
    "cosine": 0.995,  # mean embedding cosine, student FP32 vs INT8, at least
    "agreement": 0.99,  # thresholded decisions equal to student FP32's, at least
}
# which way each gate points, and which comparison field it reads
GATE_RULES: dict[str, tuple[str, str, str]] = {
    "auc_drop_teacher": ("max", "teacher", "auc_drop"),
    "auc_drop_fp32_int8": ("max", "student-fp32", "auc_drop"),
    "cosine": ("min", "student-fp32", "cosine_mean"),
    "agreement": ("min", "student-fp32", "agreement"),
}


class GateConfigError(ValueError):
    """A gate name or value that cannot be used (unknown name, not a number, out of range)."""


class GateFailure(ValueError):
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
                gated_stages: Iterable[str]) -> list[GateResult]:
    """Apply every gate to every gated stage. `comparisons[stage][reference]` holds `compare_stages` output;
    reference is "teacher" or "student-fp32"."""
    results = []
    for stage in gated_stages:
        for gate, limit in gates.items():
            direction, reference, field_name = GATE_RULES[gate]
            comp = comparisons.get(stage, {}).get(reference)
            value = None if comp is None else comp.get(field_name)
            ok = value is not None and (value <= limit + 1e-12 if direction == "max" else value >= limit - 1e-12)
            results.append(GateResult(stage, gate, field_name, reference, value, float(limit), direction, bool(ok)))
    return results
