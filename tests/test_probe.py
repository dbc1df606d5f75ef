"""Probes on a real (tiny, briefly pretrained) encoder and real PTB-XL folds.

PTB-XL is loaded and encoded once per module; heads are fitted on the cached frozen tokens.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from jepa_edge.data.preprocess import EcgPreprocessing
from jepa_edge.models.checkpoint import load_classifier, load_encoder, save_model
from jepa_edge.models.heads import LinearHead
from jepa_edge.tasks.metrics import macro_auc
from jepa_edge.tasks.probe import (
    ProbeConfig,
    TaskError,
    encode_task,
    load_task_data,
    probe_encoder,
    train_probe,
)


@pytest.fixture(scope="module")
def teacher(tiny_teacher_dir: Path):
    encoder, meta = load_encoder(tiny_teacher_dir)
    return encoder.requires_grad_(False).eval(), EcgPreprocessing.from_dict(meta["preprocessing"])


@pytest.fixture(scope="module")
def super_data(teacher, ptbxl_dir: Path):
    return load_task_data(ptbxl_dir, "ptbxl-super", teacher[1])


@pytest.fixture(scope="module")
def super_tokens(teacher, super_data):
    return encode_task(teacher[0], super_data)


@pytest.fixture(scope="module")
def linear_probe(teacher, super_data, super_tokens):
    return probe_encoder(teacher[0], teacher[1], super_data, ProbeConfig(epochs=100, n_boot=200), super_tokens)


def test_linear_probe_beats_chance_on_fold_10(linear_probe) -> None:
    _, meta, m = linear_probe
    assert m["test_macro_auc"] > 0.6
    lo, hi = m["test_macro_auc_ci95"]
    assert lo < m["test_macro_auc"] < hi
    assert set(m["test_per_class_auc"]) == {"NORM", "MI", "STTC", "CD", "HYP"}
    assert 0.0 < m["test_macro_f1"] <= 1.0
    assert m["test_records"] > 40 and m["val_records"] > 40
    assert meta["thresholds"] == m["thresholds"]


def test_probe_classifier_saves_reloads_and_reproduces(linear_probe, super_data, tmp_path: Path) -> None:
    model, meta, m = linear_probe
    out = save_model(tmp_path / "clf", model, meta)
    reloaded, meta2 = load_classifier(out)
    assert meta2["kind"] == "classifier" and meta2["task"] == "ptbxl-super"
    assert meta2["labels"] == ["NORM", "MI", "STTC", "CD", "HYP"]
    assert len(meta2["thresholds"]) == 5 and all(0.0 <= t <= 1.0 for t in meta2["thresholds"])
    assert meta2["head"] == {"kind": "linear", "dim": 192, "num_outputs": 5}
    assert EcgPreprocessing.from_dict(meta2["preprocessing"]).window == super_data.test.x.shape[-1]
    with torch.no_grad():
        logits, emb = reloaded(torch.from_numpy(super_data.test.x))
    assert emb.shape == (len(super_data.test.x), 192)
    assert macro_auc(super_data.test.labels, logits.numpy()) == pytest.approx(m["test_macro_auc"], abs=1e-6)


def test_linear_head_starts_from_standardised_features(super_tokens) -> None:
    """The pooled, normalised features of a frozen encoder barely vary between records; the head's LayerNorm
    affine rescales them to zero mean, unit variance on the training tokens, without changing the graph."""
    tokens = super_tokens["train"]
    head = LinearHead(tokens.shape[-1], 5)
    with torch.no_grad():
        raw_std = head(tokens)[1].std(dim=0)
        head.standardise_(tokens)
        emb = head(tokens)[1]
    assert float(raw_std.median()) < 0.5  # the problem is real on this encoder
    assert emb.mean(dim=0).abs().max() < 1e-3
    assert emb.std(dim=0).median() == pytest.approx(1.0, abs=1e-3)
    assert torch.isfinite(emb).all() and emb.std(dim=0).max() < 1.0 + 1e-3
    assert set(head.state_dict()) == set(LinearHead(tokens.shape[-1], 5).state_dict())


def test_attentive_probe_is_deterministic(teacher, super_data, super_tokens) -> None:
    cfg = ProbeConfig(head="attentive", epochs=4, eval_every=2, n_boot=20, seed=1)
    a = probe_encoder(teacher[0], teacher[1], super_data, cfg, super_tokens)
    b = probe_encoder(teacher[0], teacher[1], super_data, cfg, super_tokens)
    assert a[1]["head"]["kind"] == "attentive"
    assert a[2]["test_macro_auc"] == b[2]["test_macro_auc"] and np.isfinite(a[2]["test_macro_auc"])
    for (k, va), (_, vb) in zip(a[0].head.state_dict().items(), b[0].head.state_dict().items(), strict=True):
        assert torch.equal(va, vb), k


def test_bad_inputs_are_clear_errors(tiny_teacher_dir: Path, ptbxl_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(TaskError, match="unknown task"):
        train_probe(tiny_teacher_dir, ptbxl_dir, task="ptbxl-nope", out=tmp_path / "x")
    with pytest.raises(TaskError, match="unknown head"):
        train_probe(tiny_teacher_dir, ptbxl_dir, head="mlp", out=tmp_path / "x")
    with pytest.raises(TaskError, match="no PTB-XL folder"):
        train_probe(tiny_teacher_dir, tmp_path, out=tmp_path / "x")
    with pytest.raises(ValueError, match="epochs"):
        train_probe(tiny_teacher_dir, ptbxl_dir, epochs=0, out=tmp_path / "x")


def test_cli_probe_end_to_end(tiny_teacher_dir: Path, ptbxl_dir: Path, tmp_path: Path) -> None:
    """The whole path (load, encode, fit, save, metrics.json) through the CLI on the 'all' label set."""
    from jepa_edge.cli import app

    runner = CliRunner()
    out = tmp_path / "cli_clf"
    res = runner.invoke(app, ["probe", "--encoder", str(tiny_teacher_dir), "--data", str(ptbxl_dir),
                              "--task", "ptbxl-all", "--out", str(out), "--epochs", "5", "--limit", "30"])
    assert res.exit_code == 0, res.output
    _, meta = load_classifier(out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert meta["task"] == "ptbxl-all" and len(meta["labels"]) > 5
    assert metrics["classes"] == meta["labels"] and len(meta["thresholds"]) == len(meta["labels"])
    bad = runner.invoke(app, ["probe", "--encoder", str(tmp_path / "missing"), "--data", str(ptbxl_dir)])
    assert bad.exit_code == 2 and "missing" in bad.output
