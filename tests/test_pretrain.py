"""JEPA pretraining on real PTB-XL: the loss falls, resume is exact, DDP over gloo equals one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from jepa_edge.cli import app
from jepa_edge.data.ptbxl import PtbXl
from jepa_edge.jepa.trainer import PretrainConfig, lr_at, pretrain
from jepa_edge.models.checkpoint import load_encoder

SCRIPT = Path(__file__).parent / "scripts" / "ddp_pretrain.py"


def test_pretraining_loss_falls_on_real_records(tiny_teacher_dir: Path, ptbxl_dir: Path) -> None:
    rows = [json.loads(line) for line in (tiny_teacher_dir.parent / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows]
    assert rows[-1]["step"] == 60 and losses[-1] < 0.85 * losses[0]
    encoder, meta = load_encoder(tiny_teacher_dir)
    train_rows = PtbXl(ptbxl_dir).table["strat_fold"].between(1, 8).sum()  # every train-fold record, labelled or not
    assert meta["preprocessing"]["fs"] == 500 and meta["data"]["records"] == train_rows
    assert encoder.size.name == "vit-tiny"


def _cfg(ptbxl_dir: Path, out: Path, **kw) -> PretrainConfig:
    base = dict(data=str(ptbxl_dir), model="vit-tiny", steps=8, batch_size=8, warmup_steps=2, checkpoint_every=4,
                out=str(out), max_records=32, log_every=1, seed=7)
    return PretrainConfig(**(base | kw))


def test_killed_and_resumed_run_matches_uninterrupted(ptbxl_dir: Path, tmp_path: Path) -> None:
    straight = pretrain(_cfg(ptbxl_dir, tmp_path / "a"))
    resumed_dir = tmp_path / "b"
    pretrain(_cfg(ptbxl_dir, resumed_dir), stop_after=6)  # "killed" after step 6; last checkpoint at 4
    assert (resumed_dir / "checkpoints" / "latest").read_text() == "step_00000004"
    pretrain(_cfg(ptbxl_dir, resumed_dir))
    a = load_file(str(straight / "checkpoints" / "step_00000008" / "model.safetensors"))
    b = load_file(str(resumed_dir / "checkpoints" / "step_00000008" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    steps = [json.loads(line)["step"] for line in (resumed_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))  # rows after the checkpoint were rewritten, not duplicated


def test_ddp_two_gloo_ranks_match_single_process(ptbxl_dir: Path, tmp_path: Path) -> None:
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29533",
                    str(SCRIPT), str(ptbxl_dir), str(tmp_path / "ddp")], check=True, env=env, timeout=300)
    subprocess.run([sys.executable, str(SCRIPT), str(ptbxl_dir), str(tmp_path / "single")], check=True, env=env,
                   timeout=300)
    r0 = torch.load(tmp_path / "ddp" / "encoder_rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "ddp" / "encoder_rank1.pt", weights_only=True)
    single = torch.load(tmp_path / "single" / "encoder_rank0.pt", weights_only=True)
    assert r0.keys() == single.keys()
    for k in r0:
        assert torch.equal(r0[k], r1[k]), f"ranks diverged at {k}"
        torch.testing.assert_close(r0[k], single[k], rtol=1e-4, atol=1e-5, msg=k)


def test_schedule_warms_up_then_decays() -> None:
    cfg = PretrainConfig(steps=100, warmup_steps=10, lr=1e-3, min_lr=1e-6)
    assert lr_at(cfg, 0) == 1e-4 and lr_at(cfg, 9) == 1e-3
    assert lr_at(cfg, 55) < 1e-3 and abs(lr_at(cfg, 100) - 1e-6) < 1e-12


def test_cli_pretrain_and_bad_data_message(ptbxl_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["pretrain", "--data", str(tmp_path), "--steps", "2"])
    assert res.exit_code == 2 and "no WFDB records" in res.output
    cfg = tmp_path / "cfg.toml"
    cfg.write_text('model = "vit-tiny"\nbatch_size = 4\nwarmup_steps = 1\nmax_records = 8\n')
    res = runner.invoke(app, ["pretrain", "--data", str(ptbxl_dir), "--steps", "2", "--config", str(cfg),
                              "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "run" / "encoder" / "model.safetensors").is_file()
    cfg.write_text('modle = "vit-tiny"\n')
    res = runner.invoke(app, ["pretrain", "--config", str(cfg)])
    assert res.exit_code == 2 and "unknown key(s) ['modle']" in res.output
