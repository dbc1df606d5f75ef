"""Explicit Q/DQ INT8 ONNX for TensorRT (and onnxruntime), with a transformer-safe default recipe.

Tool choice: onnxruntime.quantization.quantize_static in QDQ format, not nvidia-modelopt. Both write the
explicit QuantizeLinear/DequantizeLinear graph TensorRT's strongly typed networks consume, but onnxruntime is
already a dependency, installs from PyPI on every machine here (modelopt pulls CUDA-specific extras), and the
result can be run and tested on this CPU with the very runtime that produced it.

Default recipe (public reports show default INT8 taking ViT-B to a few percent top-1 when residual Adds,
LayerNorm or Softmax are quantized): only the inputs of weight MatMul/Gemm nodes (the Linear layers) get
Q/DQ, weights per output channel, everything symmetric (TensorRT wants zero points of 0); LayerNormalization,
Softmax, residual Add and GELU stay float. The attention MatMuls (QK^T and softmax(.)V, both inputs
activations) stay float too unless `quantize_attention_matmuls`: softmax probabilities in [0, 1] waste half of
a symmetric int8 range.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)

from jepa_edge.config import ConfigError

from ..io import atomic_write_bytes
from ..runtimes.base import INPUT_NAME

CALIBRATION_METHODS = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                       "entropy": CalibrationMethod.Entropy}
FLOAT_OPS = ("LayerNormalization", "Softmax", "Add", "Erf", "Gelu")  # what the default recipe must keep float


@dataclass(frozen=True)
class QdqRecipe:
    """Which nodes get Q/DQ and how; `nodes_to_exclude` is where the sensitivity fallback list goes."""

    op_types: tuple[str, ...] = ("MatMul", "Gemm")
    per_channel: bool = True
    quantize_attention_matmuls: bool = False
    # activation ranges at the 99.999th percentile of |x|: on the demo student it left a third of minmax's
    # AUC change and a smaller max logit error (clipped outliers cost less than a coarser step everywhere)
    calibrate_method: str = "percentile"
    batch_size: int = 16
    nodes_to_exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.calibrate_method not in CALIBRATION_METHODS:
            raise ConfigError(f"calibrate_method {self.calibrate_method!r}: choose from {sorted(CALIBRATION_METHODS)}")

    def to_dict(self) -> dict:
        return {"format": "onnx-qdq", "tool": "onnxruntime.quantization.quantize_static",
                "op_types": list(self.op_types), "per_channel": self.per_channel, "symmetric": True,
                "quantize_attention_matmuls": self.quantize_attention_matmuls,
                "calibrate_method": self.calibrate_method, "nodes_to_exclude": list(self.nodes_to_exclude)}


@dataclass
class QdqResult:
    path: Path
    quantized_nodes: list[str]
    excluded_nodes: list[str]
    recipe: QdqRecipe
    extra: dict = field(default_factory=dict)


class WindowReader(CalibrationDataReader):
    """Feeds calibration windows to onnxruntime in fixed batches (deterministic order)."""

    def __init__(self, windows: np.ndarray, batch_size: int, input_name: str = INPUT_NAME) -> None:
        self.windows = np.ascontiguousarray(windows, dtype=np.float32)
        self.batch_size = batch_size
        self.input_name = input_name
        self._it: Iterator[dict[str, np.ndarray]] | None = None
        self.rewind()

    def rewind(self) -> None:
        self._it = ({self.input_name: self.windows[i: i + self.batch_size]}
                    for i in range(0, len(self.windows), self.batch_size))

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def _producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {out: node for node in model.graph.node for out in node.output}


def candidate_nodes(model: onnx.ModelProto, recipe: QdqRecipe | None = None) -> tuple[list[str], list[str]]:
    """(weight layers, activation-by-activation MatMuls) among the recipe's op types, in graph order."""
    recipe = recipe or QdqRecipe()
    inits = {i.name for i in model.graph.initializer}
    prod = _producers(model)

    def is_weight(name: str) -> bool:  # an initializer, possibly behind a Transpose/Cast/Identity of one
        node = prod.get(name)
        while node is not None and node.op_type in ("Transpose", "Cast", "Identity", "Reshape"):
            name = node.input[0]
            node = prod.get(name)
        return name in inits or (node is not None and node.op_type == "Constant")

    weights, attention = [], []
    for node in model.graph.node:
        if node.op_type not in recipe.op_types:
            continue
        (weights if any(is_weight(i) for i in node.input[:2]) else attention).append(node.name)
    return weights, attention


