"""Echo parity (LVEF regression and view classification) on SYNTHETIC EchoNet-layout videos.

The videos come from `jepa_edge.data.synthetic_echo` (drawn hearts with known EF and view; not patient data),
28 of them at 48 px: 14 TRAIN, 4 VAL, 10 TEST. The models are tiny: a random vit-tiny video encoder (8 frames,
48 px) with a linear probe. Teacher and student are the SAME classifier, so a faithful INT8 build must pass
the real gates from the device profile, and a build with one corrupted INT8 weight must fail naming its stage.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from test_parity import assert_self_contained_html, corrupt_first_weight

from jepa_edge.data.echo import EchoPreprocessing, read_video
from jepa_edge.data.errors import DataError, RecordError
from jepa_edge.parity import (
    GateFailure,
    ParityConfig,
    ParityError,
    check_gates,
    gates_for_kind,
    run_parity,
)
from jepa_edge.parity.echo import stage_clips
from jepa_edge.parity.output_eval import perturbation_excess

FRAMES, FPS, SIZE = 8, 4.0, 48
LVEF_GATES = {"cosine", "mae_increase_teacher", "mae_increase_fp32_int8", "value_diff_fp32_int8",
              "perturbation_mae_margin"}
VIEW_GATES = {"cosine", "agreement", "accuracy_drop_teacher", "accuracy_drop_fp32_int8",
              "perturbation_accuracy_margin"}


def small_cfg(**kw) -> ParityConfig:
    return ParityConfig(**({"n_boot": 200, "latency_runs": 2, "threads": 1} | kw))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def echonet(tmp_path_factory) -> Path:
    """28 synthetic videos, 48 px, 2.25 s at 25-50 fps: 14 TRAIN, 4 VAL, 10 TEST."""
    from jepa_edge.data.synthetic_echo import SyntheticEchoConfig, write_synthetic_echonet

    out = tmp_path_factory.mktemp("echo-parity") / "echonet"
    return write_synthetic_echonet(out, 28, 0, "avi", SyntheticEchoConfig(size=SIZE, seconds=2.25),
                                   splits=(0.5, 0.15))


def _encoder(out: Path, frames: int, fps: float, size: int) -> Path:
    from jepa_edge.models.checkpoint import save_model
    from jepa_edge.models.video import VideoEncoder, VideoEncoderSpec

    torch.manual_seed(0)
    enc = VideoEncoder(VideoEncoderSpec(size="vit-tiny", frames=frames, image_size=size))
    pre = EchoPreprocessing(frames=frames, fps=fps, size=size)
    return save_model(out, enc, {"kind": "encoder", "modality": "echo", "encoder": enc.spec.to_dict(),
                                 "preprocessing": pre.to_dict()})


def _classifier(encoder: Path, data: Path, task: str, out: Path) -> Path:
    from jepa_edge.tasks.echo import EchoProbeConfig, probe_echonet

    return probe_echonet(encoder, data, EchoProbeConfig(task=task, epochs=50), out).out


@pytest.fixture(scope="module")
def models(echonet, tmp_path_factory) -> dict[str, Path]:
    """LVEF and view classifiers on one random vit-tiny encoder (8 frames at 4 fps, 48 px)."""
    tmp = tmp_path_factory.mktemp("echo-parity-models")
    encoder = _encoder(tmp / "encoder", FRAMES, FPS, SIZE)
    return {task: _classifier(encoder, echonet, task, tmp / task) for task in ("ef", "view")}


@pytest.fixture(scope="module")
def ef_cart_bundle(models, echonet, tmp_path_factory) -> Path:
    from jepa_edge.devices.build import build_bundle

    out = tmp_path_factory.mktemp("echo-parity-cart") / "bundle"
    return build_bundle(models["ef"], "cart-cpu", out, data=echonet, calibration_windows=16)


@pytest.fixture(scope="module")
def view_jetson_bundle(models, echonet, tmp_path_factory) -> Path:
    from jepa_edge.devices.build import build_bundle

    out = tmp_path_factory.mktemp("echo-parity-jetson") / "bundle"
    return build_bundle(models["view"], "jetson", out, data=echonet, calibration_windows=16)


@pytest.fixture(scope="module")
def ef_run(models, ef_cart_bundle, echonet, tmp_path_factory):
    out = tmp_path_factory.mktemp("echo-parity-report")
    return run_parity(models["ef"], ef_cart_bundle, echonet, student=models["ef"], cfg=small_cfg(out=str(out))), out


# -- gates: one table, each gate for the output kinds it fits ----------------------------------------------------
def test_gates_apply_only_to_their_output_kinds():
    from jepa_edge.devices.build import accuracy_control_drop
    from jepa_edge.devices.profiles import list_profiles, load_profile
    from jepa_edge.tasks.outputs import TaskOutput

    gates = load_profile("cart-x86").gates  # the profile file is the only source of gate values
    assert set(gates_for_kind(gates, "multilabel")) == {"auc_drop_teacher", "auc_drop_fp32_int8", "cosine",
                                                         "agreement"}  # ECG exactly as before
    assert set(gates_for_kind(gates, "regression")) == LVEF_GATES
    assert set(gates_for_kind(gates, "multiclass")) == VIEW_GATES
    assert gates["mae_increase_teacher"] == 0.5 and gates["mae_increase_fp32_int8"] == 0.2
    assert gates["agreement"] == 0.99 and gates["cosine"] == 0.995
    for name in list_profiles():  # every profile carries the whole table
        assert set(load_profile(name).gates) == set(gates), name
    lvef = TaskOutput("regression", ("LVEF",), mean=55.0, std=10.0, unit="percent")
    assert accuracy_control_drop(lvef, load_profile("cart-x86")) == 0.2  # the build reads the same gate


def test_perturbation_gate_compares_each_stage_with_its_own_clean_score():
    rows = [{"condition": c, "stage": s, "value": v} for c, s, v in [
        ("clean", "student-fp32", 5.0), ("clean", "int8", 5.4),
        ("depth-3", "student-fp32", 6.0), ("depth-3", "int8", 6.5),  # both +1.0 / +1.1
        ("shadow-3", "student-fp32", 5.5), ("shadow-3", "int8", 6.7),  # +0.5 vs +1.3: 0.8 more
    ]]
    value, detail = perturbation_excess(rows, "int8", higher_is_better=False)
    assert value == pytest.approx(0.8) and detail.startswith("worst under shadow-3")
    comps = {"int8": {"student-fp32": {"perturbation_mae_excess": value, "perturbation_mae_excess_detail": detail}}}
    gate = check_gates(comps, {"perturbation_mae_margin": 0.5}, ["int8"], kind="regression")[0]
    assert not gate.passed and "shadow-3" in str(GateFailure([gate])) and "limit <= 0.5" in gate.message()
    accuracy = [dict(r, value=1 - r["value"] / 10) for r in rows]  # accuracy: higher is better
    assert perturbation_excess(accuracy, "int8", higher_is_better=True)[0] == pytest.approx(0.08)
    assert check_gates(comps, {"perturbation_mae_margin": 0.5}, ["int8"], kind="multilabel") == []


# -- clips: each video decoded once, each stage cuts its own ---------------------------------------------------
def test_each_stage_cuts_its_own_clips_spread_over_the_video(echonet):
    video = read_video(sorted((echonet / "Videos").glob("*.avi"))[0])
    teacher = EchoPreprocessing(frames=16, fps=8.0, size=64)
    student = EchoPreprocessing(frames=FRAMES, fps=FPS, size=SIZE)
    assert stage_clips(video, teacher, 3).shape == (3, 3, 16, 64, 64)
    assert stage_clips(video, student, 3).shape == (3, 3, FRAMES, SIZE, SIZE)
    starts = student.clip_starts(video.num_frames, video.fps, 3, video.path)
    assert starts[0] == 0 and starts[-1] == student.max_start(video.num_frames, video.fps)
    assert student.clip_starts(video.num_frames, video.fps, 1, video.path) == [
        student.max_start(video.num_frames, video.fps) // 2]
    with pytest.raises(RecordError, match="clip too short"):
        EchoPreprocessing(frames=32, fps=4.0, size=SIZE).clip_starts(video.num_frames, video.fps, 3, video.path)


# -- LVEF on a cart-cpu bundle (NNCF INT8 OpenVINO IR) -------------------------------------------------------------
def test_faithful_cart_bundle_passes_every_lvef_gate(ef_run):
    result, _ = ef_run
    assert result.passed, [g.message() for g in result.failures]
    assert result.kind == "regression" and result.gate_source == "device profile 'cart-x86' (the bundle's target)"
    assert result.data["split"] == "test" and result.data["videos"] == 10 and result.data["clips_per_video"] == 3
    assert result.data["synthetic"] is True
    int8 = [g for g in result.gate_results if g.stage == "student-int8-openvino"]
    assert {g.gate for g in int8} == LVEF_GATES and all(g.passed for g in int8)
    assert set(result.stages) == {"teacher-fp32", "student-fp32", "student-int8-openvino",
                                  "student-fp32-onnxruntime", "student-fp32-openvino"}
    for m in result.metrics.values():  # MAE and bias with bootstrap CIs, every stage
        assert m["mae_ci"][0] <= m["mae"] <= m["mae_ci"][1] and m["bias_ci"][0] <= m["bias"] <= m["bias_ci"][1]
    same = result.comparisons["student-fp32"]["teacher"]  # teacher and student are one model
    assert same["mae_diff"] == 0.0 and same["mae_diff_ci"] == [0.0, 0.0] and same["cosine_mean"] is None
    comp = result.comparisons["student-int8-openvino"]["student-fp32"]
    lo, hi = comp["mae_diff_ci"]
    assert lo <= comp["mae_diff"] <= hi and abs(comp["mae_diff"]) < 0.2
    assert comp["cosine_mean"] >= 0.995 and comp["mean_abs_value_diff"] < 1.0
    fp32_ov = result.comparisons["student-fp32-openvino"]["student-fp32"]  # pinned f32: equal to torch
    assert fp32_ov["max_abs_value_diff"] < 1e-3 and fp32_ov["cosine_mean"] > 0.99999
    conditions = {r["condition"] for r in result.sweep}
    assert conditions == {"clean", "depth-1", "depth-2", "depth-3", "shadow-1", "shadow-2", "shadow-3"}
    swept = {r["stage"] for r in result.sweep if r["condition"] == "shadow-3"}
    assert swept == {"teacher-fp32", "student-fp32", "student-int8-openvino"}
    clean = {r["stage"]: r["value"] for r in result.sweep if r["condition"] == "clean"}
    assert clean["student-int8-openvino"] == pytest.approx(result.metrics["student-int8-openvino"]["mae"])


def test_lvef_report_goes_into_the_bundle_with_bland_altman(ef_run, ef_cart_bundle):
    from jepa_edge.bundle import open_bundle, verify_bundle

    result, out = ef_run
    bundle = open_bundle(ef_cart_bundle)
    assert bundle.manifest["parity"] == {"report": "reports/parity.json", "passed": True}
    doc = json.loads(bundle.file("report-json").read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert doc["passed"] is True and doc["output"]["kind"] == "regression"
    assert set(doc["regression"]) == {"LVEF: student-int8-openvino vs student-fp32",
                                      "LVEF: student-int8-openvino vs teacher-fp32"}
    assert doc["data"]["preprocessing"]["teacher-fp32"]["size"] == SIZE
    html = bundle.file("report-html").read_text()
    assert_self_contained_html(bundle.file("report-html"), min_images=4)
    assert 'alt="Bland-Altman LVEF: student-int8-openvino vs student-fp32"' in html
    assert 'alt="Bland-Altman LVEF: student-int8-openvino vs teacher-fp32"' in html
    assert "Synthetic videos" in html
    assert (out / "parity.html").read_text() == html
    assert verify_bundle(ef_cart_bundle).ok


def corrupt_openvino_int8(bundle: Path) -> bytes:
    """The INT8 IR's weights with its FIRST int8 constant (the tubelet embedding) scrambled: rows reversed, sign
    flipped, as a bad flash or a mis-ordered export would leave it."""
    from jepa_edge.bundle import open_bundle

    opened = open_bundle(bundle)
    found = re.search(r'element_type="i8" shape="([^"]+)" offset="(\d+)" size="(\d+)"',
                      opened.file("openvino-int8-xml").read_text())
    assert found, "no int8 constant in the INT8 IR"
    shape = tuple(int(v) for v in found.group(1).split(","))
    offset, size = int(found.group(2)), int(found.group(3))
    data = bytearray(opened.file("openvino-int8-bin").read_bytes())
    weight = np.frombuffer(bytes(data[offset : offset + size]), dtype=np.int8).reshape(shape)
    data[offset : offset + size] = np.clip(-weight[::-1].astype(np.int16), -127, 127).astype(np.int8).tobytes()
    return bytes(data)


def test_corrupted_openvino_int8_weight_fails_naming_stage_and_metric(ef_cart_bundle, models, echonet, tmp_path):
    from typer.testing import CliRunner

    from jepa_edge.bundle import open_bundle, update_bundle
    from jepa_edge.cli import app

    broken = tmp_path / "broken"
    shutil.copytree(ef_cart_bundle, broken)
    update_bundle(broken, add_files={"openvino/model_int8.bin": (corrupt_openvino_int8(broken), "openvino-int8-bin")})
    run = CliRunner().invoke(app, ["parity", "--teacher", str(models["ef"]), "--bundle", str(broken), "--data",
                                   str(echonet), "--n-boot", "50", "--no-sweep", "--threads", "1",
                                   "--out", str(tmp_path / "report")])
    assert run.exit_code == 1, run.output
    text = " ".join(run.output.split())
    assert "gate failed: stage 'student-int8-openvino': cosine (cosine_mean vs student-fp32)" in text
    assert "gate failed: stage 'student-int8-openvino': value_diff_fp32_int8 (mean_abs_value_diff vs " \
           "student-fp32)" in text and "limit <= 1 FAILED" in text
    assert "stage 'bundle golden vectors': golden" in text  # the golden vectors caught it too
    doc = json.loads((tmp_path / "report" / "parity.json").read_text())
    assert doc["passed"] is False and doc["stages"]["student-fp32"]["info"]["backend"] == "onnxruntime"
    assert doc["gates_not_applied"] == {"perturbation_mae_margin": "no perturbation sweep in this run"}
    assert open_bundle(broken).manifest["parity"]["passed"] is False


# -- view (one-of-N) on a jetson bundle (Q/DQ ONNX on onnxruntime) --------------------------------------------------
def test_view_jetson_bundle_passes_and_a_corrupted_qdq_stage_fails(models, view_jetson_bundle, echonet, tmp_path):
    from jepa_edge.bundle import open_bundle

    bad = tmp_path / "model.qdq.onnx"
    corrupt_first_weight(open_bundle(view_jetson_bundle).file("onnx-qdq"), bad)
    result = run_parity(models["view"], view_jetson_bundle, echonet, student=models["view"],
                        cfg=small_cfg(out=str(tmp_path / "report"), write_to_bundle=False),
                        extra_stages={"student-int8-corrupted": bad})
    assert result.kind == "multiclass" and result.classes == ["A2C", "A4C", "PLAX"]
    faithful = [g for g in result.gate_results if g.stage == "student-int8-onnxruntime"]
    assert {g.gate for g in faithful} == VIEW_GATES and all(g.passed for g in faithful)
    comp = result.comparisons["student-int8-onnxruntime"]["student-fp32"]
    assert comp["agreement"] == 1.0 and set(comp["per_class_agreement"]) <= set(result.classes)
    assert comp["cosine_mean"] >= 0.995
    failed = {g.stage for g in result.failures}
    assert failed == {"student-int8-corrupted"}
    with pytest.raises(GateFailure, match=r"stage 'student-int8-corrupted': cosine \(cosine_mean vs student-fp32\)"):
        result.raise_for_gates()
    assert result.golden["ok"]
    m = result.metrics["teacher-fp32"]
    assert m["accuracy_ci"][0] <= m["accuracy"] <= m["accuracy_ci"][1]
    assert sum(result.data["truth"].values()) == 10
    html = (tmp_path / "report" / "parity.html").read_text()
    assert 'alt="per-class accuracy"' in html and 'alt="metric vs perturbation"' in html
    assert_self_contained_html(tmp_path / "report" / "parity.html", min_images=2)


# -- teacher and student with different preprocessing ------------------------------------------------------------
def test_teacher_and_student_each_use_their_own_preprocessing(models, echonet, tmp_path):
    """A 48 px / 8-frame teacher against a 32 px / 4-frame student (another model): each stage cuts its clips from
    the same decoded videos; cosine is reported only within the student's embedding space."""
    small = _classifier(_encoder(tmp_path / "small-encoder", 4, 2.0, 32), echonet, "ef", tmp_path / "small")
    result = run_parity(models["ef"], None, echonet, student=small, extra_stages={"student-int8-standin": small},
                        cfg=small_cfg(sweep=False, limit=6))
    pre = result.data["preprocessing"]
    assert (pre["teacher-fp32"]["size"], pre["teacher-fp32"]["frames"]) == (SIZE, FRAMES)
    assert (pre["student-fp32"]["size"], pre["student-fp32"]["frames"]) == (32, 4)
    assert result.data["videos"] == 6 and result.golden is None
    assert result.comparisons["student-fp32"]["teacher"]["cosine_mean"] is None
    standin = result.comparisons["student-int8-standin"]["student-fp32"]
    assert standin["mae_diff"] == 0.0 and standin["cosine_mean"] == pytest.approx(1.0)
    assert {g.gate for g in result.gate_results} == LVEF_GATES - {"perturbation_mae_margin"}


