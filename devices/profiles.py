"""Device profiles are data (devices/profiles/*.toml); this module reads them and applies their gates.

A Jetson profile carries JetPack -> TensorRT version -> the ONNX opsets and operators its parser accepts,
DLA cores, memory, precisions; a cart profile the x86 ISA it needs and prefers, the engine threads and the
OpenVINO precision hint. Every profile carries latency/memory budgets, whether bundles for it must be signed,
and THE parity gate values (its `[gates]` table: the only place gate numbers live; their meaning is in
jepa_edge.parity.gates). The compatibility gate refuses, before anything is built, an ONNX model the
device's TensorRT could not parse.
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
DEFAULT_PROFILE = "cart-x86"  # the profile whose gates apply when no profile or bundle names one


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
    gates: dict[str, float] = field(default_factory=dict)
    required_isa: tuple[str, ...] = ()  # x86 flags (devices.isa.FLAGS) without which the bundle must not run
    preferred_isa: tuple[str, ...] = ()  # any one of these gives the fast INT8 path; none: a warning at run time
    threads: int | None = None  # engine threads on the device (None: each back end's default)
    openvino_precision_hint: str | None = None  # OpenVINO INFERENCE_PRECISION_HINT for the float parts
    require_signature: bool = False  # every verb refuses a bundle for this profile unless its signature checks
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
                "required_isa": list(self.required_isa), "preferred_isa": list(self.preferred_isa),
                "threads": self.threads, "openvino_precision_hint": self.openvino_precision_hint,
                "require_signature": self.require_signature,
                "gates": dict(self.gates), **({"extra": self.extra} if self.extra else {})}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "") -> DeviceProfile:
        """The profile as `to_dict` wrote it (e.g. the copy a bundle's manifest stores in target.profile_data)."""
        extra = dict(data.get("extra") or {})  # bundles built before these keys were typed kept them here
        onnx_section = data.get("onnx") or {}

        def pick(key: str, default: Any = None) -> Any:
            return data.get(key, extra.get(key, default))

        try:
            return cls(name=str(data["name"]), kind=str(data["kind"]), description=str(data.get("description", "")),
                       jetpack=data.get("jetpack"), tensorrt=data.get("tensorrt"), cuda=data.get("cuda"),
                       memory_mb=data.get("memory_mb"), dla_cores=int(data.get("dla_cores") or 0),
                       precisions=tuple(data.get("precisions") or ("fp32",)),
                       latency_budget_ms=data.get("latency_budget_ms"), memory_budget_mb=data.get("memory_budget_mb"),
                       min_opset=int(onnx_section.get("min_opset", 9)),
                       max_opset=int(onnx_section.get("max_opset", 99)),
                       ops=tuple(onnx_section["ops"]) if onnx_section.get("ops") is not None else None,
                       unsupported_domains=tuple(onnx_section.get("unsupported_domains") or ()),
                       gates={k: float(v) for k, v in (data.get("gates") or {}).items()},
                       required_isa=tuple(pick("required_isa", ())), preferred_isa=tuple(pick("preferred_isa", ())),
                       threads=pick("threads"), openvino_precision_hint=pick("openvino_precision_hint"),
                       require_signature=bool(pick("require_signature", False)),
                       extra={k: v for k, v in extra.items() if k not in TYPED}, source=source)
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileError(f"{source or 'profile data'}: not a device profile ({exc})") from None


TYPED = {"required_isa", "preferred_isa", "threads", "openvino_precision_hint", "require_signature"}
KNOWN = {"name", "kind", "description", "jetpack", "tensorrt", "cuda", "memory_mb", "dla_cores", "precisions",
         "latency_budget_ms", "memory_budget_mb", "onnx", "gates", *TYPED}



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
    gates = raw.get("gates", {})
    bad = {k: v for k, v in gates.items() if isinstance(v, bool) or not isinstance(v, (int, float))}
    if bad:
        raise ProfileError(f"{path}: gates must be numbers, got {bad}")
    from ..parity.gates import GATE_NAMES  # the gate definitions (imported late: parity pulls in torch)

    missing = [g for g in GATE_NAMES if g not in gates]
    if missing:
        raise ProfileError(f"{path}: [gates] lacks {missing}; the profile is the only source of gate values, so "
                           "it must give every gate (meanings in jepa_edge.parity.gates)")
    _check_runtime_keys(raw, path)
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
            required_isa=tuple(raw.get("required_isa", ())), preferred_isa=tuple(raw.get("preferred_isa", ())),
            threads=raw.get("threads"), openvino_precision_hint=raw.get("openvino_precision_hint"),
            require_signature=raw.get("require_signature", False),
            extra={k: v for k, v in raw.items() if k not in KNOWN}, source=str(path))
    except (TypeError, ValueError) as exc:
        raise ProfileError(f"{path}: bad value: {exc}") from exc


def _check_runtime_keys(raw: dict[str, Any], path: Path) -> None:
    """The run-time keys (ISA flags, threads, precision hint, signature) have the types the engines rely on."""
    from ..runtimes.base import OPENVINO_PRECISIONS
    from .isa import FLAGS

    for key in ("required_isa", "preferred_isa"):
        flags = raw.get(key, [])
        if not isinstance(flags, list) or any(f not in FLAGS for f in flags):
            raise ProfileError(f"{path}: {key} must be a list of ISA flags from {list(FLAGS)}, got {flags!r}")
    threads = raw.get("threads")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ProfileError(f"{path}: threads must be a positive integer, got {threads!r}")
    hint = raw.get("openvino_precision_hint")
    if hint is not None and hint not in OPENVINO_PRECISIONS:
        raise ProfileError(f"{path}: openvino_precision_hint {hint!r}: choose from {list(OPENVINO_PRECISIONS)}")
    if not isinstance(raw.get("require_signature", False), bool):
        raise ProfileError(f"{path}: require_signature must be true or false")


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
