"""Parity on the user's own data: a PhysioNet Challenge folder gives the same numbers as the PTB-XL records it
was exported from; per-stratum (site) results; a labels.csv folder with records of other rates and lengths;
unlabelled parity (agreement, cosine, logit differences only)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import wfdb
from safetensors.numpy import load_file, save_file

from jepa_edge.data.preprocess import STANDARD_LEADS
from jepa_edge.parity import ParityConfig, run_parity
from jepa_edge.parity.sweep import SweepAxis

SMALL_SWEEP = (SweepAxis("noise", (6.0,), "SNR dB"),)


def cfg(**kw) -> ParityConfig:
    base = {"n_boot": 100, "latency_runs": 1, "sweep": False, "sweep_axes": SMALL_SWEEP}
    return ParityConfig(**(base | kw))


@pytest.fixture(scope="module")
def stages(ecg_classifier_dir, tmp_path_factory) -> dict[str, Path]:
    """A faithful 'INT8' stage (the classifier itself) and one with a corrupted weight, so differences are real."""
    broken = tmp_path_factory.mktemp("userdata") / "broken"
    shutil.copytree(ecg_classifier_dir, broken)
    weights = load_file(broken / "model.safetensors")
    name = next(k for k in sorted(weights) if k.endswith("weight") and weights[k].ndim >= 2)
    weights[name] = weights[name] + 0.05 * np.random.default_rng(0).standard_normal(weights[name].shape).astype(
        weights[name].dtype)
    save_file(weights, broken / "model.safetensors")
    meta = json.loads((broken / "meta.json").read_text())
    meta.pop("weights_sha256", None)
    (broken / "meta.json").write_text(json.dumps(meta))
    return {"student-int8-faithful": ecg_classifier_dir, "student-int8-perturbed": broken}


def test_challenge_folder_gives_the_numbers_of_its_ptbxl_original(ecg_classifier_dir, ptbxl_dir, challenge_dir,
                                                                  stages):
    ptbxl = run_parity(ecg_classifier_dir, None, ptbxl_dir, student=ecg_classifier_dir, cfg=cfg(limit=24),
                       extra_stages=stages)
    ours = run_parity(ecg_classifier_dir, None, challenge_dir, student=ecg_classifier_dir,
                      cfg=cfg(strata=("site",)), extra_stages=stages)
    assert ours.data["format"] == "challenge" and ours.data["records"] == ptbxl.data["records"] == 24
    assert ours.data["folds"] is None and ptbxl.data["folds"] == [9, 10]
    np.testing.assert_array_equal(ours.labels, ptbxl.labels)
    assert ours.metrics == ptbxl.metrics  # macro AUC, CIs, per-class AUC, sens@spec, ECE: identical
    assert ours.comparisons == ptbxl.comparisons
    assert [(g.stage, g.gate, g.value, g.passed) for g in ours.gate_results] == [
        (g.stage, g.gate, g.value, g.passed) for g in ptbxl.gate_results]
    perturbed = ours.comparisons["student-int8-perturbed"]["student-fp32"]
    assert perturbed["max_abs_logit_diff"] > 0 and perturbed["macro_auc_diff_ci"][0] <= perturbed["macro_auc_diff"]
    (block,) = ours.strata
    (group,) = block["groups"]  # one site: the stratum is the pooled set
    assert block["column"] == "site" and group["value"] == "PTB-XL" and group["records"] == 24
    assert group["stages"]["teacher-fp32"]["macro_auc"] == pytest.approx(ours.metrics["teacher-fp32"]["macro_auc"])
    assert group["comparisons"]["student-int8-perturbed"]["student-fp32"]["macro_auc_diff"] == pytest.approx(
        perturbed["macro_auc_diff"])


def _wfdb_record(src, folder: Path, name: str, fs: int, seconds: float) -> None:
    from jepa_edge.data.ecg import read_record

    rec = read_record(src, fs=fs)
    sig = np.concatenate([rec.signal, rec.signal], axis=1)[:, : int(seconds * fs)]
    wfdb.wrsamp(name, fs=fs, units=["mV"] * 12, sig_name=list(STANDARD_LEADS), p_signal=sig.T, fmt=["16"] * 12,
                adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(folder))


@pytest.fixture(scope="module")
def hospital_dir(ptbxl_dir, tmp_path_factory) -> Path:
    """12 real PTB-XL records rewritten as a hospital's WFDB folder: 250 and 500 Hz, 10 to 16 s, one 4 s record
    (shorter than a window), with labels.csv (two wards)."""
    from jepa_edge.data.sources import open_source

    folder = tmp_path_factory.mktemp("hospital")
    held = open_source(ptbxl_dir).records((9, 10), limit=12)
    rows = ["record,NORM,MI,STTC,CD,HYP,ward"]
    for i, name in enumerate(held.ids):
        seconds = 4.0 if i == 11 else 10.0 + (i % 4) * 2
        _wfdb_record(ptbxl_dir / "records500" / "00000" / name, folder, f"pt{i:02d}", 250 if i % 2 else 500, seconds)
        rows.append(f"pt{i:02d}," + ",".join(str(int(v)) for v in held.labels[i]) + f",{'AB'[i % 2]}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_labels_csv_folder_other_rates_and_lengths_with_strata(ecg_classifier_dir, hospital_dir, stages, tmp_path):
    result = run_parity(ecg_classifier_dir, None, hospital_dir, student=ecg_classifier_dir,
                        cfg=cfg(strata=("ward",), sweep=True, out=str(tmp_path / "report")), extra_stages=stages)
    data = result.data
    assert data["format"] == "labels-csv" and data["records"] == 11
    assert data["skip_report"]["counts"] == {"too-short": 1} and "pt11" in data["skip_report"]["records"][0]["path"]
    assert result.comparisons["student-int8-faithful"]["student-fp32"]["max_abs_logit_diff"] == 0.0
    assert {r["kind"] for r in result.sweep} == {"clean", "noise"}  # the sweep runs on records of any length
    (block,) = result.strata
    assert [(g["value"], g["records"]) for g in block["groups"]] == [("A", 6), ("B", 5)]
    for group in block["groups"]:
        comp = group["comparisons"]["student-int8-perturbed"]
        assert set(comp) == {"teacher", "student-fp32"} and 0.0 <= comp["student-fp32"]["agreement"] <= 1.0
        assert len(comp["teacher"]["macro_auc_diff_ci"]) == 2
    doc = json.loads((tmp_path / "report" / "parity.json").read_text())
    assert doc["strata"][0]["column"] == "ward" and doc["data"]["skip_report"]["skipped"] == 1
    page = (tmp_path / "report" / "parity.html").read_text()
    assert "Parity per ward" in page and 'alt="parity per ward"' in page and "too-short" in page


def test_unlabelled_parity_on_any_wfdb_folder(ecg_classifier_dir, hospital_dir, stages, tmp_path):
    folder = tmp_path / "no-labels"
    shutil.copytree(hospital_dir, folder)
    (folder / "labels.csv").unlink()
    with pytest.raises(ValueError, match="--unlabelled"):
        run_parity(ecg_classifier_dir, None, folder, student=ecg_classifier_dir, cfg=cfg(), extra_stages=stages)
    result = run_parity(ecg_classifier_dir, None, folder, student=ecg_classifier_dir,
                        cfg=cfg(unlabelled=True, sweep=True, strata=("site",), out=str(tmp_path / "report")),
                        extra_stages=stages)
    assert not result.labelled and result.metrics == {} and result.sweep == []
    assert result.data["format"] == "wfdb" and result.data["records"] == 11
    assert set(result.gates_not_applied) == {"auc_drop_teacher", "auc_drop_fp32_int8"}
    faithful = result.comparisons["student-int8-faithful"]["student-fp32"]
    assert faithful["agreement"] == 1.0 and faithful["cosine_mean"] == pytest.approx(1.0)
    assert faithful["mean_abs_logit_diff"] == 0.0 and "macro_auc_diff" not in faithful
    gates = {(g.stage, g.gate): g.passed for g in result.gate_results}
    assert {g for _, g in gates} == {"cosine", "agreement"}
    assert gates[("student-int8-faithful", "cosine")] and gates[("student-int8-faithful", "agreement")]
    assert result.strata[0]["groups"][0]["value"] == "unknown" and "stages" not in result.strata[0]["groups"][0]
    doc = json.loads((tmp_path / "report" / "parity.json").read_text())
    assert doc["labelled"] is False and doc["gates_not_applied"]
    page = (tmp_path / "report" / "parity.html").read_text()
    assert "Differences between stages (unlabelled)" in page and "ROC curves" not in page
