"""x86 ISA features that decide which INT8 kernels OpenVINO (and onnxruntime) can use on a cart CPU.

Read from /proc/cpuinfo at build time (recorded in the manifest) and again at run time, when a cart bundle is
opened (`check_profile_isa`, called by `open_bundle`), so a bundle built on an AMX server and run on an
AVX2-only cart says so instead of silently running slower than promised, and one run on a CPU without the
profile's required flags is refused with the flags named.
"""

from __future__ import annotations

import os
import platform
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .profiles import DeviceProfile, ProfileError

FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")

# int8 multiply-accumulates per cycle per core for the best instruction (one 512-bit VPDPBUSD = 64 MACs;
# AVX-VNNI 256-bit = 32; AVX2 VPMADDUBSW+VPMADDWD ~ 32 at half rate = 16; AMX TDPBUSD 16x64x16 tile ~ 1024/16 cycles).
INT8_MACS_PER_CYCLE = {"amx_int8": 1024, "avx512_vnni": 64, "avx_vnni": 32, "avx2": 16}

# INT8 dot products that accumulate u8 x s8 in 32 bits. Without one (AVX2's VPMADDUBSW) each pair of products is
# summed in int16 with saturation, so full 8-bit weights can clip; NNCF's overflow fix (7-bit weights) avoids it.
INT8_DOT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def has_int8_dot(flags: Iterable[str]) -> bool:
    """Whether any of `flags` (the flags a CPU has, or a profile requires) gives a non-saturating INT8 dot."""
    return any(f in INT8_DOT_FLAGS for f in flags)


@dataclass(frozen=True)
class IsaInfo:
    arch: str
    model_name: str
    cores: int
    mhz: float | None
    flags: dict[str, bool] = field(default_factory=dict)

    @property
    def int8_path(self) -> str:
        """The fastest INT8 matrix path this CPU offers, as OpenVINO's CPU plugin would pick it."""
        for flag, label in (("amx_int8", "AMX-INT8"), ("avx512_vnni", "AVX512-VNNI"), ("avx_vnni", "AVX-VNNI")):
            if self.flags.get(flag):
                return label
        if self.flags.get("avx2"):
            return "AVX2 (no VNNI: INT8 gains over FP32 are small)"
        return "none (no AVX2: the OpenVINO CPU plugin will not run)"

    @property
    def default_float_precision(self) -> str:
        """What OpenVINO runs an 'FP32' model in without a precision hint."""
        return "bf16" if self.flags.get("avx512_bf16") or self.flags.get("amx_bf16") else "f32"

    def int8_peak_gmacs(self, cores: int | None = None, mhz: float | None = None, fma_units: int = 1) -> float | None:
        """Peak INT8 GMAC/s over `cores` at `mhz` (None if the clock is unknown). `fma_units` = 512-bit FMA ports
        (1 on most client / cloud parts, 2 on Xeon Gold/Platinum)."""
        mhz = mhz or self.mhz
        if not mhz:
            return None
        best = next((m for f, m in INT8_MACS_PER_CYCLE.items() if self.flags.get(f)), 0)
        if best in (64, 32):
            best *= fma_units
        return best * (cores or self.cores) * mhz / 1e3

    def to_dict(self) -> dict:
        return {**asdict(self), "int8_path": self.int8_path, "default_float_precision": self.default_float_precision}


def parse_cpuinfo(text: str) -> IsaInfo:
    """ISA facts from the text of /proc/cpuinfo (first processor block)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    flags = set(fields.get("flags", "").split())
    cores = text.count("\nprocessor") + (1 if text.startswith("processor") else 0) or os.cpu_count() or 1
    try:
        mhz: float | None = float(fields["cpu MHz"])
    except (KeyError, ValueError):
        mhz = None
    return IsaInfo(arch=platform.machine(), model_name=fields.get("model name", "unknown"), cores=cores, mhz=mhz,
                   flags={f: f in flags for f in FLAGS})


def detect_isa(cpuinfo: str | Path = "/proc/cpuinfo") -> IsaInfo:
    """This machine's ISA (an empty flag set where /proc/cpuinfo is absent, e.g. macOS)."""
    path = Path(cpuinfo)
    if not path.is_file():
        return IsaInfo(arch=platform.machine(), model_name=platform.processor() or "unknown",
                       cores=os.cpu_count() or 1, mhz=None, flags={f: False for f in FLAGS})
    return parse_cpuinfo(path.read_text(errors="replace"))


def check_isa(required: list[str], info: IsaInfo | None = None) -> list[str]:
    """Required flags this CPU lacks (empty: fine)."""
    info = info or detect_isa()
    return [f for f in required if not info.flags.get(f, False)]


