"""Distillation from the real tiny teacher classifier on real PTB-XL and MIT-BIH records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from jepa_edge.data.mitdb import read_mitdb
from jepa_edge.data.preprocess import EcgPreprocessing
from jepa_edge.distill import DistillConfig, DistillError, align_tokens, distill, student_preprocessing
from jepa_edge.models.checkpoint import load_classifier, read_meta


def small(teacher: Path, data: Path, out: Path, **kw) -> DistillConfig:
    """A few steps on a few records: enough to exercise the whole path quickly."""
    base = dict(teacher=str(teacher), data=str(data), out=str(out), steps=4, batch_size=8, max_records=24,
                checkpoint_every=2, log_every=1, warmup_steps=2, evaluate=False)
    return DistillConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def distilled(ecg_classifier_dir: Path, ptbxl_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """vit-tiny student with 2x longer patches (token pooling) and one intermediate layer, head distilled."""
    out = tmp_path_factory.mktemp("distill") / "run"
    return distill(DistillConfig(teacher=str(ecg_classifier_dir), data=str(ptbxl_dir), out=str(out), steps=50,
                                 batch_size=16, patch=50, intermediate=(1,), warmup_steps=10, lr=1e-3,
                                 checkpoint_every=50, log_every=10, n_boot=200))


def test_distillation_lowers_the_feature_loss(distilled: Path) -> None:
    summary = read_meta(distilled)["distill"]
    assert summary["feature_loss_end"] < 0.8 * summary["feature_loss_start"]
    rows = [json.loads(line) for line in (distilled.parent / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(10, 51, 10))
    assert rows[-1]["feature_loss"] < rows[0]["feature_loss"]


def test_tiny_student_beats_chance_on_fold_10(distilled: Path, ptbxl_super) -> None:
    from jepa_edge.data.datasets import preprocess_set
    from jepa_edge.tasks.metrics import macro_auc

    model, meta = load_classifier(distilled)
    assert meta["kind"] == "classifier" and meta["task"] == "ptbxl-super"
    assert meta["labels"] == ["NORM", "MI", "STTC", "CD", "HYP"] and len(meta["thresholds"]) == 5
    assert meta["encoder"]["size"] == "vit-tiny" and meta["encoder"]["patch"] == 50
    assert meta["distill"]["head"] == "distilled"
    pre = EcgPreprocessing.from_dict(meta["preprocessing"])
    test = ptbxl_super["test"]
    with torch.no_grad():
        logits, emb = model(torch.from_numpy(preprocess_set(test.signals, test.fs, pre)))
    auc = macro_auc(test.labels, logits.numpy())
    assert auc > 0.6
    assert auc == pytest.approx(meta["distill"]["test_macro_auc"], abs=1e-6)
    assert emb.shape == (len(test), 192)


def test_deterministic_and_exact_resume(ecg_classifier_dir: Path, ptbxl_dir: Path, tmp_path: Path) -> None:
    a = distill(small(ecg_classifier_dir, ptbxl_dir, tmp_path / "a"))
    b_cfg = small(ecg_classifier_dir, ptbxl_dir, tmp_path / "b")
    distill(b_cfg, stop_after=2)  # "killed" after the step-2 checkpoint
    assert not (tmp_path / "b" / "classifier").exists()
    b = distill(b_cfg)  # resumes from step 2
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    rows_a = (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
    rows_b = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["loss"] for r in rows_a] == [json.loads(r)["loss"] for r in rows_b]
    c = distill(small(ecg_classifier_dir, ptbxl_dir, tmp_path / "c", seed=1))
    assert (a / "model.safetensors").read_bytes() != (c / "model.safetensors").read_bytes()


def test_two_lead_student_runs_on_mitdb(ecg_classifier_dir: Path, ptbxl_dir: Path, mitdb_dir: Path,
                                        tmp_path: Path) -> None:
    model_dir = distill(small(ecg_classifier_dir, ptbxl_dir, tmp_path / "two", leads=("II", "V1"), patch=50))
    model, meta = load_classifier(model_dir)
    pre = EcgPreprocessing.from_dict(meta["preprocessing"])
    teacher_pre = EcgPreprocessing.from_dict(read_meta(ecg_classifier_dir)["preprocessing"])
    assert pre.leads == ("II", "V1") and meta["encoder"]["leads"] == 2
    assert pre.mean == (teacher_pre.mean[1], teacher_pre.mean[6]) and pre.std == (teacher_pre.std[1],
                                                                                   teacher_pre.std[6])
    rec, _ = read_mitdb(mitdb_dir / "101", leads=pre.leads)  # MLII + V1
    assert rec.fs == 360
    minute = rec.signal[:, : int(60 * rec.fs)]
    windows = pre.windows(pre(minute, fs_in=rec.fs), hop=pre.window)  # resampled 360 -> 500 Hz
    assert windows.shape == (6, 2, 5000)
    with torch.no_grad():
        logits, _ = model(torch.from_numpy(windows))
    assert logits.shape == (6, 5) and torch.isfinite(logits).all()


def test_token_alignment_pools_teacher_tokens() -> None:
    t = torch.arange(8, dtype=torch.float32).reshape(1, 8, 1).expand(2, 8, 3)
    pooled = align_tokens(t, 4)
    np.testing.assert_allclose(pooled[0, :, 0].numpy(), [0.5, 2.5, 4.5, 6.5])
    assert align_tokens(t, 8) is t
    with pytest.raises(DistillError, match="more tokens"):
        align_tokens(t, 16)


def test_bad_configurations_are_clear_errors(ecg_classifier_dir: Path, tiny_teacher_dir: Path, ptbxl_dir: Path,
                                             tmp_path: Path) -> None:
    pre = EcgPreprocessing.from_dict(read_meta(ecg_classifier_dir)["preprocessing"])
    with pytest.raises(DistillError, match="subset"):
        student_preprocessing(pre, ("II", "V7"))
    with pytest.raises(DistillError, match="multiple of the teacher"):
        distill(small(ecg_classifier_dir, ptbxl_dir, tmp_path / "x", patch=30))
    with pytest.raises(DistillError, match="compact student"):
        distill(small(ecg_classifier_dir, ptbxl_dir, tmp_path / "x", student="vit-b"))
    with pytest.raises(ValueError, match="unknown model size"):
        distill(small(ecg_classifier_dir, ptbxl_dir, tmp_path / "x", student="vit-huge"))
    with pytest.raises(DistillError, match="intermediate"):
        distill(small(ecg_classifier_dir, ptbxl_dir, tmp_path / "x", intermediate=(9,)))
    # an encoder-only teacher on an unlabelled WFDB folder: the student could get no labels/thresholds
    wfdb_dir = tmp_path / "wfdb"
    wfdb_dir.mkdir()
    for src in sorted((ptbxl_dir / "records500").rglob("*_hr.*"))[:8]:
        (wfdb_dir / src.name).symlink_to(src.resolve())
    with pytest.raises(DistillError, match="no head"):
        distill(small(tiny_teacher_dir, wfdb_dir, tmp_path / "y", steps=1))


def test_cli_distill_with_config_file(ecg_classifier_dir: Path, ptbxl_dir: Path, tmp_path: Path) -> None:
    from jepa_edge.cli import app

    cfg = tmp_path / "distill.toml"
    cfg.write_text("max_records = 16\nbatch_size = 8\nevaluate = false\ncheckpoint_every = 2\n")
    out = tmp_path / "cli_run"
    res = CliRunner().invoke(app, ["distill", "--teacher", str(ecg_classifier_dir), "--student", "vit-xs",
                                   "--data", str(ptbxl_dir), "--out", str(out), "--steps", "2", "--leads", "II,V1",
                                   "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    _, meta = load_classifier(out / "classifier")
    assert meta["encoder"]["size"] == "vit-xs" and meta["preprocessing"]["leads"] == ["II", "V1"]
    bad = CliRunner().invoke(app, ["distill", "--teacher", str(tmp_path / "nope"), "--data", str(ptbxl_dir),
                                   "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "nope" in bad.output
