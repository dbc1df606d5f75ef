"""The echo half of the chain on SYNTHETIC clips (known EF and view; not patient data): an echo teacher is
distilled into a smaller video student through the same trainer as ECG, then quantized and packaged for the
ultrasound cart (NNCF INT8 IR) and for Jetson (Q/DQ ONNX), with the echo preprocessing in the manifest and the
C header. Tiny models (vit-tiny, 8 frames of 48 px) so it runs on one shared core."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from jepa_edge.bundle import open_bundle, verify_bundle
from jepa_edge.data.echo import EchoPreprocessing
from jepa_edge.data.errors import DataError
from jepa_edge.data.synthetic_echo import SyntheticEchoConfig, write_synthetic_echonet
from jepa_edge.devices.build import build_bundle
from jepa_edge.devices.profiles import load_profile
from jepa_edge.distill import DistillConfig, DistillError, distill
from jepa_edge.models.checkpoint import load_classifier, save_model
from jepa_edge.models.video import VideoEncoder, VideoEncoderSpec
from jepa_edge.models.vjepa_import import import_vjepa, to_vjepa_state
from jepa_edge.quantize.pipeline import quantize_classifier
from jepa_edge.tasks.echo import EchoProbeConfig, probe_echonet
from jepa_edge.tasks.outputs import TaskOutput

PRE = EchoPreprocessing(frames=8, fps=4.0, size=48)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def echonet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_echonet(tmp_path_factory.mktemp("echo") / "echonet", 24, 0, "avi",
                                   SyntheticEchoConfig(size=48, seconds=2.25))


def _teacher_encoder(out: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    encoder = VideoEncoder(VideoEncoderSpec(size="vit-tiny", frames=PRE.frames, image_size=PRE.size))
    return save_model(out, encoder, {"kind": "encoder", "modality": "echo", "encoder": encoder.spec.to_dict(),
                                     "preprocessing": PRE.to_dict()})


@pytest.fixture(scope="module")
def ef_teacher(echonet: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("teacher")
    run = probe_echonet(_teacher_encoder(root / "encoder"), echonet, EchoProbeConfig(task="ef", epochs=60),
                        root / "classifier")
    return run.out


def _distill(teacher: Path, echonet: Path, out: Path, **kw) -> Path:
    cfg = DistillConfig(teacher=str(teacher), student="vit-tiny", data=str(echonet), out=str(out), steps=20,
                        batch_size=4, checkpoint_every=10, log_every=5, **kw)
    return distill(cfg)


@pytest.fixture(scope="module")
def ef_student(ef_teacher: Path, echonet: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _distill(ef_teacher, echonet, tmp_path_factory.mktemp("student"), frames=4, image_size=32)


def test_student_sees_fewer_frames_and_learns_the_teachers_tokens(ef_student: Path, ef_teacher: Path) -> None:
    model, meta = load_classifier(ef_student)
    report = json.loads((ef_student.parent / "distill_metrics.json").read_text())
    assert report["feature_loss_end"] < report["feature_loss_start"]
    assert meta["encoder"]["frames"] == 4 and meta["encoder"]["image_size"] == 32
    student_pre = EchoPreprocessing.from_dict(meta["preprocessing"])
    assert (student_pre.frames, student_pre.size) == (4, 32)
    assert student_pre.clip_seconds * student_pre.fps == pytest.approx(4)
    assert (student_pre.frames - 1) / student_pre.fps == pytest.approx((PRE.frames - 1) / PRE.fps)  # same span
    output = TaskOutput.from_meta(meta)
    _, teacher_meta = load_classifier(ef_teacher)
    assert output == TaskOutput.from_meta(teacher_meta) and output.kind == "regression" and output.unit == "percent"
    held_out = report["held_out"]
    assert held_out["metric"] == "lvef_mae" and held_out["records"] >= 3
    assert np.isfinite(held_out["student"]) and np.isfinite(held_out["teacher"])
    logits, emb = model(torch.zeros(2, 3, 4, 32, 32))
    assert logits.shape == (2, 1) and emb.shape == (2, 192)


def test_echo_distillation_resumes_exactly(ef_teacher: Path, echonet: Path, tmp_path: Path) -> None:
    straight = _distill(ef_teacher, echonet, tmp_path / "a", frames=4, image_size=32)
    cfg = DistillConfig(teacher=str(ef_teacher), student="vit-tiny", data=str(echonet), out=str(tmp_path / "b"),
                        steps=20, batch_size=4, checkpoint_every=10, log_every=5, frames=4, image_size=32)
    distill(cfg, stop_after=10)
    resumed = distill(cfg)
    a, _ = load_classifier(straight)
    b, _ = load_classifier(resumed)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0, msg=name)


def test_headless_vjepa_layout_teacher_gets_a_probed_student(echonet: Path, tmp_path: Path) -> None:
    torch.manual_seed(3)
    upstream = VideoEncoder(VideoEncoderSpec(size="vit-tiny", frames=8, image_size=48, bias=True, norm_eps=1e-6))
    state = to_vjepa_state(upstream)
    torch.save({"encoder": state, "target_encoder": state}, tmp_path / "vjepa.pt")
    imported, _ = import_vjepa(tmp_path / "vjepa.pt", tmp_path / "imported", frames=8, image_size=48)
    student = _distill(imported, echonet, tmp_path / "student", task="ef", frames=4)
    model, meta = load_classifier(student)
    assert meta["distill"]["head"] == "probe" and meta["output"]["kind"] == "regression"
    assert meta["task"] == "lvef-regression" and meta["target"]["unit"] == "percent"
    assert np.isfinite(model(torch.zeros(1, 3, 4, 48, 48))[0].detach().numpy()).all()
    with pytest.raises(DistillError, match="task ef or view"):
        _distill(imported, echonet, tmp_path / "bad", task="ptbxl-super")


def test_echo_student_options_are_checked(ef_teacher: Path, echonet: Path, tmp_path: Path) -> None:
    with pytest.raises(DistillError, match=r"\['leads'\] do not apply to echo"):
        _distill(ef_teacher, echonet, tmp_path / "a", leads=("II",))
    with pytest.raises(DistillError, match="at most the teacher's 8 frames x 48 px"):
        _distill(ef_teacher, echonet, tmp_path / "b", image_size=64)
    with pytest.raises(DistillError, match="does not tile"):
        _distill(ef_teacher, echonet, tmp_path / "c", frames=5)


def test_cart_bundle_is_reproducible_verifies_and_carries_the_clip_constants(ef_student: Path, echonet: Path,
                                                                              tmp_path: Path) -> None:
    first = build_bundle(ef_student, "cart-cpu", tmp_path / "one", data=echonet, calibration_windows=16)
    second = build_bundle(ef_student, "cart-cpu", tmp_path / "two", data=echonet, calibration_windows=16)
    one, two = (json.loads((b / "manifest.json").read_text()) for b in (first, second))
    # everything but `$.budget` (latency and memory measured on this machine at build time) is the same in both
    budgets = one.pop("budget"), two.pop("budget")
    assert one == two
    assert all(b["measured"] and b["artefact"] == "openvino-int8-xml" for b in budgets)
    # within cart-x86's latency and memory budgets; the peak is the runtime's own (~120 MB), not the builder's
    assert all(b["passed"] and b["memory_mb"]["passed"] for b in budgets)
    report = verify_bundle(first)
    assert report.ok, report.problems
    golden = [c for c in report.checks if c.kind == "golden"]
    assert {c.subject.split(" (")[1].rstrip(")") for c in golden} >= {"openvino-int8-xml", "onnx-fp32"}
    assert all(c.ok for c in golden)
    bundle = open_bundle(first)
    assert bundle.modality == "echo" and bundle.preprocessing == EchoPreprocessing.from_dict(
        load_classifier(ef_student)[1]["preprocessing"])
    manifest = bundle.manifest
    assert manifest["io"]["inputs"][0]["name"] == "clip" and manifest["io"]["inputs"][0]["shape"] == [
        "batch", 3, 4, 32, 32]
    assert manifest["model"]["output"]["kind"] == "regression" and manifest["thresholds"] == []
    assert manifest["calibration"]["windows"] == 16
    inputs, expected = bundle.golden()
    assert inputs.shape[1:] == (3, 4, 32, 32)
    values = bundle.output.values(bundle.engine().outputs(inputs)["logits"])
    np.testing.assert_allclose(values, bundle.output.values(expected["logits"]), atol=0.05 * bundle.output.std)
    from jepa_edge.cli.bench import bench_bundle

    timed = {row["role"]: row for row in bench_bundle(first, runs=2)}
    assert timed["openvino-int8-xml"]["p50_ms"] > 0 and timed["onnx-fp32"]["backend"] == "onnxruntime"
    header = (first / "include" / "jepa_edge_model.h").read_text()
    for line in ("#define JEPA_EDGE_CLIP_FRAMES 4", "#define JEPA_EDGE_CLIP_SIZE 32",
                 "#define JEPA_EDGE_OUTPUT_KIND 2", '#define JEPA_EDGE_MODALITY "echo"'):
        assert line in header
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler on this machine")
    src = tmp_path / "check.c"
    src.write_text('#include "jepa_edge_model.h"\n#include <stdio.h>\nint main(void){printf("%d %.17g %.17g\\n",'
                   " JEPA_EDGE_CLIP_FRAMES, JEPA_EDGE_OUTPUT_MEAN, jepa_edge_clip_std[2]);return 0;}\n")
    subprocess.run([cc, "-std=c99", "-Wall", "-Werror", "-I", str(first / "include"), str(src), "-o",
                    str(tmp_path / "check")], check=True)
    frames, mean, std = subprocess.run([str(tmp_path / "check")], check=True, capture_output=True,
                                       text=True).stdout.split()
    assert int(frames) == 4 and float(mean) == bundle.output.mean and float(std) == PRE.std[2]


def test_jetson_bundle_and_cli_on_an_echo_view_model(echonet: Path, tmp_path: Path) -> None:
    from jepa_edge.cli import app

    run = probe_echonet(_teacher_encoder(tmp_path / "encoder", seed=1), echonet,
                        EchoProbeConfig(task="view", epochs=30), tmp_path / "view")
    runner = CliRunner()
    res = runner.invoke(app, ["build", str(run.out), "--target", "jetson", "--out", str(tmp_path / "jetson"),
                              "--data", str(echonet), "--windows", "16"])
    assert res.exit_code == 0, res.output
    bundle = open_bundle(tmp_path / "jetson")
    assert bundle.output.kind == "multiclass" and set(bundle.output.names) <= {"A4C", "A2C", "PLAX"}
    assert verify_bundle(tmp_path / "jetson").ok
    res = runner.invoke(app, ["quantize", str(run.out), "--out", str(tmp_path / "int8"), "--data", str(echonet),
                              "--windows", "16"])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "int8" / "quantize_report.json").read_text())
    assert report["parity"]["model_int8.xml"]["embedding"]["cosine"] >= load_profile("cart-x86").gates["cosine"]
    res = runner.invoke(app, ["build", str(run.out), "--target", "cart-cpu", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "EchoNet-Dynamic layout folder" in res.output


def test_accuracy_control_judges_lvef_mae(ef_student: Path, echonet: Path, tmp_path: Path) -> None:
    report = quantize_classifier(ef_student, tmp_path, data=echonet, windows=16, accuracy_control=True)
    control = report["accuracy_control"]
    assert control["metric"] == "lvef_mae" and control["max_drop"] == 0.2
    assert control["int8"] - control["fp32"] <= 0.2 + 1e-9  # MAE may rise by at most 0.2 EF points
    with pytest.raises(DataError, match="no TEST videos|no VAL videos|FileList.csv missing"):
        quantize_classifier(ef_student, tmp_path / "b", data=tmp_path, windows=4)


def test_streaming_refuses_an_echo_bundle_with_a_clear_error(ef_student: Path, echonet: Path, tmp_path: Path) -> None:
    from jepa_edge.devices.stream import StreamClassifier, StreamError

    bundle = build_bundle(ef_student, "jetson", tmp_path / "b", data=echonet, calibration_windows=8)
    with pytest.raises(StreamError, match="echo bundle with a regression output.*echo infer"):
        StreamClassifier.open(bundle)
    with pytest.raises(StreamError, match="an echo model; streaming classifies ECG"):
        StreamClassifier.open(ef_student)
