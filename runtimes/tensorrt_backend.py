"""TensorRT 10 back end: build an engine from Q/DQ ONNX on the device itself, then run it.

Written against the TensorRT 10 Python API (`tensorrt`): a STRONGLY_TYPED network (precision comes from the
Q/DQ ONNX itself, no implicit INT8 calibrator, which TensorRT deprecated and removes in 11), an optimisation
profile over the batch axis, and a timing cache kept beside the engine so rebuilds on the same device are fast.
Engines are not portable across GPUs or TensorRT versions: they are built on the Jetson by
`jepa-edge engine build BUNDLE`. Where `tensorrt` does not import (these CPU machines: PyPI's builder wheels
download from a host they cannot reach) every entry point raises BackendUnavailable with that reason.
Device buffers are torch CUDA tensors, so no extra CUDA binding (pycuda, cuda-python) is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_write_bytes
from .base import INPUT_NAME, OUTPUT_NAMES, BackendUnavailable, EngineError, as_input


def _import_tensorrt():
    try:
        import tensorrt as trt
    except Exception as exc:  # ImportError, or a wheel whose native libraries are missing
        raise BackendUnavailable(
            f"tensorrt: the `tensorrt` Python package does not import on this machine ({type(exc).__name__}: "
            f"{exc}); build and run engines on the Jetson / GPU host with JetPack's TensorRT") from exc
    if int(trt.__version__.split(".")[0]) < 10:
        raise BackendUnavailable(f"tensorrt: version {trt.__version__} found, this back end needs TensorRT >= 10")
    return trt


def _import_torch_cuda():
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailable("tensorrt: no CUDA device visible to torch, which holds the engine's buffers")
    return torch


@dataclass(frozen=True)
class EngineBuildConfig:
    """Batch range of the optimisation profile, workspace and cache; defaults suit streaming (batch 1)."""

    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 32
    workspace_mb: int = 1024
    timing_cache: str | None = None  # path; read if present, written after the build
    use_dla_core: int | None = None  # Orin NX / AGX Orin have DLA cores; unsupported layers fall back to GPU
    builder_optimization_level: int = 3


def build_engine(onnx_path: str | Path, engine_path: str | Path, config: EngineBuildConfig | None = None) -> Path:
    """Parse Q/DQ ONNX into a strongly typed network and serialise an engine for THIS GPU and TensorRT."""
    trt = _import_tensorrt()
    cfg = config or EngineBuildConfig()
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineError(f"{onnx_path}: TensorRT {trt.__version__} cannot parse it: {errors}")
    bconf = builder.create_builder_config()
    bconf.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, cfg.workspace_mb << 20)
    bconf.builder_optimization_level = cfg.builder_optimization_level
    cache_path = Path(cfg.timing_cache) if cfg.timing_cache else None
    cache = bconf.create_timing_cache(cache_path.read_bytes() if cache_path and cache_path.is_file() else b"")
    bconf.set_timing_cache(cache, ignore_mismatch=False)
    if cfg.use_dla_core is not None:
        bconf.default_device_type = trt.DeviceType.DLA
        bconf.DLA_core = cfg.use_dla_core
        bconf.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        rest = tuple(tensor.shape)[1:]
        if any(d < 0 for d in rest):
            raise EngineError(f"{onnx_path}: input {tensor.name} has dynamic non-batch dims {tuple(tensor.shape)}")
        profile.set_shape(tensor.name, (cfg.min_batch, *rest), (cfg.opt_batch, *rest), (cfg.max_batch, *rest))
    bconf.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, bconf)
    if serialized is None:
        raise EngineError(f"{onnx_path}: TensorRT engine build failed (see the TensorRT log above)")
    atomic_write_bytes(engine_path, bytes(serialized))
    if cache_path is not None:
        atomic_write_bytes(cache_path, bytes(bconf.get_timing_cache().serialize()))
    return engine_path


class TensorRtEngine:
    """A deserialised engine + execution context; inputs/outputs bound to torch CUDA tensors."""

    name = "tensorrt"

    def __init__(self, engine: Any, path: Path, trt: Any, torch: Any) -> None:
        self.trt, self.torch = trt, torch
        self.engine = engine
        self.context = engine.create_execution_context()
        self.path = path
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self.inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.output_names = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.input_name = INPUT_NAME if INPUT_NAME in self.inputs else self.inputs[0]
        shape = tuple(engine.get_tensor_shape(self.input_name))
        self.input_shape = tuple(None if d < 0 else d for d in shape)
        self.stream = torch.cuda.Stream()

    @classmethod
    def load(cls, path: str | Path, device_profile: Any = None, build: EngineBuildConfig | None = None,
             **options: Any) -> TensorRtEngine:
        """Load a serialised engine (.engine/.plan); given an .onnx, build `<name>.engine` beside it first.
        `device_profile` sets nothing here: a GPU engine has no CPU threads or OpenVINO precision hint (a Jetson
        profile's TensorRT version is checked when the engine is built, `devices.build.build_engine_into_bundle`)."""
        trt = _import_tensorrt()
        torch = _import_torch_cuda()
        path = Path(path)
        if path.suffix == ".onnx":
            path = build_engine(path, path.with_suffix(".engine"), build)
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise EngineError(f"{path}: TensorRT {trt.__version__} cannot deserialise it (built for another GPU "
                              "or TensorRT version? rebuild it on this device with `jepa-edge engine build`)")
        return cls(engine, path, trt, torch)

    def outputs(self, x: np.ndarray) -> dict[str, np.ndarray]:
        torch, trt = self.torch, self.trt
        arr = as_input(x, self.input_shape, self.path)
        inp = torch.from_numpy(arr).cuda()
        self.context.set_input_shape(self.input_name, tuple(arr.shape))
        self.context.set_tensor_address(self.input_name, inp.data_ptr())
        outs = {}
        for name in self.output_names:
            shape = tuple(self.context.get_tensor_shape(name))
            dtype = torch.from_numpy(np.zeros(0, dtype=trt.nptype(self.engine.get_tensor_dtype(name)))).dtype
            outs[name] = torch.empty(shape, dtype=dtype, device="cuda")
            self.context.set_tensor_address(name, outs[name].data_ptr())
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise EngineError(f"{self.path}: TensorRT execution failed")
        self.stream.synchronize()
        named = {k: v.float().cpu().numpy() for k, v in outs.items()}
        if set(OUTPUT_NAMES) <= set(named):
            return {k: named[k] for k in OUTPUT_NAMES}
        return named

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return next(iter(self.outputs(x).values()))

    def info(self) -> dict[str, Any]:
        return {"backend": "tensorrt", "version": self.trt.__version__, "precision": "as typed by the Q/DQ ONNX "
                "(strongly typed network: INT8 where Q/DQ, FP32/FP16 elsewhere)",
                "device": self.torch.cuda.get_device_name(), "threads": None, "file": str(self.path)}
