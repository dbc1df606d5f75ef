"""The firmware reference runner: C sources (devices/firmware/src, CMakeLists.txt) and the one Python entry point
that builds them against a bundle.

`build_firmware(bundle, out)` verifies the bundle (every file's SHA-256, optionally its signature), then configures
and compiles the runner with CMake against that bundle's generated header:
  - cart-cpu bundles: `jepa_edge_runner`, C, linked to the OpenVINO C API of the `openvino` wheel installed in this
    Python environment (the wheel ships include/openvino/c, libopenvino_c and OpenVINOConfig.cmake);
  - jetson bundles: `jepa_edge_runner_trt`, the C++ TensorRT twin, wherever TensorRT's headers, libnvinfer and the
    CUDA toolkit are installed (a Jetson with JetPack, a GPU server); elsewhere the build says so and stops.
With `beats=BEAT_BUNDLE` the beat bundle's header is compiled in beside the window classifier's, and the runner
streams both on the same frames (`stream WINDOW --beats BEAT`), as `jepa-edge stream WINDOW --beats BEAT` does.
Nothing of Python runs when the runner runs: it reads the bundle's files only. See docs/firmware.md.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jepa_edge.data.errors import DataError

FIRMWARE_DIR = Path(__file__).resolve().parent
RUNNER = "jepa_edge_runner"
TRT_RUNNER = "jepa_edge_runner_trt"
TENSORRT_HEADER = "NvInferRuntime.h"
# where JetPack and NVIDIA's Debian/RPM packages put TensorRT's headers (TENSORRT_ROOT/include first)
TENSORRT_INCLUDE_DIRS = ("/usr/include/aarch64-linux-gnu", "/usr/include/x86_64-linux-gnu", "/usr/include",
                         "/usr/local/TensorRT/include", "/usr/local/tensorrt/include")

# The runner's exit codes (devices/firmware/src/jefw.h, docs/firmware.md).
EXIT_CODES: dict[int, str] = {
    0: "every check passed (golden), or the stream ran and its sample accounting adds up (stream)",
    1: "golden inputs or outputs outside the manifest's tolerances; stream accounting failed",
    2: "bad command line",
    3: "bundle problem: manifest unreadable, a file missing, changed or unlisted, header from another bundle, "
       "engine file absent",
    4: "a bundle this runner does not run (echo, regression or one-of-N outputs)",
    5: "the runtime could not load, compile or run the model",
    6: "stdin stream unusable: stray bytes after the last whole frame, or no complete window",
    7: "out of memory or an unreadable file",
}


class FirmwareError(DataError):
    """The runner cannot be built here or for this bundle (the message says why and what to do)."""


@dataclass(frozen=True)
class FirmwareBuild:
    """A compiled runner: the build folder and the executables it holds (None when not built)."""

    out: Path
    bundle: Path
    runner: Path | None
    trt_runner: Path | None
    header_sha256: str
    beat_bundle: Path | None = None  # compiled in beside `bundle` (`stream BUNDLE --beats BEAT_BUNDLE`)


def runner_support(manifest: Mapping[str, Any]) -> str | None:
    """Why the firmware runner cannot run a bundle with this manifest, or None when it can."""
    model = manifest.get("model") or {}
    modality = model.get("modality", "ecg")
    kind = (model.get("output") or {}).get("kind", "multilabel")
    if modality == "ecg-beat":  # the arrhythmia monitor (jefw_monitor.c)
        return None if kind == "multiclass" else f"a beat model with a {kind} output: beat models are one-of-N"
    if modality != "ecg":
        return (f"an {modality} model: the firmware runner runs ECG window classifiers and beat monitors only (run "
                "echo clips with `jepa-edge echo infer`)")
    if kind != "multilabel":
        return f"a {kind} output: the firmware runner decodes multi-label ECG heads only (sigmoid against thresholds)"
    return None


def openvino_cmake_dir() -> Path:
    """The CMake config of the OpenVINO wheel in this environment (its C API is what the runner links)."""
    try:
        import openvino
    except ImportError as exc:  # pragma: no cover - openvino is a dependency
        raise FirmwareError(f"the openvino package is not importable here ({exc}); `pip install openvino`") from None
    cmake_dir = Path(openvino.__file__).resolve().parent / "cmake"
    if not (cmake_dir / "OpenVINOConfig.cmake").is_file():
        raise FirmwareError(f"{cmake_dir}: no OpenVINOConfig.cmake in the installed openvino wheel; install an "
                            "OpenVINO release that ships its C API (2023.0 or newer) or the OpenVINO archive")
    return cmake_dir


def tensorrt_include_dir() -> Path | None:
    """Where TensorRT's headers are on this machine, or None (then the C++ TensorRT runner cannot be compiled)."""
    roots = [Path(os.environ["TENSORRT_ROOT"]) / "include"] if os.environ.get("TENSORRT_ROOT") else []
    for folder in [*roots, *map(Path, TENSORRT_INCLUDE_DIRS)]:
        if (folder / TENSORRT_HEADER).is_file():
            return folder
    return None


def _run(cmd: list[str], what: str) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise FirmwareError(f"{cmd[0]}: not found; install CMake (>= 3.16) and a C compiler") from None
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        tail = "\n".join(log.strip().splitlines()[-25:])
        raise FirmwareError(f"{what} failed (exit {proc.returncode}):\n{tail}")
    return log


