"""`jepa-edge demo --quick` on real PTB-XL and on the synthetic fallback: every stage once, end to end."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jepa_edge.bundle import open_bundle, verify_bundle
from jepa_edge.cli import app
from jepa_edge.cli.bench import bench_bundle
from jepa_edge.pipeline import DemoConfig, run_demo


@pytest.fixture(scope="module")
def demo_run(ptbxl_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("demo")
    return run_demo(DemoConfig.quick(data=str(ptbxl_dir), out=str(out)), say=lambda msg: None)


def test_demo_bundles_verify_and_pass_parity_gates(demo_run) -> None:
    assert not demo_run.synthetic
    assert demo_run.verified == {"cart-cpu": True, "jetson": True}
    for bundle in demo_run.bundles.values():
        assert verify_bundle(bundle).ok
    assert demo_run.parity_passed, demo_run.failures
    assert set(open_bundle(demo_run.bundles["cart-cpu"]).roles) >= {"openvino-int8-xml", "openvino-fp32-xml"}
    assert "onnx-qdq" in open_bundle(demo_run.bundles["jetson"]).roles


def test_demo_report_and_stream(demo_run) -> None:
    html = demo_run.report.read_text()
    images = []

    class Images(HTMLParser):
        def handle_starttag(self, tag, attrs):  # noqa: D102
            if tag == "img":
                images.append(dict(attrs)["src"])

    Images().feed(html)
    assert images and all(src.startswith("data:image/png;base64,") for src in images)
    acc = demo_run.stream_summary["accounting"]
    assert acc["ok"] and acc["samples_in"] == acc["samples_consumed"] == 3 * 5000
    summary = demo_run.stream_summary  # 30 s of test records, 10 s window, 1 s hop: 21 windows, each accounted
    assert summary["classified"] + summary["flagged_windows"] == 21
    # the demo splices three patients' records back to back; a window may be flagged only where it spans a splice
    # (a step between two recordings is an artefact to the quality check, as it would be on a device)
    events = [json.loads(line) for line in
              (Path(demo_run.bundles["cart-cpu"]).parent / "stream-events.jsonl").read_text().splitlines()]
    flagged = [e for e in events if e.get("type") == "window" and e["quality"] == "flagged"]
    assert len(flagged) == summary["flagged_windows"]
    assert all(any(e["t_start"] < join < e["t_end"] for join in (10.0, 20.0)) for e in flagged), flagged
    saved = json.loads((Path(demo_run.bundles["cart-cpu"]).parent / "demo.json").read_text())
    assert set(saved["result"]["timings"]) >= {"pretrain", "probe", "distill", "parity", "stream"}


def test_demo_echo_stage_builds_verifies_and_passes_lvef_parity(demo_run) -> None:
    echo = demo_run.echo
    assert echo is not None and echo.verified and echo.parity_passed, echo.failures
    bundle = open_bundle(echo.bundle)
    assert bundle.modality == "echo" and bundle.output.kind == "regression"
    assert {"openvino-int8-xml", "openvino-fp32-xml"} <= set(bundle.roles)
    assert echo.report is not None and echo.report.is_file()
    assert len(echo.lvef_mae) >= 3 and all(0 < v < 50 for v in echo.lvef_mae.values())
    assert demo_run.passed


def test_bench_times_every_local_artefact(demo_run) -> None:
    rows = bench_bundle(demo_run.bundles["jetson"], runs=3)
    assert {r["role"] for r in rows} >= {"onnx-fp32", "onnx-qdq"}
    assert all(r["p50_ms"] > 0 for r in rows if "skipped" not in r)


def test_demo_cli_refuses_a_folder_without_ptbxl(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["demo", "--quick", "--data", str(tmp_path), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "no PTB-XL folder" in res.output


def test_without_real_data_the_demo_uses_a_loudly_synthetic_set(tmp_path: Path, monkeypatch) -> None:
    from jepa_edge.data.ptbxl import PtbXl
    from jepa_edge.data.synthetic_ecg import is_synthetic
    from jepa_edge.pipeline import resolve_demo_data

    monkeypatch.setenv("JEPA_EDGE_DATA", str(tmp_path / "nothing-here"))
    said: list[str] = []
    data, synthetic = resolve_demo_data(DemoConfig(out=str(tmp_path), synthetic_records=30), said.append)
    assert synthetic and is_synthetic(data) and "SYNTHETIC" in said[0]
    ptbxl = PtbXl(data)
    train = ptbxl.load("superdiagnostic", split="train")
    classes = ("NORM", "T_INV", "WIDE_QRS")  # its own names: not PTB-XL's superclasses, nothing passes for one
    assert train.classes == classes and train.signals.shape[1:] == (12, 5000)
    assert train.labels.sum(axis=1).tolist() == [1.0] * len(train)  # one morphology class per record
    # rate is a nuisance, not the label: every class holds slow (< 60 bpm) and fast (> 100 bpm) sinus rhythm
    table = ptbxl.table.assign(code=[next(iter(c)) for c in ptbxl.table["scp_codes"]])
    for code, rates in table.groupby("code")["heart_rate_bpm"]:
        assert rates.min() < 60 and rates.max() > 100, (code, sorted(set(rates)))
    again, _ = resolve_demo_data(DemoConfig(out=str(tmp_path), synthetic_records=30), said.append)
    assert again == data  # cached: the second demo does not simulate again
    # the build calibrates on it with the classifier's own labels (once refused as "not PTB-XL classes")
    from jepa_edge.data.preprocess import EcgPreprocessing
    from jepa_edge.quantize import build_calibration_set

    calib = build_calibration_set(EcgPreprocessing(), data, windows=12, labels=list(classes))
    assert calib.windows.shape == (12, 12, 5000) and calib.classes == classes
    assert calib.labels.sum(axis=0).min() >= 1  # stratified: every class drawn


@pytest.mark.heavy
def test_synthetic_fallback_demo_passes_every_gate(tmp_path: Path, monkeypatch) -> None:
    """With no data at all the demo's INT8 bundles must keep the FP32 decisions (agreement once failed here).

    Heavy (~4 min on 2 cores): a second whole demo. The default run covers every stage once with the real-data
    demo above, and the synthetic set itself (simulation, labels, calibration) in the test before this one."""
    monkeypatch.setenv("JEPA_EDGE_DATA", str(tmp_path / "nothing-here"))
    run = run_demo(DemoConfig.quick(out=str(tmp_path / "runs"), echo="off"), say=lambda msg: None)  # echo: above
    assert run.synthetic and run.echo is None
    assert run.verified == {"cart-cpu": True, "jetson": True}
    assert run.parity_passed, run.failures
    assert run.stream_summary["accounting"]["ok"]
