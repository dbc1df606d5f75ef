"""One Engine protocol over torch, onnxruntime, OpenVINO and TensorRT (`open_engine(path)` picks by suffix)."""

from .base import (
    INPUT_NAME,
    OUTPUT_NAMES,
    BackendUnavailable,
    Engine,
    EngineError,
    available_backends,
    backend_for_path,
    open_engine,
)

__all__ = ["INPUT_NAME", "OUTPUT_NAMES", "BackendUnavailable", "Engine", "EngineError", "available_backends",
           "backend_for_path", "open_engine"]