def quantize_qdq(fp32_onnx: str | Path, out: str | Path, windows: np.ndarray,
                 recipe: QdqRecipe | None = None) -> QdqResult:
    """FP32 ONNX + calibration windows -> Q/DQ INT8 ONNX at `out` (written atomically)."""
    recipe = recipe or QdqRecipe()
    fp32_onnx, out = Path(fp32_onnx), Path(out)
    if len(windows) == 0:
        raise ConfigError(f"{fp32_onnx}: empty calibration set")
    model = onnx.load(str(fp32_onnx))
    weights, attention = candidate_nodes(model, recipe)
    if not weights:
        raise ConfigError(f"{fp32_onnx}: no {recipe.op_types} nodes with weights to quantize")
    all_nodes = {n.name for n in model.graph.node}
    unknown = [n for n in recipe.nodes_to_exclude if n not in all_nodes]
    if unknown:
        raise ConfigError(f"{fp32_onnx}: nodes_to_exclude names not in the graph: {unknown[:5]}")
    excluded = list(recipe.nodes_to_exclude) + ([] if recipe.quantize_attention_matmuls else attention)
    with tempfile.TemporaryDirectory(prefix="jepa-qdq-") as tmp:
        tmp_out = Path(tmp) / "model.qdq.onnx"
        quantize_static(
            # histogram calibrators stack per-batch arrays, so their batches must all be one size
            str(fp32_onnx), str(tmp_out),
            WindowReader(windows, recipe.batch_size if recipe.calibrate_method == "minmax" else 1,
                         model.graph.input[0].name),
            quant_format=QuantFormat.QDQ, op_types_to_quantize=list(recipe.op_types),
            per_channel=recipe.per_channel, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
            nodes_to_exclude=excluded, calibrate_method=CALIBRATION_METHODS[recipe.calibrate_method],
            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False,
                           "CalibTensorRangeSymmetric": True, "CalibMovingAverage": False,
                           "OpTypesToExcludeOutputQuantization": list(recipe.op_types)},
        )
        qmodel = onnx.load(str(tmp_out))
    keep_outputs_float(qmodel)
    onnx.checker.check_model(qmodel)
    atomic_write_bytes(out, qmodel.SerializeToString())
    quantized = [n for n in quantized_nodes(qmodel) if n in all_nodes]
    return QdqResult(out, quantized, excluded, recipe)


def keep_outputs_float(model: onnx.ModelProto) -> None:
    """Graph outputs stay the float tensors: onnxruntime hands a graph output that also feeds a quantized layer
    (here "embedding" feeds the head) to the DequantizeLinear, so callers would get fake-quantized values."""
    prod = _producers(model)
    for out in model.graph.output:
        dq = prod.get(out.name)
        if dq is None or dq.op_type != "DequantizeLinear":
            continue
        q = prod.get(dq.input[0])
        if q is None or q.op_type != "QuantizeLinear":
            continue
        float_name, dq_name = q.input[0], out.name + "_dequantized"
        dq.output[0] = dq_name
        for node in model.graph.node:
            if node is dq:
                continue
            for i, name in enumerate(node.input):
                if name == out.name:
                    node.input[i] = dq_name
                elif name == float_name:
                    node.input[i] = out.name
            for i, name in enumerate(node.output):
                if name == float_name:
                    node.output[i] = out.name


def quantized_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of compute nodes that consume at least one DequantizeLinear output (i.e. run on int8 inputs)."""
    prod = _producers(model)
    return [n.name for n in model.graph.node if n.op_type not in ("QuantizeLinear", "DequantizeLinear")
            and any(prod.get(i) is not None and prod[i].op_type == "DequantizeLinear" for i in n.input)]


def float_ops_with_qdq(model: onnx.ModelProto, op_types: tuple[str, ...] = FLOAT_OPS) -> list[str]:
    """Nodes of `op_types` that read a dequantized tensor, or whose output is quantized for anything other than
    a quantized MatMul/Gemm input: empty for the default recipe."""
    prod = _producers(model)
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node)
    bad = []
    for node in model.graph.node:
        if node.op_type not in op_types:
            continue
        if any(prod.get(i) is not None and prod[i].op_type == "DequantizeLinear" for i in node.input):
            bad.append(f"{node.name} ({node.op_type}) reads a dequantized input")
    for q in (n for n in model.graph.node if n.op_type == "QuantizeLinear"):
        src = prod.get(q.input[0])
        if src is None or src.op_type not in op_types:
            continue
        for dq in consumers.get(q.output[0], []):
            for user in consumers.get(dq.output[0], []):
                if user.op_type not in ("MatMul", "Gemm"):
                    bad.append(f"{src.name} ({src.op_type}) output is quantized for {user.name} ({user.op_type})")
    return bad


def qdq_tensorrt_problems(model: onnx.ModelProto) -> list[str]:
    """What TensorRT's explicit-quantization parser would reject: non-int8 Q/DQ or non-zero zero points."""
    inits = {i.name: i for i in model.graph.initializer}
    problems = []
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or len(node.input) < 3:
            continue
        zp = inits.get(node.input[2])
        if zp is None:
            continue
        arr = onnx.numpy_helper.to_array(zp)
        if arr.dtype != np.int8:
            problems.append(f"{node.name}: zero point of type {arr.dtype}, TensorRT needs int8")
        elif np.any(arr != 0):
            problems.append(f"{node.name}: non-zero zero point (TensorRT quantization is symmetric)")
    return problems
