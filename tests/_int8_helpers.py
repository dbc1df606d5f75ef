"""Session fixtures shared by the INT8 / runtime / build tests: real PTB-XL windows and the classifier's
FP32 and INT8 artefacts, made once per test session from the `ecg_classifier_dir` fixture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean per-example cosine similarity."""
    a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    return float(((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))).mean())


@pytest.fixture(scope="session")
def ecg_windows(ecg_classifier_dir: Path, data_root: Path):
    """(calibration set: 48 stratified train windows, validation set: every labelled fold-9 record)."""
    from jepa_edge.data.preprocess import EcgPreprocessing
    from jepa_edge.models.checkpoint import read_meta
    from jepa_edge.quantize import build_calibration_set

    meta = read_meta(ecg_classifier_dir)
    pre = EcgPreprocessing.from_dict(meta["preprocessing"])
    calib = build_calibration_set(pre, data_root, windows=48, seed=0, labels=meta["labels"])
    val = build_calibration_set(pre, data_root, windows=None, seed=0, labels=meta["labels"], split="val")
    return calib, val


@pytest.fixture(scope="session")
def reference_outputs(ecg_classifier_dir: Path, ecg_windows):
    from jepa_edge.models.checkpoint import load_classifier

    model, _ = load_classifier(ecg_classifier_dir)
    with torch.inference_mode():
        logits, emb = model(torch.from_numpy(ecg_windows[1].windows))
    return {"logits": logits.numpy(), "embedding": emb.numpy()}


@pytest.fixture(scope="session")
def int8_artifacts(ecg_classifier_dir: Path, ecg_windows, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """model.onnx, model_fp32.xml (FP32), model.qdq.onnx (default Q/DQ recipe), model_int8.xml (NNCF)."""
    from jepa_edge.models.checkpoint import load_classifier
    from jepa_edge.quantize import quantize_openvino, quantize_qdq
    from jepa_edge.runtimes.export import export_onnx, export_openvino

    out = tmp_path_factory.mktemp("int8")
    model, _ = load_classifier(ecg_classifier_dir)
    calib = ecg_windows[0]
    fp32_onnx = export_onnx(model, out / "model.onnx")
    fp32_xml = export_openvino(fp32_onnx, out / "model_fp32.xml")
    qdq = quantize_qdq(fp32_onnx, out / "model.qdq.onnx", calib.windows)
    int8_xml = quantize_openvino(fp32_xml, out / "model_int8.xml", calib.windows)
    return {"dir": out, "fp32_onnx": fp32_onnx, "fp32_xml": fp32_xml, "qdq": qdq, "qdq_onnx": qdq.path,
            "int8_xml": int8_xml}
