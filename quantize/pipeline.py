"""`quantize_classifier`: one classifier folder -> every INT8 artefact + a report (what `jepa-edge quantize` runs).

The bundle build (`jepa_edge.devices.build`) packages the same artefacts for one target; this is the
stand-alone step for inspecting INT8 quality before choosing a device.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io import atomic_write_json
from ..modality import modality_of
from ..models.checkpoint import load_classifier
from ..runtimes import open_engine
from ..runtimes.export import DEFAULT_OPSET, export_onnx, export_openvino
from ..tasks.outputs import TaskOutput
from .openvino_int8 import OpenVinoRecipe, quantize_openvino, quantize_openvino_with_accuracy_control
from .qdq import QdqRecipe, float_ops_with_qdq, quantize_qdq
from .sensitivity import layer_sensitivity

STAGES = ("calibration data", "export", "sensitivity", "Q/DQ ONNX", "OpenVINO INT8", "parity")


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    return float(((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)).mean())


def quantize_classifier(classifier_dir: str | Path, out_dir: str | Path, data: str | Path | None = None,
                        windows: int | None = None, seed: int = 0, sensitivity: bool = False,
                        accuracy_control: bool = False, max_drop: float | None = None, opset: int = DEFAULT_OPSET,
                        profile: str | None = None, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Write model.onnx, model.qdq.onnx, model_fp32.xml/.bin, model_int8.xml/.bin and quantize_report.json into
    `out_dir`; returns the report (calibration hash, fallback list, INT8-vs-FP32 cosine on val inputs).

    ECG classifiers calibrate on PTB-XL training folds, echo models on an EchoNet-layout folder's TRAIN clips
    (`data`); `windows=None` takes the modality's default count. Accuracy control judges the output's own
    metric (macro AUC, LVEF MAE, view accuracy); `max_drop=None` takes the matching `*_fp32_int8` gate of the
    default device profile (`profile`: the cart's, whose OpenVINO INT8 this is)."""
    from ..devices.profiles import DEFAULT_PROFILE, load_profile

    prof = load_profile(profile or DEFAULT_PROFILE)  # a bad name stops here, before any export
    step = progress or (lambda stage: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model, meta = load_classifier(classifier_dir)
    modality = modality_of(meta)
    pre = modality.preprocessing(meta["preprocessing"])
    output = TaskOutput.from_meta(meta)
    step("calibration data")
    calib = modality.labelled_set(pre, data, output, "train", windows or modality.default_calibration, seed)
    val = modality.labelled_set(pre, data, output, "val", None, seed)
    step("export")
    fp32_onnx = export_onnx(model, out / "model.onnx", opset=opset)
    fp32_xml = export_openvino(fp32_onnx, out / "model_fp32.xml")
    report: dict[str, Any] = {"classifier": str(classifier_dir), "calibration": calib.manifest(),
                              "validation_windows": len(val)}
    step("sensitivity")
    fallback: list[str] = []
    if sensitivity:
        probe = quantize_qdq(fp32_onnx, out / "probe.qdq.onnx", calib.windows)
        sens = layer_sensitivity(fp32_onnx, probe.path, calib.windows[:16])
        (out / "probe.qdq.onnx").unlink()
        fallback = sens.fallback
        report["sensitivity"] = sens.to_dict()
    step("Q/DQ ONNX")
    qdq = quantize_qdq(fp32_onnx, out / "model.qdq.onnx", calib.windows, QdqRecipe(nodes_to_exclude=tuple(fallback)))
    import onnx

    report["qdq"] = {**qdq.recipe.to_dict(), "quantized_nodes": len(qdq.quantized_nodes),
                     "float_ops_with_qdq": float_ops_with_qdq(onnx.load(str(qdq.path)))}
    step("OpenVINO INT8")
    recipe = OpenVinoRecipe(ignored=tuple(fallback), target_isa=tuple(prof.required_isa))
    if accuracy_control:
        if max_drop is None:
            from ..devices.build import accuracy_control_drop

            max_drop = accuracy_control_drop(output, prof)
        result = quantize_openvino_with_accuracy_control(fp32_xml, out / "model_int8.xml", calib.windows,
                                                         val.windows, val.labels, max_drop=max_drop, recipe=recipe,
                                                         output=output)
        report["accuracy_control"] = {"metric": result.metric_name, "fp32": result.metric_fp32,
                                      "int8": result.metric_int8, "max_drop": max_drop,
                                      "float_layers": result.fallback_layers}
    else:
        quantize_openvino(fp32_xml, out / "model_int8.xml", calib.windows, recipe)
    report["openvino"] = recipe.to_dict()
    step("parity")
    with torch.inference_mode():
        ref = dict(zip(("logits", "embedding"), (t.numpy() for t in model(torch.from_numpy(val.windows))),
                       strict=True))
    report["parity"] = {}
    for name in ("model.onnx", "model.qdq.onnx", "model_fp32.xml", "model_int8.xml"):
        got = open_engine(out / name).outputs(val.windows)
        report["parity"][name] = {k: {"cosine": _cosine(ref[k], got[k]),
                                      "max_abs": float(np.abs(ref[k] - got[k]).max())} for k in ref}
    atomic_write_json(out / "quantize_report.json", json.loads(json.dumps(report)))
    return report
