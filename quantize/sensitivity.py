"""Per-layer sensitivity: the output error when each layer ALONE runs in INT8, and the fallback list it implies.

One full Q/DQ model is calibrated once; each probe re-wires every other quantized layer back to its float
inputs (graph surgery, no recalibration), so a sweep over all layers costs one session per layer. The layer
names are ONNX node names, which OpenVINO keeps as op names, so one fallback list feeds both back ends
(ORT `nodes_to_exclude`, NNCF `IgnoredScope`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from jepa_edge.config import ConfigError

from .qdq import quantized_nodes


@dataclass
class LayerSensitivity:
    name: str
    error: float  # 1 - cosine(fp32 outputs, outputs with only this layer in int8), worst over outputs


@dataclass
class SensitivityReport:
    layers: list[LayerSensitivity]  # most sensitive first
    full_int8_error: float
    fallback: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"full_int8_error": self.full_int8_error, "fallback": self.fallback,
                "layers": [{"name": s.name, "error": s.error} for s in self.layers]}


def _run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC  # one probe per layer: build fast
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})


def _error(ref: list[np.ndarray], out: list[np.ndarray]) -> float:
    worst = 0.0
    for a, b in zip(ref, out, strict=True):
        a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
        cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
        worst = max(worst, float(1.0 - cos.mean()))
    return worst


def only_layer_quantized(fp32: onnx.ModelProto, qdq: onnx.ModelProto, keep: set[str]) -> onnx.ModelProto:
    """A copy of the Q/DQ model in which only the nodes in `keep` read quantized inputs."""
    float_nodes = {n.name: n for n in fp32.graph.node}
    model = copy.deepcopy(qdq)
    have = {i.name for i in model.graph.initializer}
    needed: set[str] = set()
    for node in model.graph.node:
        if node.name in float_nodes and node.name not in keep and node.op_type not in ("QuantizeLinear",
                                                                                        "DequantizeLinear"):
            src = float_nodes[node.name]
            del node.input[:]
            node.input.extend(src.input)
            needed.update(src.input)
    model.graph.initializer.extend(i for i in fp32.graph.initializer if i.name in needed and i.name not in have)
    return model


def layer_sensitivity(fp32_onnx: str | Path, qdq_onnx: str | Path, windows: np.ndarray,
                      threshold: float = 1e-3, max_fallback_fraction: float = 0.25) -> SensitivityReport:
    """Rank the quantized layers of `qdq_onnx` by the error each causes alone on `windows`; layers whose error
    exceeds `threshold` (at most `max_fallback_fraction` of them, worst first) form the fallback list."""
    fp32, qdq = onnx.load(str(fp32_onnx)), onnx.load(str(qdq_onnx))
    x = np.ascontiguousarray(windows, dtype=np.float32)
    ref = _run(fp32, x)
    layers = [n for n in quantized_nodes(qdq) if n in {m.name for m in fp32.graph.node}]
    if not layers:
        raise ConfigError(f"{qdq_onnx}: no quantized layers found")
    scores = [LayerSensitivity(name, _error(ref, _run(only_layer_quantized(fp32, qdq, {name}), x)))
              for name in layers]
    scores.sort(key=lambda s: -s.error)
    cap = max(1, int(max_fallback_fraction * len(scores)))
    fallback = [s.name for s in scores if s.error > threshold][:cap]
    return SensitivityReport(scores, _error(ref, _run(qdq, x)), fallback)