class IsaError(ProfileError):
    """This CPU lacks an ISA flag the bundle's device profile requires (the message names the flags)."""


class IsaWarning(UserWarning):
    """This CPU has none of the profile's preferred ISA flags: the bundle runs, slower than promised."""


def _best_int8(flags: dict[str, bool] | list[str]) -> tuple[str | None, int]:
    """The fastest INT8 path among `flags` (flag, MACs/cycle/core by INT8_MACS_PER_CYCLE); (None, 0) for none."""
    have = set(flags) if isinstance(flags, list) else {f for f, on in flags.items() if on}
    return next(((f, m) for f, m in INT8_MACS_PER_CYCLE.items() if f in have), (None, 0))


def expected_slowdown(preferred: list[str] | tuple[str, ...], info: IsaInfo) -> str:
    """How much slower INT8 matrix work runs here than on the preferred paths, and where the figure comes from."""
    mine_flag, mine = _best_int8(info.flags)
    rates = sorted(INT8_MACS_PER_CYCLE[f] for f in preferred if f in INT8_MACS_PER_CYCLE)
    if not rates:
        return "expected slowdown unknown (no preferred flag has a MACs/cycle figure in devices/isa.py)"
    if mine == 0:
        return "no INT8 dot-product path at all on this CPU: expect a slowdown of many times"
    lo, hi = rates[0] / mine, rates[-1] / mine
    span = f"{lo:g}x" if lo == hi else f"{lo:g}x to {hi:g}x"
    return (f"expect INT8 matrix work {span} slower ({mine_flag}: {mine} int8 MACs/cycle/core here, the preferred "
            f"paths {rates[0]}-{rates[-1]}; computed from the INT8_MACS_PER_CYCLE table in devices/isa.py, not "
            "measured; the whole model slows less, as not all of it is INT8 matrix work)")


def check_profile_isa(profile: DeviceProfile, info: IsaInfo | None = None, where: str = "") -> list[str]:
    """Run-time ISA check of a bundle's device `profile` on this CPU (`info`: a stand-in for tests; default:
    detected). Missing `required_isa` flags raise IsaError; having none of `preferred_isa` returns (and warns
    with `IsaWarning`) one message with the expected slowdown. Empty list: the CPU is what the profile wants."""
    info = info or detect_isa()
    prefix = f"{where}: " if where else ""
    cpu = f"this CPU ({info.model_name}, INT8 path {info.int8_path})"
    missing = check_isa(list(profile.required_isa), info)
    if missing:
        raise IsaError(f"{prefix}device profile {profile.name!r} requires ISA flags {missing}, which {cpu} "
                       "lacks; the bundle cannot run here (use a bundle built for this CPU's profile)")
    if profile.preferred_isa and not any(info.flags.get(f, False) for f in profile.preferred_isa):
        message = (f"{prefix}{cpu} has none of device profile {profile.name!r}'s preferred ISA flags "
                   f"{list(profile.preferred_isa)}: {expected_slowdown(profile.preferred_isa, info)}")
        warnings.warn(message, IsaWarning, stacklevel=3)
        return [message]
    return []


def check_int8_weights(quantization: Mapping, info: IsaInfo | None = None, where: str = "") -> list[str]:
    """Run-time check of an NNCF INT8 IR's weights on this CPU: full 8-bit weights (NNCF's overflow fix off or on
    the first layer only, or a bundle that predates the field) on a CPU without a VNNI/AMX dot product warn with
    `IsaWarning`, since its INT8 kernels saturate and decisions can differ from those gated at build time."""
    details = quantization.get("details") or {}
    if quantization.get("precision") != "int8" or details.get("tool") != "nncf.quantize":
        return []
    info = info or detect_isa()
    fix = details.get("overflow_fix", "first_layer")  # NNCF's default before the manifest recorded it
    if fix == "enable" or has_int8_dot(f for f, on in info.flags.items() if on):
        return []
    prefix = f"{where}: " if where else ""
    message = (f"{prefix}the INT8 IR has 8-bit weights (NNCF overflow fix {fix!r}) and this CPU ({info.model_name}, "
               f"INT8 path {info.int8_path}) has no VNNI/AMX dot product: its INT8 kernels saturate, so decisions can "
               "differ from those gated at build time (the quick demo's INT8 student agreed with FP32 on 0.979 of "
               "windows on such a CPU, gate 0.99); rebuild the bundle for a profile that admits this CPU (7-bit "
               "weights)")
    warnings.warn(message, IsaWarning, stacklevel=3)
    return [message]
