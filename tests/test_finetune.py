"""End-to-end fine-tuning as a way to make a teacher: layer-wise lr decay, fold-9 early stopping, probe-format output
that distillation accepts. Small: vit-tiny, a few dozen PTB-XL records per split, two epochs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from jepa_edge.cli import app
from jepa_edge.data.preprocess import EcgPreprocessing
from jepa_edge.models.checkpoint import load_classifier, load_encoder
from jepa_edge.models.ecg import EcgEncoder, EcgEncoderSpec
from jepa_edge.models.heads import Classifier, LinearHead
from jepa_edge.tasks.finetune import FinetuneConfig, layerwise_groups, train_finetune
from jepa_edge.tasks.metrics import macro_auc
from jepa_edge.tasks.probe import ProbeConfig, load_task_data

LIMIT = 48  # records per split: enough for every class to appear in folds 9 and 10


@pytest.fixture(scope="module")
def finetuned(tiny_teacher_dir: Path, ptbxl_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    torch.set_num_threads(2)
    cfg = FinetuneConfig(epochs=2, patience=2, n_boot=50, probe=ProbeConfig(epochs=40))
    out = tmp_path_factory.mktemp("finetune") / "clf"
    return train_finetune(tiny_teacher_dir, ptbxl_dir, out=out, config=cfg, limit=LIMIT)


def test_layerwise_lr_decays_from_the_head_down() -> None:
    enc = EcgEncoder(EcgEncoderSpec(size="vit-tiny"))
    model = Classifier(enc, LinearHead(enc.dim, 5))
    groups = layerwise_groups(model, lr=1e-3, layer_decay=0.5, weight_decay=0.05)
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    depth = len(enc.blocks)
    assert lr_of[id(model.head.linear.weight)] == pytest.approx(1e-3)
    assert lr_of[id(enc.norm.weight)] == pytest.approx(1e-3)
    assert lr_of[id(enc.blocks[depth - 1].fc1.weight)] == pytest.approx(1e-3 * 0.5)
    assert lr_of[id(enc.blocks[0].fc1.weight)] == pytest.approx(1e-3 * 0.5**depth)
    assert lr_of[id(enc.patch_embed.weight)] == pytest.approx(1e-3 * 0.5 ** (depth + 1))
    wd_of = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    assert wd_of[id(enc.blocks[0].norm1.weight)] == 0.0 and wd_of[id(enc.blocks[0].fc1.weight)] == 0.05
    assert len(lr_of) == sum(1 for _ in model.parameters())


def test_finetune_writes_a_probe_format_classifier(finetuned, tiny_teacher_dir: Path, ptbxl_dir: Path) -> None:
    model, meta = load_classifier(finetuned.model_dir)
    assert meta["kind"] == "classifier" and meta["task"] == "ptbxl-super"
    assert meta["labels"] == ["NORM", "MI", "STTC", "CD", "HYP"]
    assert meta["thresholds"] == finetuned.metrics["thresholds"]
    assert all(0.0 <= t <= 1.0 for t in meta["thresholds"])
    assert meta["probe"]["finetuned"] is True and meta["finetune"]["layer_decay"] == 0.75
    fit = finetuned.metrics["fit"]
    assert fit["history"][0]["epoch"] == 0 and fit["stopped_epoch"] >= 1
    assert fit["best_val_macro_auc"] == max(h["val_macro_auc"] for h in fit["history"])
    # the encoder itself moved (fine-tuned end to end, not a probe)
    before, _ = load_encoder(tiny_teacher_dir)
    if fit["best_epoch"] > 0:
        changed = [not torch.equal(a, b) for a, b in zip(before.state_dict().values(),
                                                          model.encoder.state_dict().values(), strict=True)]
        assert any(changed)
    # reloaded model reproduces the reported fold-10 AUC (single-window records)
    data = load_task_data(ptbxl_dir, "ptbxl-super", EcgPreprocessing.from_dict(meta["preprocessing"]), limit=LIMIT)
    with torch.no_grad():
        logits, _ = model(torch.from_numpy(data.test.x))
    assert macro_auc(data.test.labels, logits.numpy()) == pytest.approx(finetuned.metrics["test_macro_auc"], abs=1e-6)
    assert json.loads(finetuned.metrics_path.read_text())["protocol"].startswith("linear probe")


def test_distillation_accepts_the_finetuned_teacher(finetuned, ptbxl_dir: Path, tmp_path: Path) -> None:
    from jepa_edge.distill import DistillConfig, distill

    student = distill(DistillConfig(teacher=str(finetuned.model_dir), student="vit-tiny", data=str(ptbxl_dir),
                                    out=str(tmp_path / "student"), steps=2, batch_size=4, checkpoint_every=2,
                                    max_records=16, evaluate=False))
    _, meta = load_classifier(student)
    assert meta["labels"] == ["NORM", "MI", "STTC", "CD", "HYP"] and meta["task"] == "ptbxl-super"


def test_cli_probe_finetune(tiny_teacher_dir: Path, ptbxl_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["probe", "--encoder", str(tiny_teacher_dir), "--data", str(ptbxl_dir), "--finetune",
                              "--finetune-epochs", "1", "--epochs", "10", "--limit", "24", "--out",
                              str(tmp_path / "clf")])
    assert res.exit_code == 0, res.output
    assert "fine-tune epoch 1/1" in res.output and "fold-10 macro AUC" in res.output
    assert (tmp_path / "clf" / "metrics.json").is_file()
    bad = runner.invoke(app, ["probe", "--encoder", str(tiny_teacher_dir), "--data", str(ptbxl_dir), "--finetune",
                              "--layer-decay", "1.5", "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "layer_decay" in bad.output
