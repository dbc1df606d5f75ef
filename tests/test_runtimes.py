"""Engine protocol and back ends on real PTB-XL windows: torch reference, onnxruntime, OpenVINO (f32 pinned),
TensorRT (skips with the reason where `tensorrt` does not import)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from jepa_edge.runtimes import (
    BackendUnavailable,
    Engine,
    EngineError,
    available_backends,
    backend_for_path,
    open_engine,
)

pytest_plugins = ("_int8_helpers",)  # session fixtures: real windows, FP32/INT8 artefacts


def test_fp32_back_ends_match_torch_on_real_windows(ecg_classifier_dir, int8_artifacts, ecg_windows,
                                                     reference_outputs):
    x = ecg_windows[1].windows
    for path in (ecg_classifier_dir, int8_artifacts["fp32_onnx"], int8_artifacts["fp32_xml"]):
        engine = open_engine(path, threads=2)
        assert isinstance(engine, Engine)
        outs = engine.outputs(x)
        assert list(outs) == ["logits", "embedding"]
        for name, ref in reference_outputs.items():
            assert outs[name].dtype == np.float32 and outs[name].shape == ref.shape
            np.testing.assert_allclose(outs[name], ref, atol=2e-4, rtol=1e-4, err_msg=f"{path} {name}")
        np.testing.assert_array_equal(engine(x), outs["logits"])
        info = engine.info()
        assert {"backend", "version", "precision", "device", "threads", "file"} <= set(info)
        assert info["backend"] == engine.name == backend_for_path(path)


def test_dynamic_batch_and_single_window(int8_artifacts, ecg_windows):
    x = ecg_windows[1].windows
    for path in (int8_artifacts["fp32_onnx"], int8_artifacts["fp32_xml"]):
        engine = open_engine(path)
        full = engine(x[:5])
        assert full.shape[0] == 5
        np.testing.assert_allclose(engine(x[2]), full[2:3], atol=1e-5)  # (leads, samples) -> batch of one


def test_openvino_pins_f32_and_reports_the_device_default(int8_artifacts):
    from jepa_edge.devices.isa import detect_isa

    info = open_engine(int8_artifacts["fp32_xml"]).info()
    assert info["inference_precision"] == "f32"
    assert info["model_precision"] == "fp32"
    assert info["device_default_precision"] == detect_isa().default_float_precision
    loose = open_engine(int8_artifacts["fp32_xml"], precision="default").info()
    assert loose["inference_precision"] == info["device_default_precision"]
    assert open_engine(int8_artifacts["int8_xml"]).info()["model_precision"] == "int8"


def test_onnx_export_keeps_layernorm_names_and_dynamic_batch(int8_artifacts, ecg_classifier_dir):
    from jepa_edge.models.checkpoint import read_meta

    model = onnx.load(str(int8_artifacts["fp32_onnx"]))
    ops = [n.op_type for n in model.graph.node]
    depth = 4  # vit-tiny
    assert ops.count("LayerNormalization") == 2 * depth + 2  # two per block, final norm, head norm
    assert "ReduceMean" in ops and ops.count("Softmax") == depth
    assert max(i.version for i in model.opset_import if i.domain in ("", "ai.onnx")) >= 17
    (inp,) = model.graph.input
    assert inp.name == "ecg"
    dims = inp.type.tensor_type.shape.dim
    enc = read_meta(ecg_classifier_dir)["encoder"]
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [enc["leads"], enc["samples"]]
    assert [o.name for o in model.graph.output] == ["logits", "embedding"]


def test_export_refuses_old_opset(ecg_classifier_dir, tmp_path):
    from jepa_edge.models.checkpoint import load_classifier
    from jepa_edge.runtimes.export import export_onnx

    model, _ = load_classifier(ecg_classifier_dir)
    with pytest.raises(ValueError, match="LayerNormalization"):
        export_onnx(model, tmp_path / "m.onnx", opset=16)


def test_bad_inputs_name_the_file(int8_artifacts, tmp_path):
    onnx_path = int8_artifacts["fp32_onnx"]
    with pytest.raises(EngineError, match="no such model"):
        open_engine(tmp_path / "missing.onnx")
    (tmp_path / "weights.pt").write_bytes(b"x")
    with pytest.raises(EngineError, match="weights.pt.*suffix"):
        open_engine(tmp_path / "weights.pt")
    (tmp_path / "broken.onnx").write_bytes(b"not a protobuf at all")
    with pytest.raises(EngineError, match="broken.onnx"):
        open_engine(tmp_path / "broken.onnx")
    (tmp_path / "broken.xml").write_text("<net>")
    with pytest.raises(EngineError, match="broken.xml"):
        open_engine(tmp_path / "broken.xml")
    with pytest.raises(EngineError, match="unknown back end"):
        open_engine(onnx_path, backend="tflite")
    engine = open_engine(onnx_path)
    with pytest.raises(EngineError, match=r"model.onnx: input of shape \(2, 11, 5000\)"):
        engine(np.zeros((2, 11, 5000), np.float32))
    bad = np.zeros((1, 12, 5000), np.float32)
    bad[0, 3, 10] = np.nan
    with pytest.raises(EngineError, match="NaN"):
        engine(bad)
    with pytest.raises(EngineError, match="precision"):
        open_engine(int8_artifacts["fp32_xml"], precision="int4")
    with pytest.raises(EngineError, match="not a model folder"):
        open_engine(tmp_path)


def test_tensorrt_reports_why_it_is_unavailable(int8_artifacts):
    reasons = available_backends()
    assert reasons["onnxruntime"] is None and reasons["openvino"] is None and reasons["torch"] is None
    if reasons["tensorrt"] is None:
        pytest.skip("tensorrt is usable here; the real build is exercised by test_tensorrt_engine_matches_qdq")
    assert reasons["tensorrt"].startswith("tensorrt:")
    with pytest.raises(BackendUnavailable, match="tensorrt"):
        open_engine(int8_artifacts["qdq_onnx"], backend="tensorrt")


def test_tensorrt_engine_matches_qdq(int8_artifacts, ecg_windows, tmp_path):
    reason = available_backends()["tensorrt"]
    if reason is not None:
        pytest.skip(reason)
    from jepa_edge.runtimes.tensorrt_backend import EngineBuildConfig, build_engine

    engine_path = build_engine(int8_artifacts["qdq_onnx"], tmp_path / "m.engine",
                               EngineBuildConfig(max_batch=8, timing_cache=str(tmp_path / "cache")))
    trt_engine = open_engine(Path(engine_path))
    ort_engine = open_engine(int8_artifacts["qdq_onnx"])
    x = ecg_windows[1].windows[:8]
    np.testing.assert_allclose(trt_engine(x), ort_engine(x), atol=0.05)


SIGNAL_STACK_SCRIPT = """
import gc, signal, subprocess, sys
import numpy as np, openvino as ov
from openvino import opset13 as ops
from jepa_edge.runtimes.export import save_ir
from jepa_edge.runtimes.openvino_backend import OpenVinoEngine
from jepa_edge.runtimes.signal_stack import current_signal_stack
import faulthandler; faulthandler.enable()
x = ops.parameter([1, 8], np.float32, name="ecg")
save_ir(ov.Model([ops.relu(x)], [x]), sys.argv[1])
before = current_signal_stack()
first, second = OpenVinoEngine.load(sys.argv[1]), OpenVinoEngine.load(sys.argv[1])
assert current_signal_stack() == before, (before, current_signal_stack())
del first; gc.collect(); del second; gc.collect()  # creation order: the order that left a dangling stack
signal.signal(signal.SIGCHLD, lambda *a: None)  # as torch's DataLoader does; runs on the alternate stack
for _ in range(3):
    subprocess.run([sys.executable, "-c", "pass"], check=True)
print("alive")
"""


def test_openvino_engines_leave_the_signal_stack_usable(tmp_path):
    """Two OpenVINO Cores dying in creation order once left the process a dangling alternate signal stack, and the
    next SIGCHLD killed it (the CI segfault). A fresh interpreter, since failure is the death of the process."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", SIGNAL_STACK_SCRIPT, str(tmp_path / "relu.xml")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "alive" in proc.stdout, (proc.returncode, proc.stderr[-2000:])
