"""A model artefact's latency and peak memory against its device profile's budgets, measured on this machine.

The engine runs in a fresh Python process (`python -m jepa_edge.devices.budget`) so its peak resident memory
is the runtime's alone (Python + the back end + the model), not whatever the calling process already holds;
latency is the median and 90th percentile of `runs` timed batch-1 calls after one warm-up, with the
profile's threads and precision hint. `build` writes the result into the manifest (`$.budget`); `bench`
measures again and compares. A figure measured on a build server says how the bundle fares THERE: the
`machine` field names the CPU, and the device's own run of `jepa-edge bench` is the one that counts.
"""

from __future__ import annotations

import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .isa import detect_isa
from .profiles import DeviceProfile, ProfileError

BUDGET_RUNS = 30
# which artefact a target's device runs (the budget is the device's promise for that one)
TARGET_ARTEFACT = {"cart-cpu": "openvino-int8-xml", "jetson": "tensorrt-engine"}


def machine() -> dict[str, Any]:
    """The machine a figure was measured on: CPU model, cores, INT8 path, architecture."""
    isa = detect_isa()
    return {"cpu": isa.model_name, "cores": isa.cores, "int8_path": isa.int8_path, "arch": isa.arch,
            "python": platform.python_version()}


def _rss_mb() -> float:
    """Current resident memory of this process (Linux /proc; ru_maxrss elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * resource.getpagesize() / 2**20
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _peak_rss_mb() -> float:
    """Peak resident memory of this process since it started. Linux: VmHWM of /proc/self/status, which starts
    afresh at exec; ru_maxrss would carry over the (much larger) peak of the process that spawned this one."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    scale = 2**20 if sys.platform == "darwin" else 2**10  # macOS: bytes; other BSD-likes: KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def _child(model: str, inputs: str, settings: str) -> None:
    """The measuring process: load, warm up, time `runs` calls, report JSON on stdout."""
    from jepa_edge.runtimes import open_engine

    opts = json.loads(settings)
    x = np.load(inputs, allow_pickle=False)
    baseline = _rss_mb()
    engine = open_engine(model, device_profile=opts["profile"])
    engine(x)
    times = []
    for _ in range(int(opts["runs"])):
        t0 = time.perf_counter()
        engine(x)
        times.append(time.perf_counter() - t0)
    ms = np.asarray(times) * 1e3
    peak = _peak_rss_mb()
    info = engine.info()
    print(json.dumps({"p50_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90)), "peak_rss_mb": peak,
                      "baseline_rss_mb": baseline, "backend": info.get("backend"), "threads": info.get("threads"),
                      "precision": info.get("inference_precision") or info.get("precision")}))


def measure(model: str | Path, inputs: np.ndarray, profile: DeviceProfile, runs: int = BUDGET_RUNS,
            timeout_s: float = 600.0) -> dict[str, Any]:
    """Latency (batch 1) and peak memory of `model` run in a fresh process with `profile`'s settings."""
    x = np.ascontiguousarray(np.asarray(inputs, dtype=np.float32)[:1])
    with tempfile.TemporaryDirectory(prefix="jepa-budget-") as tmp:
        npy = Path(tmp) / "inputs.npy"
        np.save(npy, x)
        settings = json.dumps({"profile": profile.to_dict(), "runs": int(runs)})
        proc = subprocess.run([sys.executable, "-m", "jepa_edge.devices.budget", str(model), str(npy), settings],
                              capture_output=True, text=True, timeout=timeout_s, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-8:])
        raise ProfileError(f"{model}: budget measurement failed (exit {proc.returncode}): {tail}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "runs": int(runs), "batch": 1}


def budget_result(measured: dict[str, Any] | None, profile: DeviceProfile, role: str,
                  reason: str | None = None) -> dict[str, Any]:
    """The manifest's `$.budget`: measured, budget and verdict for latency and memory, and the machine.
    `measured=None` (with `reason`): not measurable here (e.g. a TensorRT engine on a machine without one)."""
    out: dict[str, Any] = {"profile": profile.name, "artefact": role, "machine": machine()}
    if measured is None:
        return {**out, "measured": False, "reason": reason or "not measured", "passed": None,
                "latency_ms": {"budget": profile.latency_budget_ms}, "memory_mb": {"budget": profile.memory_budget_mb}}

    def verdict(value: float, budget: float | None) -> bool | None:
        return None if budget is None else bool(value <= budget)

    latency = {"p50": round(measured["p50_ms"], 3), "p90": round(measured["p90_ms"], 3),
               "budget": profile.latency_budget_ms, "passed": verdict(measured["p50_ms"], profile.latency_budget_ms)}
    memory = {"peak_rss": round(measured["peak_rss_mb"], 1), "baseline_rss": round(measured["baseline_rss_mb"], 1),
              "budget": profile.memory_budget_mb, "passed": verdict(measured["peak_rss_mb"], profile.memory_budget_mb)}
    checks = [v for v in (latency["passed"], memory["passed"]) if v is not None]
    return {**out, "measured": True, "backend": measured.get("backend"), "threads": measured.get("threads"),
            "precision": measured.get("precision"), "batch": measured["batch"], "runs": measured["runs"],
            "latency_ms": latency, "memory_mb": memory, "passed": all(checks) if checks else None}


def describe(result: dict[str, Any]) -> str:
    """One line: 'latency p50 3.1 ms <= 50 ms ok; peak memory 240 MB <= 512 MB ok (CPU ...)'."""
    if not result.get("measured"):
        return f"budget not measured: {result.get('reason')}"
    lat, mem = result["latency_ms"], result["memory_mb"]

    def part(label: str, value: float, unit: str, budget: float | None, passed: bool | None) -> str:
        if budget is None:
            return f"{label} {value:g} {unit} (no budget)"
        return f"{label} {value:g} {unit} {'<=' if passed else '>'} {budget:g} {unit} {'ok' if passed else 'OVER'}"

    return (part("latency p50", lat["p50"], "ms", lat["budget"], lat["passed"]) + "; "
            + part("peak memory", mem["peak_rss"], "MB", mem["budget"], mem["passed"])
            + f" ({result['artefact']}, {result.get('threads')} thread(s), on {result['machine']['cpu']})")


if __name__ == "__main__":  # the measuring child process
    _child(*sys.argv[1:4])
