"""INT8 on real PTB-XL windows: calibration set, transformer-safe Q/DQ ONNX, NNCF OpenVINO INT8, sensitivity."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx
import pytest
from _int8_helpers import cosine

from jepa_edge.data.errors import DataError
from jepa_edge.data.preprocess import EcgPreprocessing
from jepa_edge.devices.profiles import load_profile
from jepa_edge.quantize import (
    QdqRecipe,
    build_calibration_set,
    float_ops_with_qdq,
    qdq_tensorrt_problems,
    quantize_qdq,
    quantized_nodes,
    stratified_picks,
)
from jepa_edge.runtimes import open_engine

pytest_plugins = ("_int8_helpers",)  # session fixtures: real windows, FP32/INT8 artefacts

# -- calibration ---------------------------------------------------------------------------------------------


def test_stratified_picks_follow_label_frequencies():
    rng = np.random.default_rng(0)
    labels = np.zeros((100, 3), np.float32)
    labels[:70, 0] = 1  # 70 % class A, 20 % B, 10 % B+C
    labels[70:90, 1] = 1
    labels[90:, 1:] = 1
    picks = stratified_picks(labels, 20, rng)
    assert len(picks) == 20 and len(set(picks.tolist())) == 20
    assert (picks < 70).sum() == 14 and ((picks >= 70) & (picks < 90)).sum() == 4 and (picks >= 90).sum() == 2
    rare = stratified_picks(labels, 3, np.random.default_rng(1))  # every combination at least once
    assert sorted(np.digitize(rare, [70, 90]).tolist()) == [0, 1, 2]
    assert len(stratified_picks(labels, 250, rng)) == 250  # more than the records: repeats


def test_calibration_set_is_seeded_stratified_and_hashed(ecg_windows, data_root):
    calib, val = ecg_windows
    assert calib.windows.shape == (48, 12, 5000) and calib.windows.dtype == np.float32
    assert (calib.labels.sum(axis=0) > 0).all()  # every superclass represented
    assert len(val) == 72 and val.records == 72  # fold 9, every labelled record once
    assert set(calib.record_ids).isdisjoint(val.record_ids)
    again = build_calibration_set(EcgPreprocessing(), data_root, windows=12, seed=3)
    same = build_calibration_set(EcgPreprocessing(), data_root, windows=12, seed=3)
    other = build_calibration_set(EcgPreprocessing(), data_root, windows=12, seed=4)
    assert again.sha256 == same.sha256 and again.record_ids == same.record_ids
    np.testing.assert_array_equal(again.windows, same.windows)
    assert other.sha256 != again.sha256
    short = build_calibration_set(replace(EcgPreprocessing(), window_s=2.5), data_root, windows=12, seed=3)
    assert short.windows.shape == (12, 12, 1250) and short.sha256 != again.sha256 and max(short.offsets) > 0
    assert calib.manifest() == {"sha256": calib.sha256, "windows": 48, "records": calib.records, "seed": 0}


def test_calibration_bad_inputs(data_root, tmp_path):
    with pytest.raises(ValueError, match="at least one window"):
        build_calibration_set(EcgPreprocessing(), data_root, windows=0)
    with pytest.raises(DataError, match="no PTB-XL folder"):
        build_calibration_set(EcgPreprocessing(), tmp_path, windows=4)
    with pytest.raises(DataError, match=r"\['NOT_A_CODE'\]"):
        build_calibration_set(EcgPreprocessing(), data_root, windows=4, labels=["NORM", "NOT_A_CODE"])
    with pytest.raises(DataError, match="unknown split"):
        build_calibration_set(EcgPreprocessing(), data_root, windows=4, split="holdout")


# -- Q/DQ ONNX for TensorRT -----------------------------------------------------------------------------------


def test_qdq_onnx_runs_in_onnxruntime_and_matches_fp32(int8_artifacts, ecg_windows, reference_outputs):
    outs = open_engine(int8_artifacts["qdq_onnx"]).outputs(ecg_windows[1].windows)
    assert open_engine(int8_artifacts["qdq_onnx"]).info()["precision"] == "int8 (Q/DQ)"
    gates = load_profile("jetson-orin-nano").gates  # the Q/DQ model is what a Jetson build ships
    for name, ref in reference_outputs.items():
        assert cosine(outs[name], ref) >= gates["cosine"], name


def test_default_recipe_leaves_layernorm_softmax_add_gelu_float(int8_artifacts):
    model = onnx.load(str(int8_artifacts["qdq_onnx"]))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") > 0 and ops.count("LayerNormalization") == 10 and "Softmax" in ops
    assert float_ops_with_qdq(model) == []
    prod = {o: n for n in model.graph.node for o in n.output}
    for node in model.graph.node:
        fed_by_dq = any(prod.get(i) is not None and prod[i].op_type == "DequantizeLinear" for i in node.input)
        if node.op_type in ("LayerNormalization", "Softmax", "Add", "Erf", "Mul", "Div", "Concat", "ReduceMean"):
            assert not fed_by_dq, f"{node.name} ({node.op_type}) runs on int8-rounded input"
        if fed_by_dq:
            assert node.op_type in ("MatMul", "Gemm"), node.name
    # every Linear layer (4 blocks x qkv/proj/fc1/fc2 + head) is INT8; the attention MatMuls stay float
    result = int8_artifacts["qdq"]
    assert len(result.quantized_nodes) == 4 * 4 + 1
    assert len([n for n in result.excluded_nodes if n]) == 2 * 4
    # weights per output channel, symmetric: TensorRT-parsable Q/DQ
    inits = {i.name: i for i in model.graph.initializer}
    weight_dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits]
    assert weight_dq and all(onnx.numpy_helper.to_array(inits[n.input[1]]).size > 1 for n in weight_dq)
    assert qdq_tensorrt_problems(model) == []


def test_bad_recipe_inputs(int8_artifacts, ecg_windows, tmp_path):
    with pytest.raises(ValueError, match="not in the graph"):
        quantize_qdq(int8_artifacts["fp32_onnx"], tmp_path / "q.onnx", ecg_windows[0].windows[:4],
                     QdqRecipe(nodes_to_exclude=("no_such_node",)))
    with pytest.raises(ValueError, match="empty calibration"):
        quantize_qdq(int8_artifacts["fp32_onnx"], tmp_path / "q.onnx", ecg_windows[0].windows[:0])
    with pytest.raises(ValueError, match="calibrate_method"):
        QdqRecipe(calibrate_method="magic")


@pytest.mark.parametrize("method", ["minmax", "percentile", "entropy"])
def test_every_calibration_method_takes_a_ragged_last_batch(int8_artifacts, ecg_windows, tmp_path, method):
    windows = ecg_windows[0].windows[:21]  # 16 + 5: histogram calibrators once choked on the short batch
    result = quantize_qdq(int8_artifacts["fp32_onnx"], tmp_path / "q.onnx", windows, QdqRecipe(calibrate_method=method))
    assert result.quantized_nodes and result.recipe.to_dict()["calibrate_method"] == method


# -- OpenVINO INT8 ------------------------------------------------------------------------------------------------


def test_overflow_fix_follows_the_cpus_the_profile_admits():
    """8-bit weights only where every CPU the target admits has a VNNI/AMX dot product: cart-x86 requires only AVX2,
    so its builds use NNCF's overflow fix (7-bit weights) on any build machine; an explicit choice stands."""
    from jepa_edge.quantize.openvino_int8 import OpenVinoRecipe

    cart = load_profile("cart-x86")
    assert OpenVinoRecipe(target_isa=tuple(cart.required_isa)).to_dict()["overflow_fix"] == "enable"
    assert OpenVinoRecipe().resolved_overflow_fix() == "enable"  # no guarantee at all
    for dot in ("avx512_vnni", "avx_vnni", "amx_int8"):
        assert OpenVinoRecipe(target_isa=("avx2", dot)).resolved_overflow_fix() == "first_layer"
    assert OpenVinoRecipe(overflow_fix="disable", target_isa=("avx2",)).resolved_overflow_fix() == "disable"