def _modality(manifest: Mapping[str, Any]) -> str:
    return (manifest.get("model") or {}).get("modality", "ecg")


def build_firmware(bundle: str | Path, out: str | Path, *, beats: str | Path | None = None,
                   sanitize: str | None = None, tensorrt: str = "auto", public_key: Any = None,
                   require_signature: bool = False, werror: bool = False, jobs: int | None = None,
                   cmake: str = "cmake") -> FirmwareBuild:
    """Configure and compile the firmware runner against `bundle`'s header into the build folder `out`.

    cart-cpu bundles get `jepa_edge_runner` (OpenVINO C API); jetson bundles `jepa_edge_runner_trt` (TensorRT),
    which needs TensorRT's headers (`tensorrt="on"` forces it for any bundle, `"off"` never builds it).
    `beats`: a beat bundle for the same target compiled in beside the window classifier `bundle`.
    `sanitize="address"` compiles with AddressSanitizer. Every bundle is verified first (hashes, and the signature
    with `public_key`): nothing is compiled against a header that does not verify."""
    from jepa_edge.bundle import open_bundle

    if tensorrt not in ("auto", "on", "off"):
        raise FirmwareError(f"tensorrt={tensorrt!r}: choose auto, on or off")
    bundle_path = Path(bundle).resolve()
    paths = [bundle_path] + ([Path(beats).resolve()] if beats is not None else [])
    manifests = []
    for path in paths:
        manifest = open_bundle(path, public_key=public_key, require_signature=require_signature).manifest
        why = runner_support(manifest)
        if why:
            raise FirmwareError(f"{path}: {why}")
        manifests.append(manifest)
    out = Path(out).resolve()
    if any(out == path or path in out.parents for path in paths):
        raise FirmwareError(f"{out}: the build folder must be outside the bundle (files added to a bundle fail "
                            "its verification)")
    target = manifests[0]["target"]["kind"]
    if beats is not None:
        if _modality(manifests[0]) == "ecg-beat":
            raise FirmwareError(f"{bundle_path}: a beat model; with beats=, the first bundle is the window classifier")
        if _modality(manifests[1]) != "ecg-beat":
            raise FirmwareError(f"{paths[1]}: a {_modality(manifests[1])} window classifier, not a beat model "
                                "(jepa-edge beats probe / distill / build make one)")
        if manifests[1]["target"]["kind"] != target:
            raise FirmwareError(f"{paths[1]}: built for {manifests[1]['target']['kind']}, the window classifier for "
                                f"{target}; one runner runs one runtime: build both bundles for the same target")
    with_trt = tensorrt == "on" or (tensorrt == "auto" and target == "jetson")
    with_openvino = target == "cart-cpu"
    if with_trt and tensorrt_include_dir() is None:
        raise FirmwareError(f"{bundle_path}: a {target} bundle runs on the C++ TensorRT runner, which compiles only "
                            f"where TensorRT is installed ({TENSORRT_HEADER} not found in TENSORRT_ROOT/include or "
                            f"{', '.join(TENSORRT_INCLUDE_DIRS)}); build it on the Jetson")
    if shutil.which(cmake) is None and not Path(cmake).is_file():
        raise FirmwareError(f"{cmake}: not found; install CMake (>= 3.16) and a C compiler")
    configure = [cmake, "-S", str(FIRMWARE_DIR), "-B", str(out), f"-DJEPA_EDGE_BUNDLE={bundle_path}",
                 f"-DJEPA_EDGE_WITH_OPENVINO={'ON' if with_openvino else 'OFF'}",
                 f"-DJEPA_EDGE_WITH_TENSORRT={'ON' if with_trt else 'OFF'}",
                 f"-DJEPA_EDGE_SANITIZE={sanitize or ''}", f"-DJEPA_EDGE_WERROR={'ON' if werror else 'OFF'}",
                 f"-DJEPA_EDGE_BEAT_BUNDLE={paths[1] if beats is not None else ''}", "-DCMAKE_BUILD_TYPE=Release"]
    if with_openvino:
        configure.append(f"-DOpenVINO_DIR={openvino_cmake_dir()}")
    _run(configure, f"cmake configure of {FIRMWARE_DIR}")
    _run([cmake, "--build", str(out), "--parallel", str(jobs or os.cpu_count() or 1)], f"cmake build in {out}")
    header = next(e["sha256"] for e in manifests[0]["files"] if e["path"] == "include/jepa_edge_model.h")
    runner, trt_runner = out / RUNNER, out / TRT_RUNNER
    built = FirmwareBuild(out=out, bundle=bundle_path, runner=runner if with_openvino else None,
                          trt_runner=trt_runner if with_trt else None, header_sha256=header,
                          beat_bundle=paths[1] if beats is not None else None)
    for exe in (built.runner, built.trt_runner):
        if exe is not None and not exe.is_file():
            raise FirmwareError(f"{exe}: the build finished without producing it")
    return built


__all__ = ["EXIT_CODES", "FIRMWARE_DIR", "RUNNER", "TRT_RUNNER", "FirmwareBuild", "FirmwareError", "build_firmware",
           "openvino_cmake_dir", "runner_support", "tensorrt_include_dir"]
