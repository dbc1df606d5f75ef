"""OpenVINO back end (CPU). Pins INFERENCE_PRECISION_HINT=f32 by default: on CPUs with AVX512-BF16 or AMX,
OpenVINO otherwise runs an "FP32" model in bf16, which breaks parity and hides the real INT8 speed-up.
`info()` reports both the precision in use and what the device would pick by default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov

from .base import OPENVINO_PRECISIONS as PRECISIONS
from .base import OUTPUT_NAMES, EngineError, as_input, profile_setting
from .signal_stack import stable_signal_stack


def ir_precision(model: ov.Model) -> str:
    """'int8' when NNCF inserted FakeQuantize (or weights are stored as int8), else 'fp32'."""
    for op in model.get_ops():
        kind = op.get_type_name()
        if kind == "FakeQuantize":
            return "int8"
        if kind == "Constant" and op.get_element_type() in (ov.Type.i8, ov.Type.u8):
            return "int8"
    return "fp32"


class OpenVinoEngine:
    """A compiled OpenVINO model with pinned precision and thread count."""

    name = "openvino"

    def __init__(self, compiled: ov.CompiledModel, path: Path, model_precision: str, default_hint: str,
                 requested: str, threads: int | None, device: str) -> None:
        self.compiled = compiled
        self.request = compiled.create_infer_request()
        self.path = path
        self.model_precision = model_precision
        self.default_hint = default_hint
        self.requested = requested
        self.threads = threads
        self.device = device
        inp = compiled.inputs[0]
        pshape = inp.get_partial_shape()
        self.input_shape = tuple(d.get_length() if d.is_static else None for d in pshape)
        self.output_names = [next(iter(o.get_names()), f"output{i}") for i, o in enumerate(compiled.outputs)]

    @classmethod
    def load(cls, path: str | Path, device_profile: Any = None, precision: str | None = None,
             threads: int | None = None, device: str = "CPU", **options: Any) -> OpenVinoEngine:
        """Compile `path`; `precision` / `threads` default to the profile's `openvino_precision_hint` / `threads`,
        then to f32 / the plugin's choice."""
        path = Path(path)
        precision = precision or profile_setting(device_profile, "openvino_precision_hint") or "f32"
        threads = threads or profile_setting(device_profile, "threads")
        if precision not in PRECISIONS:
            raise EngineError(f"{path}: precision {precision!r} unknown; choose from {PRECISIONS}")
        with stable_signal_stack():
            core = ov.Core()
            try:
                model = core.read_model(str(path))
            except Exception as exc:
                raise EngineError(f"{path}: OpenVINO cannot read it ({exc})") from exc
            default_hint = core.get_property(device, "INFERENCE_PRECISION_HINT").to_string()
            config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
            if precision != "default":
                config["INFERENCE_PRECISION_HINT"] = precision
            if threads:
                config["INFERENCE_NUM_THREADS"] = int(threads)
            compiled = core.compile_model(model, device, config)
            return cls(compiled, path, ir_precision(model), default_hint, precision, threads, device)

    def outputs(self, x: np.ndarray) -> dict[str, np.ndarray]:
        arr = as_input(x, self.input_shape, self.path)
        result = self.request.infer({0: arr})
        named = {name: np.array(result[out], dtype=np.float32)
                 for name, out in zip(self.output_names, self.compiled.outputs, strict=True)}
        if set(OUTPUT_NAMES) <= set(named):
            return {k: named[k] for k in OUTPUT_NAMES}
        return named

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return next(iter(self.outputs(x).values()))

    def info(self) -> dict[str, Any]:
        used = self.compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        return {"backend": "openvino", "version": ov.get_version(), "device": self.device,
                "precision": f"{self.model_precision} model, float parts in {used}",
                "inference_precision": used, "requested_precision": self.requested,
                "model_precision": self.model_precision,
                "device_default_precision": self.default_hint,
                "threads": int(self.compiled.get_property("INFERENCE_NUM_THREADS")), "file": str(self.path)}