def test_quantize_classifier_refuses_an_unknown_profile_before_any_work(ecg_classifier_dir, tmp_path):
    from jepa_edge.devices.profiles import ProfileError
    from jepa_edge.quantize.pipeline import quantize_classifier

    with pytest.raises(ProfileError, match="unknown device profile 'cart-x68'"):
        quantize_classifier(ecg_classifier_dir, tmp_path / "q", profile="cart-x68")
    assert not (tmp_path / "q").exists()


def test_openvino_int8_matches_fp32_within_profile_gates(int8_artifacts, ecg_windows, reference_outputs):
    gates = load_profile("cart-x86").gates
    x = ecg_windows[1].windows
    fp32 = open_engine(int8_artifacts["fp32_xml"]).outputs(x)
    int8 = open_engine(int8_artifacts["int8_xml"]).outputs(x)
    for name in reference_outputs:
        assert cosine(int8[name], fp32[name]) >= gates["cosine"], name
    agree = ((int8["logits"] > 0) == (fp32["logits"] > 0)).mean()  # decisions at probability 0.5
    assert agree >= gates["agreement"]


def test_accuracy_control_keeps_macro_auc(int8_artifacts, ecg_windows, tmp_path):
    from jepa_edge.quantize import quantize_openvino_with_accuracy_control
    from jepa_edge.tasks.metrics import macro_auc

    calib, val = ecg_windows
    result = quantize_openvino_with_accuracy_control(int8_artifacts["fp32_xml"], tmp_path / "ac.xml",
                                                     calib.windows[:16], val.windows, val.labels, max_drop=0.01)
    assert result.metric_fp32 - result.metric_int8 <= 0.01 + 1e-9
    fp32_logits = open_engine(int8_artifacts["fp32_xml"])(val.windows)
    assert result.metric_fp32 == pytest.approx(macro_auc(val.labels, fp32_logits))
    assert open_engine(result.path).info()["model_precision"] == "int8"


