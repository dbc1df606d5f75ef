"""Accuracy parity on real PTB-XL records (folds 9+10): gates pass for a faithful student, fail (naming the
stage) for a broken one, the bundle's golden vectors are re-run, and the HTML report is self-contained."""

from __future__ import annotations

import base64
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from jepa_edge.devices.profiles import ProfileError, load_profile
from jepa_edge.parity import (
    GateConfigError,
    GateFailure,
    ParityConfig,
    ParityError,
    check_gates,
    gates_for_kind,
    parse_gate_flags,
    resolve_gates,
    run_parity,
)
from jepa_edge.parity.sweep import SweepAxis

CART_GATES = load_profile("cart-x86").gates  # the gate values: the profile file is their only source

# small enough for 2 shared cores, still real records and real bootstrap intervals
SMALL_SWEEP = (SweepAxis("noise", (6.0,), "SNR dB"), SweepAxis("lead-off", ("II",), "lead"))


def small_cfg(**kw) -> ParityConfig:
    base = {"limit": 48, "n_boot": 100, "latency_runs": 2, "sweep_axes": SMALL_SWEEP}
    return ParityConfig(**(base | kw))


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []
        self.tags: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append(tag)
        attrs = dict(attrs)
        if tag == "img":
            self.sources.append(attrs.get("src", ""))
        if tag in ("script", "link") or (tag != "img" and attrs.get("src")):
            self.external.append(tag)


def assert_self_contained_html(path: Path, min_images: int = 4) -> None:
    parser = _Images()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    assert "table" in parser.tags
    assert not parser.external
    assert len(parser.sources) >= min_images
    for src in parser.sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")


def corrupted_copy(model_dir: Path, out: Path) -> Path:
    """A copy of a classifier folder with ONE weight tensor corrupted (a 'bit-rot' INT8 stand-in on disk)."""
    shutil.copytree(model_dir, out)
    weights = load_file(out / "model.safetensors")
    name = next(k for k in sorted(weights) if k.endswith("weight") and weights[k].ndim >= 2)
    weights[name] = -7.0 * weights[name][..., ::-1].copy()
    save_file(weights, out / "model.safetensors")
    meta = json.loads((out / "meta.json").read_text())
    meta.pop("weights_sha256", None)
    (out / "meta.json").write_text(json.dumps(meta))
    return out


# -- gates: pure logic -----------------------------------------------------------------------------------------
def test_gate_precedence_and_bad_values_name_the_flag():
    assert resolve_gates(CART_GATES) == CART_GATES
    gates = resolve_gates(CART_GATES | {"cosine": 0.99, "latency_ms": 5}, parse_gate_flags(["agreement=0.95"]),
                          "cart-x86")
    assert gates == CART_GATES | {"cosine": 0.99, "agreement": 0.95}
    with pytest.raises(GateConfigError, match="unknown gate 'auc'"):
        parse_gate_flags(["auc=0.1"])
    with pytest.raises(GateConfigError, match="expected NAME=VALUE"):
        parse_gate_flags(["cosine"])
    with pytest.raises(GateConfigError, match="needs a number"):
        parse_gate_flags(["cosine=high"])
    with pytest.raises(GateConfigError, match="out of range"):
        parse_gate_flags(["agreement=1.5"])
    with pytest.raises(GateConfigError, match="device profile 'x'"):
        resolve_gates(CART_GATES | {"cosine": "bad"}, profile_name="device profile 'x'")
    with pytest.raises(GateConfigError, match=r"x: gates \['cosine'\] missing"):  # no hidden default value
        resolve_gates({k: v for k, v in CART_GATES.items() if k != "cosine"}, profile_name="x")


def test_gate_failure_message_names_stage_metric_value_and_limit():
    comps = {"student-int8-openvino": {"teacher": {"auc_drop": 0.002},
                                       "student-fp32": {"auc_drop": 0.0125, "cosine_mean": 0.999, "agreement": 1.0}}}
    results = check_gates(comps, CART_GATES, ["student-int8-openvino"])
    failed = [r for r in results if not r.passed]
    assert [r.gate for r in failed] == ["auc_drop_fp32_int8"]
    message = str(GateFailure(failed))
    assert "student-int8-openvino" in message and "auc_drop_fp32_int8" in message
    assert "0.0125" in message and "<= 0.003" in message


