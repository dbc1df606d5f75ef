"""Device profiles, the TensorRT compatibility gate, ISA detection, and `build_bundle` for both targets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from jepa_edge.devices.isa import detect_isa, parse_cpuinfo
from jepa_edge.devices.profiles import (
    ProfileError,
    check_onnx_compatible,
    list_profiles,
    load_profile,
    onnx_problems,
)

# -- profiles and the gate ------------------------------------------------------------------------------------

pytest_plugins = ("_int8_helpers",)  # session fixtures: real windows, FP32/INT8 artefacts


def test_profiles_are_data_with_gates_and_budgets():
    assert list_profiles() == ["cart-x86", "jetson-agx-orin", "jetson-orin-nano", "jetson-orin-nx", "jetson-thor"]
    for name in list_profiles():
        p = load_profile(name)
        assert p.name == name and p.latency_budget_ms > 0 and p.memory_budget_mb > 0
        assert set(p.gates) >= {"auc_drop_teacher", "auc_drop_fp32_int8", "cosine", "agreement"}
        assert json.loads(json.dumps(p.to_dict()))["gates"] == p.gates
    nano, nx, thor = load_profile("jetson-orin-nano"), load_profile("jetson-orin-nx"), load_profile("jetson-thor")
    assert (nano.jetpack, nano.tensorrt, nano.max_opset, nano.dla_cores) == ("6.2", "10.3", 20, 0)
    assert nx.dla_cores == 2 and "int8" in nx.precisions
    assert thor.max_opset > nano.max_opset and "fp8" in thor.precisions


def test_profile_errors(tmp_path):
    with pytest.raises(ProfileError, match="unknown device profile 'jetson-nano-2gb'"):
        load_profile("jetson-nano-2gb")
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nkind = "phone"\n')
    with pytest.raises(ProfileError, match="bad.toml: kind 'phone'"):
        load_profile(bad)
    bad.write_text('name = "x"\nkind = "jetson"\n[gates]\ncosine = "high"\n')
    with pytest.raises(ProfileError, match="gates must be numbers"):
        load_profile(bad)
    bad.write_text("name = [")
    with pytest.raises(ProfileError, match="invalid TOML"):
        load_profile(bad)


def test_gate_refuses_too_new_opset_for_jetpack6(int8_artifacts):
    from onnx import version_converter

    nano = load_profile("jetson-orin-nano")
    check_onnx_compatible(int8_artifacts["fp32_onnx"], nano)  # our default export passes
    check_onnx_compatible(int8_artifacts["qdq_onnx"], nano)
    newer = version_converter.convert_version(onnx.load(str(int8_artifacts["fp32_onnx"])), 21)
    with pytest.raises(ProfileError, match=r"opset 21 is newer than TensorRT 10.3 \(JetPack 6.2\).*max opset 20"):
        check_onnx_compatible(newer, nano)
    assert onnx_problems(newer, load_profile("jetson-thor")) == []  # JetPack 7's TensorRT parses it


def test_gate_refuses_ops_and_domains_tensorrt_cannot_parse():
    graph = helper.make_graph(
        [helper.make_node("Einsum", ["a", "a"], ["b"], equation="ij,ij->ij"),
         helper.make_node("FusedGemm", ["b", "b"], ["c"], domain="com.microsoft")],
        "g", [helper.make_tensor_value_info("a", onnx.TensorProto.FLOAT, [2, 2])],
        [helper.make_tensor_value_info("c", onnx.TensorProto.FLOAT, [2, 2])])
    opsets = [helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    problems = " | ".join(onnx_problems(model, load_profile("jetson-agx-orin")))
    assert "['Einsum']" in problems and "'com.microsoft'" in problems


def test_isa_detection():
    text = ("processor\t: 0\nmodel name\t: Test CPU\ncpu MHz\t\t: 2000.0\nflags\t\t: fpu avx2 avx512f avx512_vnni\n\n"
            "processor\t: 1\nmodel name\t: Test CPU\ncpu MHz\t\t: 2000.0\nflags\t\t: fpu avx2 avx512f avx512_vnni\n")
    info = parse_cpuinfo(text)
    assert info.cores == 2 and info.int8_path == "AVX512-VNNI" and info.default_float_precision == "f32"
    assert info.int8_peak_gmacs() == pytest.approx(64 * 2 * 2.0)
    amx = parse_cpuinfo(text.replace("avx512_vnni", "avx512_vnni avx512_bf16 amx_tile amx_int8 amx_bf16"))
    assert amx.int8_path == "AMX-INT8" and amx.default_float_precision == "bf16"
    old = parse_cpuinfo(text.replace(" avx512f avx512_vnni", ""))
    assert old.int8_path.startswith("AVX2")
    here = detect_isa()
    assert here.cores >= 1 and set(here.flags) >= {"avx512_vnni", "amx_int8", "avx512_bf16"}


# -- bundles -------------------------------------------------------------------------------------------------


def _manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())


def test_cart_cpu_bundle_builds_twice_to_the_same_hashes(ecg_classifier_dir, data_root, tmp_path):
    from jepa_edge.bundle import open_bundle, verify_bundle
    from jepa_edge.devices.build import build_bundle

    a = build_bundle(ecg_classifier_dir, "cart-cpu", tmp_path / "a", data=data_root, calibration_windows=24)
    b = build_bundle(ecg_classifier_dir, "cart-cpu", tmp_path / "b", data=data_root, calibration_windows=24)
    man, other = _manifest(a), _manifest(b)
    # everything is reproducible except the measured latency / memory, which no two runs share
    budget = man.pop("budget")
    other.pop("budget")
    assert man == other
    assert budget["measured"] and budget["artefact"] == "openvino-int8-xml" and budget["profile"] == "cart-x86"
    assert budget["latency_ms"]["budget"] == 50.0 and budget["memory_mb"]["budget"] == 512
    assert budget["latency_ms"]["p50"] > 0 and budget["memory_mb"]["peak_rss"] > 0 and budget["machine"]["cpu"]
    assert budget["passed"] == (budget["latency_ms"]["passed"] and budget["memory_mb"]["passed"])
    roles = {f["role"] for f in man["files"]}
    assert {"onnx-fp32", "openvino-fp32-xml", "openvino-fp32-bin", "openvino-int8-xml", "openvino-int8-bin"} <= roles
    assert man["target"]["profile"] == "cart-x86" and man["target"]["build_isa"]["int8_path"]
    assert man["calibration"]["windows"] == 24 and man["quantization"]["precision"] == "int8"
    assert set(man["golden"]["tolerances"]) == {"onnx-fp32", "openvino-fp32", "openvino-int8"}
    report = verify_bundle(a)
    assert report.ok, report.problems
    bundle = open_bundle(a)
    inputs, expected = bundle.golden()
    got = bundle.engine("openvino-int8-xml").outputs(inputs)
    assert np.abs(got["logits"] - expected["logits"]).max() <= man["golden"]["tolerances"]["openvino-int8"]


def test_jetson_bundle_holds_gated_qdq_onnx(ecg_classifier_dir, data_root, tmp_path):
    from jepa_edge.bundle import open_bundle, verify_bundle
    from jepa_edge.devices.build import build_bundle, build_engine_into_bundle
    from jepa_edge.quantize import float_ops_with_qdq
    from jepa_edge.runtimes import BackendUnavailable, available_backends

    path = build_bundle(ecg_classifier_dir, "jetson", tmp_path / "j", profile="jetson-orin-nx", data=data_root,
                        calibration_windows=24)
    man = _manifest(path)
    assert man["target"]["profile_data"]["tensorrt"] == "10.3" and man["runtimes"]["tensorrt"] is None
    assert man["runtimes"]["opset"] <= 20
    bundle = open_bundle(path)
    qdq = onnx.load(str(bundle.file("onnx-qdq")))
    assert float_ops_with_qdq(qdq) == [] and "QuantizeLinear" in {n.op_type for n in qdq.graph.node}
    assert verify_bundle(path).ok
    if available_backends()["tensorrt"] is not None:
        with pytest.raises(BackendUnavailable, match="tensorrt"):
            build_engine_into_bundle(path)


def test_build_refuses_bad_requests(ecg_classifier_dir, data_root, tmp_path):
    from jepa_edge.devices.build import build_bundle
    from jepa_edge.models.checkpoint import CheckpointError

    with pytest.raises(ProfileError, match="unknown build target 'phone'"):
        build_bundle(ecg_classifier_dir, "phone", tmp_path / "x", data=data_root)
    with pytest.raises(ProfileError, match="profile cart-x86 is for 'cart-cpu' devices, not target 'jetson'"):
        build_bundle(ecg_classifier_dir, "jetson", tmp_path / "x", profile="cart-x86", data=data_root)
    with pytest.raises(CheckpointError, match="meta.json"):
        build_bundle(tmp_path, "jetson", tmp_path / "x", data=data_root)
    assert not (tmp_path / "x").exists()


def test_cli_build_reports_profile_errors(ecg_classifier_dir, tmp_path):
    from typer.testing import CliRunner

    from jepa_edge.cli import app

    result = CliRunner().invoke(app, ["build", str(ecg_classifier_dir), "--target", "jetson", "--out",
                                      str(tmp_path / "b"), "--profile", "jetson-nano-2gb"])
    assert result.exit_code == 2 and "unknown device profile" in result.output


@pytest.mark.heavy
def test_jetson_bundle_builds_twice_to_the_same_hashes(ecg_classifier_dir, data_root, tmp_path):
    from jepa_edge.devices.build import build_bundle

    a = build_bundle(ecg_classifier_dir, "jetson", tmp_path / "a", data=data_root, calibration_windows=24)
    b = build_bundle(ecg_classifier_dir, "jetson", tmp_path / "b", data=data_root, calibration_windows=24)
    assert (a / "manifest.json").read_bytes() == (b / "manifest.json").read_bytes()
