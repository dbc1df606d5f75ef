"""ONNX Runtime back end: FP32 ONNX and Q/DQ INT8 ONNX (the same file TensorRT builds its engine from)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from .base import OUTPUT_NAMES, EngineError, as_input, profile_setting


def onnx_precision(model: onnx.ModelProto) -> str:
    """'int8 (Q/DQ)' when the graph carries QuantizeLinear/DequantizeLinear pairs, else 'fp32'."""
    ops = {n.op_type for n in model.graph.node}
    return "int8 (Q/DQ)" if {"QuantizeLinear", "DequantizeLinear"} & ops else "fp32"


class OrtEngine:
    """An onnxruntime InferenceSession with pinned thread counts (latency numbers depend on them)."""

    name = "onnxruntime"

    def __init__(self, session: ort.InferenceSession, path: Path, precision: str, threads: int | None) -> None:
        self.session = session
        self.path = path
        self.precision = precision
        self.threads = threads
        inp = session.get_inputs()[0]
        self.input_name = inp.name
        self.input_shape = tuple(d if isinstance(d, int) else None for d in inp.shape)
        self.output_names = [o.name for o in session.get_outputs()]

    @classmethod
    def load(cls, path: str | Path, device_profile: Any = None, threads: int | None = None,
             providers: list[str] | None = None, **options: Any) -> OrtEngine:
        """A session on `path`; `threads` defaults to the profile's, then to onnxruntime's choice."""
        path = Path(path)
        threads = threads or profile_setting(device_profile, "threads")
        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as exc:
            raise EngineError(f"{path}: not a readable ONNX model ({exc})") from exc
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            so.intra_op_num_threads = int(threads)
            so.inter_op_num_threads = 1
        so.log_severity_level = 3
        try:
            session = ort.InferenceSession(str(path), so, providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:
            raise EngineError(f"{path}: onnxruntime cannot load it ({exc})") from exc
        return cls(session, path, onnx_precision(model), threads)

    def outputs(self, x: np.ndarray) -> dict[str, np.ndarray]:
        arr = as_input(x, self.input_shape, self.path)
        values = self.session.run(None, {self.input_name: arr})
        named = dict(zip(self.output_names, values, strict=True))
        if set(OUTPUT_NAMES) <= set(named):
            return {k: np.asarray(named[k], dtype=np.float32) for k in OUTPUT_NAMES}
        return {k: np.asarray(v, dtype=np.float32) for k, v in named.items()}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return next(iter(self.outputs(x).values()))

    def info(self) -> dict[str, Any]:
        so = self.session.get_session_options()
        return {"backend": "onnxruntime", "version": ort.__version__, "precision": self.precision,
                "device": ",".join(self.session.get_providers()), "threads": so.intra_op_num_threads or None,
                "file": str(self.path)}