# -- clear errors --------------------------------------------------------------------------------------------------
def _ecg_classifier(out: Path) -> Path:
    from jepa_edge.data.preprocess import EcgPreprocessing
    from jepa_edge.models.checkpoint import encoder_spec, save_model
    from jepa_edge.models.ecg import EcgEncoder, EcgEncoderSpec
    from jepa_edge.models.heads import Classifier, LinearHead

    encoder = EcgEncoder(EcgEncoderSpec(size="vit-tiny"))
    labels = ["NORM", "MI", "STTC", "CD", "HYP"]
    return save_model(out, Classifier(encoder, LinearHead(encoder.dim, 5)),
                      {"kind": "classifier", "encoder": encoder_spec(encoder),
                       "head": {"kind": "linear", "dim": encoder.dim, "num_outputs": 5}, "labels": labels,
                       "thresholds": [0.5] * 5, "task": "ptbxl-super", "preprocessing": EcgPreprocessing().to_dict()})


def test_bad_inputs_are_named(models, ef_cart_bundle, echonet, tmp_path):
    from typer.testing import CliRunner

    from jepa_edge.cli import app

    ef, view = models["ef"], models["view"]
    with pytest.raises(DataError, match="no EchoNet-Dynamic folder"):
        run_parity(ef, None, tmp_path, student=ef)
    no_test = tmp_path / "no-test"
    no_test.mkdir()
    rows = (echonet / "FileList.csv").read_text().splitlines()
    (no_test / "FileList.csv").write_text("\n".join(r for r in rows if not r.endswith(("TEST,A2C", "TEST,A4C",
                                                                                         "TEST,PLAX"))) + "\n")
    with pytest.raises(DataError, match="no TEST videos"):
        run_parity(ef, None, no_test, student=ef)
    with pytest.raises(ParityError, match="split 'holdout'"):
        run_parity(ef, None, echonet, student=ef, cfg=ParityConfig(split="holdout"))
    with pytest.raises(ParityError, match=r"the student predicts one-of-N A2C, A4C, PLAX, the teacher regression "
                                          r"LVEF \(percent\): not the same task"):
        run_parity(ef, None, echonet, student=view)
    ecg = _ecg_classifier(tmp_path / "ecg")
    with pytest.raises(ParityError, match="an echo bundle, but the teacher .* is an ecg model"):
        run_parity(ecg, ef_cart_bundle, echonet)
    run = CliRunner().invoke(app, ["parity", "--teacher", str(ecg), "--bundle", str(ef_cart_bundle),
                                   "--data", str(echonet)])
    assert run.exit_code == 2, run.output
    errors = [line for line in run.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "is an ecg model" in errors[0] and errors[0].endswith("same modality and task")
