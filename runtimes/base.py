"""The one Engine protocol every back end speaks, and how a path picks its back end.

Parity tests, golden vectors, benchmarks and the streaming runtime all call engines the same way:
`engine(x)` -> logits, `engine.outputs(x)` -> every named output, `engine.info()` -> what actually ran.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from jepa_edge.errors import JepaEdgeError

INPUT_NAME = "ecg"
OUTPUT_NAMES: tuple[str, ...] = ("logits", "embedding")
OPENVINO_PRECISIONS = ("f32", "bf16", "f16", "default")  # INFERENCE_PRECISION_HINT values ("default": the CPU's)


class BackendUnavailable(JepaEdgeError, RuntimeError):
    """A back end whose library cannot be imported or used on this machine; the message says why."""


class EngineError(JepaEdgeError):
    """A model file an engine cannot use (missing, wrong kind, wrong input); the message names the file."""


@runtime_checkable
class Engine(Protocol):
    """Numpy in, numpy out; the same call on every runtime. `device_profile` (a `DeviceProfile` or its dict)
    supplies the engine threads and OpenVINO precision hint where the caller passes none."""

    name: str

    @classmethod
    def load(cls, path: str | Path, device_profile: Any = None, **options: Any) -> Engine: ...

    def __call__(self, x: np.ndarray) -> np.ndarray: ...

    def outputs(self, x: np.ndarray) -> dict[str, np.ndarray]: ...

    def info(self) -> dict[str, Any]: ...


def profile_setting(device_profile: Any, key: str) -> Any:
    """A device profile's setting (`threads`, `openvino_precision_hint`), from a `DeviceProfile`, its dict form
    or None. Back ends use it only where the caller did not pass the option itself: an explicit option wins."""
    if device_profile is None:
        return None
    if isinstance(device_profile, Mapping):
        return device_profile.get(key)
    return getattr(device_profile, key, None)


def as_input(x: np.ndarray, expected: tuple[int | None, ...] | None, source: str | Path) -> np.ndarray:
    """Contiguous float32 (batch, ...) with a clear error when the shape cannot fit the model."""
    arr = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    if expected is not None:
        if arr.ndim == len(expected) - 1:
            arr = arr[None]
        fixed = [(i, d) for i, d in enumerate(expected) if d is not None and i > 0]
        if arr.ndim != len(expected) or any(arr.shape[i] != d for i, d in fixed):
            want = tuple("batch" if i == 0 else d for i, d in enumerate(expected))
            raise EngineError(f"{source}: input of shape {arr.shape} does not fit the model input {want}")
    if not np.isfinite(arr).all():
        raise EngineError(f"{source}: input contains NaN or Inf")
    return arr


# backend name -> (module, class name, python package it needs)
_BACKENDS: dict[str, tuple[str, str, str]] = {
    "torch": ("jepa_edge.runtimes.torch_backend", "TorchEngine", "torch"),
    "onnxruntime": ("jepa_edge.runtimes.ort_backend", "OrtEngine", "onnxruntime"),
    "openvino": ("jepa_edge.runtimes.openvino_backend", "OpenVinoEngine", "openvino"),
    "tensorrt": ("jepa_edge.runtimes.tensorrt_backend", "TensorRtEngine", "tensorrt"),
}

_SUFFIX_BACKEND = {".onnx": "onnxruntime", ".xml": "openvino", ".engine": "tensorrt", ".plan": "tensorrt"}


def backend_for_path(path: str | Path) -> str:
    """Which back end a file or folder belongs to (model folder -> torch, .onnx, .xml, .engine/.plan)."""
    path = Path(path)
    if path.is_dir():
        if (path / "meta.json").is_file():
            return "torch"
        raise EngineError(f"{path}: a folder but not a model folder (meta.json missing)")
    try:
        return _SUFFIX_BACKEND[path.suffix.lower()]
    except KeyError:
        raise EngineError(f"{path}: cannot tell the runtime from suffix {path.suffix!r}; "
                          f"expected a model folder or one of {sorted(_SUFFIX_BACKEND)}") from None


def available_backends() -> dict[str, str | None]:
    """Back end name -> None when usable here, else the reason it is not."""
    out: dict[str, str | None] = {}
    for name, (_, _, package) in _BACKENDS.items():
        try:
            importlib.import_module(package)
            out[name] = None
        except Exception as exc:  # ImportError, or a broken native library raising OSError
            out[name] = f"{name}: python package {package!r} does not import here ({type(exc).__name__}: {exc})"
    if out["tensorrt"] is None:
        try:
            import torch

            if not torch.cuda.is_available():
                out["tensorrt"] = "tensorrt: imports, but no CUDA device is visible to run an engine on"
        except ImportError:
            out["tensorrt"] = "tensorrt: imports, but torch (used for device buffers) does not"
    return out


def open_engine(path: str | Path, backend: str | None = None, device_profile: Any = None, **options: Any) -> Engine:
    """Load `path` with `backend` (default: from the path) -> a ready Engine."""
    path = Path(path)
    if not path.exists():
        raise EngineError(f"{path}: no such model file or folder")
    backend = backend or backend_for_path(path)
    if backend not in _BACKENDS:
        raise EngineError(f"{path}: unknown back end {backend!r}; choose from {sorted(_BACKENDS)}")
    module_name, class_name, _ = _BACKENDS[backend]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendUnavailable(f"{backend}: cannot import its module ({exc})") from exc
    cls = getattr(module, class_name)
    return cls.load(path, device_profile=device_profile, **options)