# -- stages on real records, no bundle ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def torch_run(ecg_classifier_dir, data_root, tmp_path_factory):
    """Teacher = student (the fixture classifier); one faithful and one corrupted 'INT8' stage, in one run."""
    tmp = tmp_path_factory.mktemp("parity-torch")
    broken = corrupted_copy(ecg_classifier_dir, tmp / "broken")
    result = run_parity(ecg_classifier_dir, None, data_root, student=ecg_classifier_dir,
                        cfg=small_cfg(out=str(tmp / "report")),
                        extra_stages={"student-int8-faithful": ecg_classifier_dir, "student-int8-corrupted": broken})
    return result, tmp / "report"


def test_faithful_stage_passes_every_gate_with_exact_agreement(torch_run):
    result, _ = torch_run
    assert result.data["records"] == 48 and result.data["folds"] == [9, 10]
    faithful = [g for g in result.gate_results if g.stage == "student-int8-faithful"]
    assert {g.gate for g in faithful} == set(gates_for_kind(CART_GATES, "multilabel"))  # AUC, cosine, agreement
    assert all(g.passed for g in faithful)
    comp = result.comparisons["student-int8-faithful"]["student-fp32"]
    assert comp["agreement"] == 1.0 and comp["max_abs_logit_diff"] == 0.0
    assert comp["cosine_mean"] == pytest.approx(1.0)
    assert comp["macro_auc_diff"] == 0.0 and comp["macro_auc_diff_ci"] == [0.0, 0.0]
    teacher = result.metrics["teacher-fp32"]
    lo, hi = teacher["macro_auc_ci"]
    assert 0.5 < teacher["macro_auc"] and lo <= teacher["macro_auc"] <= hi
    assert 0.0 <= teacher["ece"] <= 1.0


def test_corrupted_weight_fails_and_the_error_names_the_stage(torch_run):
    result, _ = torch_run
    assert not result.passed
    failed = {g.stage for g in result.failures}
    assert failed == {"student-int8-corrupted"}
    with pytest.raises(GateFailure) as info:
        result.raise_for_gates()
    message = str(info.value)
    assert "stage 'student-int8-corrupted'" in message and "cosine" in message and "limit >= 0.995" in message
    assert "student-int8-faithful" not in message


