"""Device profiles are data (devices/profiles/*.toml); this module reads them and applies their gates.

A Jetson profile carries JetPack -> TensorRT version -> the ONNX opsets and operators its parser accepts,
DLA cores, memory, precisions; every profile can carry latency/memory budgets and parity gates. The
compatibility gate refuses, before anything is built, an ONNX model the device's TensorRT could not parse.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jepa_edge.errors import JepaEdgeError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PROFILE_DIR = Path(__file__).parent / "profiles"


def default_gates() -> dict[str, float]:
    """The parity gate defaults, from THE gate table (jepa_edge.parity.gates; imported late, it pulls in torch)."""
    from ..parity.gates import DEFAULT_GATES

    return dict(DEFAULT_GATES)


class ProfileError(JepaEdgeError):
    """An unknown or malformed profile, or a model the profile's device cannot run (the message says which)."""


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    kind: str  # "jetson" | "cart-cpu"
    description: str = ""
    jetpack: str | None = None
    tensorrt: str | None = None
    cuda: str | None = None
    memory_mb: int | None = None
    dla_cores: int = 0
    precisions: tuple[str, ...] = ("fp32",)
    latency_budget_ms: float | None = None
    memory_budget_mb: float | None = None
    min_opset: int = 9
    max_opset: int = 99
    ops: tuple[str, ...] | None = None  # None: no operator list (any standard op)
    unsupported_domains: tuple[str, ...] = ()
    gates: dict[str, float] = field(default_factory=default_gates)
    extra: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "description": self.description, "jetpack": self.jetpack,
                "tensorrt": self.tensorrt, "cuda": self.cuda, "memory_mb": self.memory_mb,
                "dla_cores": self.dla_cores, "precisions": list(self.precisions),
                "latency_budget_ms": self.latency_budget_ms, "memory_budget_mb": self.memory_budget_mb,
                "onnx": {"min_opset": self.min_opset, "max_opset": self.max_opset,
                         "ops": list(self.ops) if self.ops is not None else None,
                         "unsupported_domains": list(self.unsupported_domains)},
                "gates": dict(self.gates), **({"extra": self.extra} if self.extra else {})}


KNOWN = {"name", "kind", "description", "jetpack", "tensorrt", "cuda", "memory_mb", "dla_cores", "precisions",
         "latency_budget_ms", "memory_budget_mb", "onnx", "gates"}


def list_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


def load_profile(name_or_path: str | Path) -> DeviceProfile:
    """A profile by name (devices/profiles/NAME.toml) or from a .toml path."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = PROFILE_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            raise ProfileError(f"unknown device profile {str(name_or_path)!r}; choose from {list_profiles()}")
    if not path.is_file():
        raise ProfileError(f"{path}: device profile file not found")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: invalid TOML: {exc}") from exc
    for key in ("name", "kind"):
        if key not in raw:
            raise ProfileError(f"{path}: required key {key!r} missing")
    if raw["kind"] not in ("jetson", "cart-cpu"):
        raise ProfileError(f"{path}: kind {raw['kind']!r} must be 'jetson' or 'cart-cpu'")
    onnx_section = raw.get("onnx", {})
    gates = {**default_gates(), **raw.get("gates", {})}
    bad = {k: v for k, v in gates.items() if not isinstance(v, (int, float))}
    if bad:
        raise ProfileError(f"{path}: gates must be numbers, got {bad}")
    try:
        return DeviceProfile(
            name=raw["name"], kind=raw["kind"], description=raw.get("description", ""),
            jetpack=raw.get("jetpack"), tensorrt=raw.get("tensorrt"), cuda=raw.get("cuda"),
            memory_mb=raw.get("memory_mb"), dla_cores=int(raw.get("dla_cores", 0)),
            precisions=tuple(raw.get("precisions", ("fp32",))), latency_budget_ms=raw.get("latency_budget_ms"),
            memory_budget_mb=raw.get("memory_budget_mb"), min_opset=int(onnx_section.get("min_opset", 9)),
            max_opset=int(onnx_section.get("max_opset", 99)),
            ops=tuple(onnx_section["ops"]) if "ops" in onnx_section else None,
            unsupported_domains=tuple(onnx_section.get("unsupported_domains", ())),
            gates={k: float(v) for k, v in gates.items()},
            extra={k: v for k, v in raw.items() if k not in KNOWN}, source=str(path))
    except (TypeError, ValueError) as exc:
        raise ProfileError(f"{path}: bad value: {exc}") from exc


def onnx_problems(model: Any, profile: DeviceProfile) -> list[str]:
    """Why `profile`'s runtime could not parse this ONNX model (an onnx.ModelProto or a path); empty if it can."""
    import onnx

    source = str(model) if not isinstance(model, onnx.ModelProto) else "model"
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model), load_external_data=False)
    runtime = f"TensorRT {profile.tensorrt} (JetPack {profile.jetpack})" if profile.tensorrt else profile.name
    problems = []
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            if imp.version > profile.max_opset:
                problems.append(f"{source}: ONNX opset {imp.version} is newer than {runtime} parses "
                                f"(max opset {profile.max_opset}); re-export with opset <= {profile.max_opset}")
            if imp.version < profile.min_opset:
                problems.append(f"{source}: ONNX opset {imp.version} is older than {runtime} supports "
                                f"(min {profile.min_opset})")
        elif imp.domain in profile.unsupported_domains:
            problems.append(f"{source}: operator domain {imp.domain!r} is not parsed by {runtime}")
    if profile.ops is not None:
        allowed = set(profile.ops)
        unknown = sorted({n.op_type for n in model.graph.node if n.domain in ("", "ai.onnx")} - allowed)
        if unknown:
            problems.append(f"{source}: operators {unknown} are not in {runtime}'s parsable set")
    foreign = sorted({f"{n.domain}::{n.op_type}" for n in model.graph.node if n.domain not in ("", "ai.onnx")})
    if foreign and profile.kind == "jetson":
        problems.append(f"{source}: custom-domain operators {foreign} need TensorRT plugins")
    return problems


def check_onnx_compatible(model: Any, profile: DeviceProfile) -> None:
    """The compatibility gate: raise ProfileError with every reason, or return quietly."""
    problems = onnx_problems(model, profile)
    if problems:
        raise ProfileError(f"profile {profile.name}: refused. " + " | ".join(problems))