# -- sensitivity and the fallback list ------------------------------------------------------------------------


def test_single_layer_probes_and_fallback_feed_both_back_ends(int8_artifacts, ecg_windows, tmp_path):
    import openvino as ov

    from jepa_edge.quantize import OpenVinoRecipe, quantize_openvino
    from jepa_edge.quantize.openvino_int8 import float_matmuls
    from jepa_edge.quantize.sensitivity import _error, _run, only_layer_quantized

    fp32 = onnx.load(str(int8_artifacts["fp32_onnx"]))
    qdq = onnx.load(str(int8_artifacts["qdq_onnx"]))
    x = ecg_windows[1].windows[:4]
    ref = _run(fp32, x)
    assert _error(ref, _run(only_layer_quantized(fp32, qdq, set()), x)) < 1e-9  # surgery restores FP32 exactly
    layer = int8_artifacts["qdq"].quantized_nodes[0]
    one = only_layer_quantized(fp32, qdq, {layer})
    assert quantized_nodes(one) == [layer] and _error(ref, _run(one, x)) > 0

    calib = ecg_windows[0].windows[:8]
    kept = quantize_qdq(int8_artifacts["fp32_onnx"], tmp_path / "fb.onnx", calib, QdqRecipe(nodes_to_exclude=(layer,)))
    assert layer not in kept.quantized_nodes
    assert len(kept.quantized_nodes) == len(int8_artifacts["qdq"].quantized_nodes) - 1
    xml = quantize_openvino(int8_artifacts["fp32_xml"], tmp_path / "fb.xml", calib, OpenVinoRecipe(ignored=(layer,)))
    assert float_matmuls(ov.Core().read_model(str(xml))) == [layer]  # the same name is the OpenVINO op


@pytest.mark.heavy
def test_layer_sensitivity_sweep(int8_artifacts, ecg_windows):
    from jepa_edge.quantize import layer_sensitivity

    report = layer_sensitivity(int8_artifacts["fp32_onnx"], int8_artifacts["qdq_onnx"], ecg_windows[1].windows[:8],
                               threshold=0.0, max_fallback_fraction=0.25)
    errors = [s.error for s in report.layers]
    assert len(errors) == 17 and errors == sorted(errors, reverse=True) and errors[0] > 0
    assert report.fallback == [s.name for s in report.layers[:4]]
