"""Collapse watch: a constant target encoder is flagged (once, in metrics.jsonl and as a CollapseWarning), a
healthy run is not, and the spread / RankMe figures are logged."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

from jepa_edge.config import ConfigError
from jepa_edge.jepa.collapse import CollapseWarning, CollapseWatch, embedding_stats, variance_covariance
from jepa_edge.jepa.trainer import PretrainConfig, build_task, pretrain


def test_stats_tell_a_spread_batch_from_a_collapsed_one() -> None:
    torch.manual_seed(0)
    spread = embedding_stats(torch.randn(32, 64))
    assert spread["target_std_unit"] > 0.5 and spread["target_rankme"] > 15
    line = torch.randn(32, 1) * torch.randn(1, 64)  # every embedding on one direction
    assert embedding_stats(line)["target_rankme"] < 1.5
    with pytest.warns(CollapseWarning, match="RankMe"):
        assert CollapseWatch().check(embedding_stats(line), step=3)["collapse_warning"] is True
    tiny = embedding_stats(torch.randn(4, 64))  # 4 samples span at most 3 directions: RankMe is not judged
    assert tiny["target_rank_max"] == 3 and CollapseWatch().check(tiny | {"target_rankme": 1.2}, 1)[
        "collapse_warning"] is False
    const = embedding_stats(torch.ones(32, 64))
    assert const["target_std_unit"] < 1e-6
    watch = CollapseWatch()
    with pytest.warns(CollapseWarning, match="collapsing"):
        assert watch.check(const, step=5)["collapse_warning"] is True
    with warnings.catch_warnings():
        warnings.simplefilter("error", CollapseWarning)  # warned once per run, not again
        assert watch.check(const, step=6)["collapse_warning"] is True
        assert CollapseWatch().check(spread, step=1)["collapse_warning"] is False


def _cfg(ptbxl_dir: Path, out: Path) -> PretrainConfig:
    return PretrainConfig(data=str(ptbxl_dir), model="vit-tiny", steps=3, batch_size=8, warmup_steps=1,
                          checkpoint_every=3, max_records=16, log_every=1, out=str(out), seed=1)


def test_zeroed_encoder_warns_and_healthy_run_does_not(ptbxl_dir: Path, tmp_path: Path) -> None:
    cfg = _cfg(ptbxl_dir, tmp_path / "collapsed")
    task = build_task(cfg)
    with torch.no_grad():
        for p in task.encoder.parameters():
            p.zero_()  # constant (zero) output whatever the input
    with pytest.warns(CollapseWarning, match="step 1: target embeddings are collapsing"):
        pretrain(cfg, task=task)
    rows = [json.loads(line) for line in (tmp_path / "collapsed" / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["collapse_warning"] is True and rows[0]["target_std_unit"] < 1e-3

    with warnings.catch_warnings():
        warnings.simplefilter("error", CollapseWarning)
        run = pretrain(_cfg(ptbxl_dir, tmp_path / "healthy"))
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for r in rows:
        assert r["collapse_warning"] is False
        assert r["target_std"] > 0 and r["target_std_unit"] > 0.01 and 2 < r["target_rankme"] <= 7.01


def test_echo_pretraining_logs_the_same_collapse_fields(tmp_path: Path) -> None:
    cfg = PretrainConfig(modality="echo", data="synthetic", model="vit-tiny", steps=2, batch_size=4, warmup_steps=1,
                         checkpoint_every=2, log_every=1, out=str(tmp_path / "echo"),
                         extra={"videos": 8, "frames": 8, "size": 64})
    with warnings.catch_warnings():
        warnings.simplefilter("error", CollapseWarning)
        run = pretrain(cfg)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert r["collapse_warning"] is False and r["target_rank_max"] == 3
        assert r["target_std_unit"] > 0.01 and 1 <= r["target_rankme"] <= 3.01


def test_variance_covariance_terms_penalise_collapse_and_correlation() -> None:
    torch.manual_seed(0)
    var, cov = variance_covariance(torch.randn(512, 32))
    assert var < 0.05 and cov < 0.1  # unit spread, independent dimensions: almost free
    var, cov = variance_covariance(torch.ones(512, 32))
    assert var > 0.98 and cov == 0  # a constant batch pays the whole hinge
    var, cov = variance_covariance(torch.randn(512, 1).expand(512, 32))
    assert var < 0.05 and cov > 25  # spread but one direction: the covariance term sees it


def test_variance_term_spreads_the_context_encoder(ptbxl_dir: Path, tmp_path: Path) -> None:
    cfg = _cfg(ptbxl_dir, tmp_path / "vicreg")
    # the hinge weighted to dominate, so its effect shows above batch noise: measured over seeds 1-3, the term
    # fell from 0.78-0.84 at step 1 to 0.05-0.26 (median of the last four steps); without it nothing pulls it down
    cfg.steps, cfg.checkpoint_every, cfg.batch_size, cfg.var_weight, cfg.lr = 12, 12, 16, 10.0, 3e-3
    rows = [json.loads(line) for line in (pretrain(cfg) / "metrics.jsonl").read_text().splitlines()]
    assert all("var_term" in r and "cov_term" in r for r in rows)
    late = sorted(r["var_term"] for r in rows[-4:])
    assert (late[1] + late[2]) / 2 < 0.5 * rows[0]["var_term"]  # the gradient reaches the encoder and widens it
    with pytest.raises(ConfigError, match="var_weight must be >= 0"):
        PretrainConfig(var_weight=-1.0)
    plain = pretrain(_cfg(ptbxl_dir, tmp_path / "plain"))
    assert "var_term" not in json.loads((plain / "metrics.jsonl").read_text().splitlines()[0])
