"""Export a classifier to ONNX (dynamo exporter, opset >= 17 so LayerNorm stays one op) and OpenVINO IR.

Names are fixed for every consumer (ORT, OpenVINO, TensorRT, the C header): the input is named by the model's
modality ("ecg" (batch, leads, samples), "clip" (batch, channels, frames, height, width)), float32; the outputs
are "logits" and "embedding"; the batch axis is dynamic.
"""

from __future__ import annotations

import io
import logging
import re
import tempfile
import warnings
from contextlib import redirect_stdout
from pathlib import Path

import onnx
import torch
from torch import nn

from jepa_edge.config import ConfigError

from ..io import atomic_write_bytes
from ..models.checkpoint import load_classifier
from .base import OUTPUT_NAMES, EngineError
from .signal_stack import stable_signal_stack

log = logging.getLogger(__name__)

DEFAULT_OPSET = 18
MIN_OPSET = 17  # LayerNormalization became a standard op in opset 17


def _example_input(model: nn.Module, batch: int = 2) -> tuple[torch.Tensor, str]:
    """An example input and the input tensor's name, from the encoder's modality description."""
    from ..modality import modality_of

    spec = getattr(getattr(model, "encoder", model), "spec", None)
    if spec is None or not hasattr(spec, "to_dict"):
        raise EngineError(f"{type(model).__name__}: cannot tell the input shape (encoder carries no spec)")
    modality = modality_of(spec.to_dict())
    return modality.example_input(spec.to_dict(), batch), modality.input_name


def export_onnx(model: nn.Module, out: str | Path, opset: int = DEFAULT_OPSET, dynamo: bool = True) -> Path:
    """Write `model` (x -> (logits, embedding)) as ONNX; falls back to the TorchScript exporter with a logged
    reason only if the dynamo exporter fails. The result is checked and its bytes are deterministic."""
    if opset < MIN_OPSET:
        raise ConfigError(f"opset {opset} < {MIN_OPSET}: LayerNormalization would be decomposed; use >= {MIN_OPSET}")
    out = Path(out)
    model = model.eval()
    x, input_name = _example_input(model)
    proto = None
    if dynamo:
        try:
            with warnings.catch_warnings(), redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                program = torch.onnx.export(
                    model, (x,), input_names=[input_name], output_names=list(OUTPUT_NAMES), opset_version=opset,
                    dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=4096)}}, dynamo=True,
                    optimize=True, verbose=False)
            proto = program.model_proto
        except Exception as exc:  # exporter gaps differ between torch versions
            log.warning("dynamo ONNX export failed (%s: %s); falling back to the TorchScript exporter",
                        type(exc).__name__, exc)
    if proto is None:
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (x,), buf, input_names=[input_name], output_names=list(OUTPUT_NAMES),
                              opset_version=opset, dynamic_axes={input_name: {0: "batch"}}, dynamo=False)
        proto = onnx.load_from_string(buf.getvalue())
    proto.producer_version = torch.__version__.split("+")[0]
    del proto.metadata_props[:]
    onnx.checker.check_model(proto)
    atomic_write_bytes(out, proto.SerializeToString())
    return out


def export_classifier_onnx(classifier_dir: str | Path, out: str | Path, opset: int = DEFAULT_OPSET) -> Path:
    model, _ = load_classifier(classifier_dir)
    return export_onnx(model, out, opset=opset)


def export_openvino(onnx_path: str | Path, out_xml: str | Path, compress_to_fp16: bool = False) -> Path:
    """ONNX -> OpenVINO IR (.xml + .bin). FP32 weights unless `compress_to_fp16` (ov.save_model's default is
    to halve them, which would make the "FP32 reference" not FP32)."""
    import openvino as ov

    out_xml = Path(out_xml)
    with stable_signal_stack():
        model = ov.convert_model(str(onnx_path))
    save_ir(model, out_xml, compress_to_fp16=compress_to_fp16)
    return out_xml


_AUTO_NAME = re.compile(r"^([A-Z][A-Za-z]*)_\d+$")  # OpenVINO type name + counter; ONNX names differ


def stable_op_names(model) -> None:
    """Rename OpenVINO's auto-named ops (`Constant_4609`: a process-wide counter) by their position in the graph,
    so the same model saved twice, in one process or two, gives the same .xml bytes."""
    for i, op in enumerate(model.get_ordered_ops()):
        m = _AUTO_NAME.match(op.get_friendly_name())
        if m:
            op.set_friendly_name(f"{m.group(1)}_auto{i}")


def save_ir(model, out_xml: str | Path, compress_to_fp16: bool = False) -> Path:
    """Save an ov.Model atomically as .xml + .bin (written in a temp folder, then moved)."""
    import openvino as ov

    out_xml = Path(out_xml)
    stable_op_names(model)
    with tempfile.TemporaryDirectory(dir=out_xml.parent if out_xml.parent.exists() else None) as tmp:
        tmp_xml = Path(tmp) / out_xml.name
        ov.save_model(model, str(tmp_xml), compress_to_fp16=compress_to_fp16)
        atomic_write_bytes(out_xml.with_suffix(".bin"), tmp_xml.with_suffix(".bin").read_bytes())
        atomic_write_bytes(out_xml, tmp_xml.read_bytes())
    return out_xml