def test_report_json_is_strict_and_html_embeds_its_images(torch_run):
    result, out = torch_run
    doc = json.loads((out / "parity.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert doc["passed"] is False and set(doc["stages"]) == set(result.stages)
    kinds = {(r["kind"], r["severity"]) for r in doc["perturbation"]}
    assert kinds == {("clean", None), ("noise", 6.0), ("lead-off", "II")}
    clean = {r["stage"]: r["macro_auc"] for r in doc["perturbation"] if r["kind"] == "clean"}
    assert clean["teacher-fp32"] == pytest.approx(doc["stages"]["teacher-fp32"]["metrics"]["macro_auc"])
    assert all(doc["stages"][s]["latency"]["batch1_median_ms"] > 0 for s in doc["stages"])
    assert_self_contained_html(out / "parity.html")


def test_bad_inputs_are_named(ecg_classifier_dir, data_root, tmp_path):
    with pytest.raises(ParityError, match="needs a student"):
        run_parity(ecg_classifier_dir, None, data_root)
    with pytest.raises(ValueError, match="no PTB-XL table"):
        run_parity(ecg_classifier_dir, None, tmp_path, student=ecg_classifier_dir, cfg=small_cfg())
    other = tmp_path / "other"
    shutil.copytree(ecg_classifier_dir, other)
    meta = json.loads((other / "meta.json").read_text())
    meta["labels"] = list(reversed(meta["labels"]))
    (other / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ParityError, match="differ from the teacher's"):
        run_parity(ecg_classifier_dir, None, data_root, student=other, cfg=small_cfg())


# -- the real chain: build_bundle -> parity (golden re-run, report written into the bundle) ---------------------
def corrupt_first_weight(src: Path, dst: Path) -> str:
    """Write a copy of an INT8 Q/DQ ONNX whose FIRST weight tensor in graph order (the patch embedding every input
    passes through; int8 or float, whichever the graph holds) is scrambled: rows reversed, sign flipped, as a bad
    flash or a mis-ordered weight export would leave it. Returns the initializer's name."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    inits = {i.name: i for i in model.graph.initializer}
    dequant_of = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "DequantizeLinear"
                  and n.input[0] in inits}
    first = next(n for n in model.graph.node if n.op_type in ("Conv", "MatMul", "Gemm")
                 and (n.input[1] in inits or n.input[1] in dequant_of))
    name = dequant_of.get(first.input[1], first.input[1])
    weight = numpy_helper.to_array(inits[name])
    if weight.dtype == np.int8:
        scrambled = np.clip(-weight[::-1].astype(np.int16), -127, 127).astype(np.int8)
    else:
        scrambled = -weight[::-1].copy()
    inits[name].CopyFrom(numpy_helper.from_array(scrambled, name))
    onnx.save(model, str(dst))
    return name


@pytest.fixture(scope="module")
def jetson_bundle(ecg_classifier_dir, data_root, tmp_path_factory) -> Path:
    from jepa_edge.devices.build import build_bundle

    out = tmp_path_factory.mktemp("parity-bundle") / "bundle"
    return build_bundle(ecg_classifier_dir, "jetson", out, data=data_root, calibration_windows=32)


def test_built_bundle_passes_and_gets_the_report(jetson_bundle, ecg_classifier_dir, data_root):
    from jepa_edge.bundle import open_bundle, verify_bundle

    result = run_parity(ecg_classifier_dir, jetson_bundle, data_root, student=ecg_classifier_dir,
                        cfg=small_cfg(sweep=False))
    assert result.passed, [g.message() for g in result.failures]
    assert "student-int8-onnxruntime" in result.gated_stages
    assert result.golden["ok"] and any(c["kind"] == "golden" and c["ok"] for c in result.golden["checks"])
    gate_names = {(g.stage, g.gate) for g in result.gate_results}
    assert ("bundle golden vectors", "golden") in gate_names
    bundle = open_bundle(jetson_bundle)
    assert bundle.manifest["parity"] == {"report": "reports/parity.json", "passed": True}
    doc = json.loads(bundle.file("report-json").read_text())
    assert doc["passed"] is True and doc["comparisons"]["student-int8-onnxruntime"]["student-fp32"]["agreement"] >= 0.99
    assert_self_contained_html(bundle.file("report-html"), min_images=3)
    assert verify_bundle(jetson_bundle).ok  # the update re-hashed everything


def test_bundle_with_a_corrupted_int8_weight_fails_naming_the_stage(jetson_bundle, ecg_classifier_dir, data_root,
                                                                    tmp_path):
    from typer.testing import CliRunner

    from jepa_edge.bundle import open_bundle, update_bundle
    from jepa_edge.cli import app

    broken = tmp_path / "broken-bundle"
    shutil.copytree(jetson_bundle, broken)
    bad_onnx = tmp_path / "model.qdq.onnx"
    corrupt_first_weight(open_bundle(broken).file("onnx-qdq"), bad_onnx)
    update_bundle(broken, add_files={"model.qdq.onnx": (bad_onnx, "onnx-qdq")})

    run = CliRunner().invoke(app, ["parity", "--teacher", str(ecg_classifier_dir), "--bundle", str(broken),
                                   "--data", str(data_root), "--limit", "32", "--n-boot", "50", "--no-sweep",
                                   "--out", str(tmp_path / "report")])
    assert run.exit_code == 1, run.output
    text = " ".join(run.output.split())
    assert "gate failed: stage 'student-int8-onnxruntime'" in text
    # the golden vectors were re-run in the same call and caught it too
    assert "stage 'bundle golden vectors': golden" in text and "model.qdq.onnx (onnx-qdq)" in text
    doc = json.loads((tmp_path / "report" / "parity.json").read_text())
    assert doc["passed"] is False and doc["golden"]["ok"] is False
    # with no student folder, the bundle's FP32 ONNX stood in for the student FP32
    assert doc["stages"]["student-fp32"]["info"]["backend"] == "onnxruntime"
    assert open_bundle(broken).manifest["parity"]["passed"] is False


def test_cli_rejects_a_bad_gate_flag(ecg_classifier_dir, data_root):
    from typer.testing import CliRunner

    from jepa_edge.cli import app

    run = CliRunner().invoke(app, ["parity", "--teacher", str(ecg_classifier_dir), "--student",
                                   str(ecg_classifier_dir), "--data", str(data_root), "--gate", "cosine=2"])
    assert run.exit_code == 2
    assert "cosine=2" in run.output and "out of range" in run.output


# -- one gate table: the profile files --------------------------------------------------------------------------
def _gate_literals(source: Path) -> list[str]:
    """Where a .py file pairs a gate name, or an output kind (a per-kind limit), with a number."""
    import ast

    from jepa_edge.parity import GATE_NAMES

    keys = {*GATE_NAMES, "multilabel", "multiclass", "regression"}
    found = []
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        pairs: list[tuple[ast.AST, ast.AST]] = []
        if isinstance(node, ast.Dict):
            pairs = [(k, v) for k, v in zip(node.keys, node.values, strict=True) if k is not None]
        elif isinstance(node, ast.Call):
            pairs = [(ast.Constant(k.arg), k.value) for k in node.keywords if k.arg]
        for key, value in pairs:
            if (isinstance(key, ast.Constant) and key.value in keys and isinstance(value, ast.Constant)
                    and isinstance(value.value, float)):  # gate values are real numbers; enum codes are ints
                found.append(f"{source}:{value.lineno}: {key.value} = {value.value}")
    return found


def test_gate_values_live_only_in_the_profile_files(tmp_path):
    """No gate number in code (the definitions in parity/gates.py carry none), and parity's table is the TOML's."""
    import sys

    from jepa_edge.devices.profiles import PROFILE_DIR
    from jepa_edge.parity import GATE_NAMES
    from jepa_edge.parity.run import resolved_gates

    tomllib = __import__("tomllib" if sys.version_info >= (3, 11) else "tomli")
    repo = Path(__file__).resolve().parents[1]
    sources = [p for folder in ("toolkit", "distill", "quantize", "runtimes", "devices", "benchmarks")
               for p in sorted((repo / folder).rglob("*.py"))]
    assert len(sources) > 50
    assert [hit for p in sources for hit in _gate_literals(p)] == []

    cart_toml = tomllib.loads((PROFILE_DIR / "cart-x86.toml").read_text())
    gates, source = resolved_gates(ParityConfig(), None)  # no profile named, no bundle: the default profile
    assert gates == cart_toml["gates"] and set(gates) == set(GATE_NAMES) and "cart-x86" in source
    for name in ("jetson-orin-nano", "jetson-thor"):
        toml = tomllib.loads((PROFILE_DIR / f"{name}.toml").read_text())
        assert resolved_gates(ParityConfig(profile=name), None)[0] == toml["gates"]
    # a bundle's target profile: the installed TOML is read (a stale copy in the bundle does not win)
    manifest = {"target": {"profile": "cart-x86", "profile_data": {"gates": {**cart_toml["gates"], "cosine": 0.5}}}}
    assert resolved_gates(ParityConfig(), manifest)[0] == cart_toml["gates"]
    # edit the file, and parity's gates follow it
    custom = tmp_path / "strict.toml"
    custom.write_text((PROFILE_DIR / "cart-x86.toml").read_text().replace('name = "cart-x86"', 'name = "strict"')
                      .replace("cosine = 0.995", "cosine = 0.999"))
    assert resolved_gates(ParityConfig(profile=str(custom)), None)[0] == cart_toml["gates"] | {"cosine": 0.999}
    custom.write_text(custom.read_text().replace("cosine = 0.999", ""))
    with pytest.raises(ProfileError, match=r"\[gates\] lacks \['cosine'\]"):  # no hidden default fills the gap
        resolved_gates(ParityConfig(profile=str(custom)), None)


def test_cli_parity_on_a_two_site_challenge_folder_prints_the_per_site_table(jetson_bundle, ecg_classifier_dir,
                                                                             ptbxl_dir, tmp_path):
    from typer.testing import CliRunner

    from jepa_edge.cli import app

    folder = tmp_path / "two-sites"
    runner = CliRunner()
    made = runner.invoke(app, ["data", "to-challenge", str(ptbxl_dir), "--out", str(folder), "--folds", "9,10",
                               "--limit", "48", "--prefixes", "HR,E"])
    assert made.exit_code == 0, made.output
    run = runner.invoke(app, ["parity", "--teacher", str(ecg_classifier_dir), "--bundle", str(jetson_bundle),
                              "--data", str(folder), "--strata", "site", "--n-boot", "200", "--no-sweep",
                              "--no-write-bundle", "--out", str(tmp_path / "report")], terminal_width=160)
    print(run.output)  # the README's per-site table is this output
    assert run.exit_code in (0, 1), run.output
    text = " ".join(run.output.split())
    assert "parity on 48 challenge records, every record" in text and "parity per site" in text
    doc = json.loads((tmp_path / "report" / "parity.json").read_text())
    groups = {g["value"]: g for g in doc["strata"][0]["groups"]}
    assert set(groups) == {"PTB-XL", "Georgia"} and groups["PTB-XL"]["records"] == groups["Georgia"]["records"] == 24
    int8 = groups["Georgia"]["comparisons"]["student-int8-onnxruntime"]
    lo, hi = int8["student-fp32"]["macro_auc_diff_ci"]
    assert lo <= int8["student-fp32"]["macro_auc_diff"] <= hi and int8["student-fp32"]["agreement"] >= 0.9
    assert_self_contained_html(tmp_path / "report" / "parity.html", min_images=4)
