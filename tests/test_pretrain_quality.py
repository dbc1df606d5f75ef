"""Does JEPA pretraining move the encoder away from its random initialisation in a useful direction?

The check: a vit-tiny pretrained on PTB-XL folds 1-8 for 1000 steps of 16 (the benchmark's recipe:
`benchmarks/pretrain_quality.py --quick --budgets 1000`) against the SAME weights before pretraining (seed-matched
init), both read by the project's linear probe; the pooled fold 9+10 macro AUC difference must have a
paired-bootstrap 95 % interval above zero. Measured by the benchmark: +0.076 [+0.036, +0.116] (seed 0) and
+0.075 [+0.035, +0.114] (seed 1); runs of 100-300 steps did not separate from random init (README, "Does
pretraining help?"). About 10 minutes on one core: marked heavy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from jepa_edge.data.preprocess import EcgPreprocessing
from jepa_edge.jepa.trainer import PretrainConfig, pretrain
from jepa_edge.models.checkpoint import load_encoder
from jepa_edge.models.ecg import EcgEncoder, EcgEncoderSpec
from jepa_edge.tasks import metrics as M
from jepa_edge.tasks.probe import ProbeConfig, encode_task, load_task_data, probe_encoder, record_scores


def pooled_probe_scores(encoder: torch.nn.Module, pre: EcgPreprocessing, data) -> np.ndarray:
    encoder = encoder.eval().requires_grad_(False)
    tokens = encode_task(encoder, data)
    model, _, _ = probe_encoder(encoder, pre, data, ProbeConfig(epochs=150, n_boot=10), tokens)
    return np.concatenate([record_scores(model.head, tokens[k], getattr(data, k).record_of_window)
                           for k in ("val", "test")])


@pytest.mark.heavy
def test_pretraining_beats_its_own_random_init(ptbxl_dir: Path, tmp_path: Path) -> None:
    cfg = PretrainConfig(data=str(ptbxl_dir), model="vit-tiny", steps=1000, batch_size=16, warmup_steps=100,
                         checkpoint_every=1000, log_every=50, out=str(tmp_path / "run"), lr=1e-3, seed=0)
    encoder, meta = load_encoder(pretrain(cfg) / "encoder")
    pre = EcgPreprocessing.from_dict(meta["preprocessing"])
    torch.manual_seed(cfg.seed)  # build_task seeds the init the same way: these are the run's starting weights
    initial = EcgEncoder(EcgEncoderSpec(size="vit-tiny", leads=pre.num_leads, samples=pre.window))
    assert any(not torch.equal(a, b) for a, b in zip(initial.state_dict().values(),
                                                      encoder.state_dict().values(), strict=True))
    data = load_task_data(ptbxl_dir, "ptbxl-super", pre)
    y = np.concatenate([data.val.labels, data.test.labels])
    diff, lo, hi = M.paired_bootstrap_diff(M.macro_auc, y, pooled_probe_scores(initial, pre, data),
                                           pooled_probe_scores(encoder, pre, data), n_boot=500)
    assert lo > 0.0, f"pretrained - random init = {diff:+.4f} [{lo:+.4f}, {hi:+.4f}]"


def test_supervised_references_are_what_the_benchmark_says(ptbxl_super) -> None:
    """The 1D CNN reference has ~220 k parameters; the hand-feature R-peak detector finds a plausible rhythm on
    real records (10 s at 40-150 bpm: 6-26 beats) and the feature vector has a fixed length."""
    from jepa_edge.tasks.baselines import SmallCnn, hand_features, r_peaks

    assert 200_000 <= sum(p.numel() for p in SmallCnn().parameters()) <= 240_000
    train = ptbxl_super["train"]
    pre = EcgPreprocessing().fit(np.stack([EcgPreprocessing().filter_record(r, train.fs) for r in train.signals[:20]]))
    lengths = set()
    for raw in train.signals[:10]:
        x = pre(raw, fs_in=train.fs)
        assert 6 <= len(r_peaks(x, pre.fs)) <= 26
        lengths.add(hand_features(x, pre.fs).shape)
    assert len(lengths) == 1


def load_benchmark():
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("pretrain_quality", Path(__file__).resolve().parents[1]
                                                  / "benchmarks" / "pretrain_quality.py")
    bench = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, bench)  # dataclasses look their module up there
    spec.loader.exec_module(bench)
    return bench


def test_a_recipe_with_its_own_window_is_probed_on_it_and_the_references_are_not(ptbxl_dir: Path) -> None:
    """`--recipe '{"extra": {"window_s": 2.5}}'`: encoders see 2.5 s crops at half-window stride (7 per 10 s
    record, scored per record), the supervised references the same records whole; a bad option stops with it."""
    bench = load_benchmark()
    pre, data, ref_pre, ref_data = bench.task_inputs(ptbxl_dir, {"extra": {"window_s": 2.5}, "ema": 0.996})
    assert pre.window == 1250 and data.train.x.shape[1:] == (12, 1250)
    assert np.bincount(data.train.record_of_window).tolist() == [7] * len(data.train.labels)
    assert ref_pre.window == 5000 and ref_data.train.x.shape[1:] == (12, 5000)
    for split in ("train", "val", "test"):
        assert np.array_equal(getattr(data, split).labels, getattr(ref_data, split).labels)
    with pytest.raises(SystemExit, match="window_sec"):
        bench.task_inputs(ptbxl_dir, {"extra": {"window_sec": 2.5}})


def test_recipe_compare_pairs_two_runs_record_by_record(tmp_path: Path) -> None:
    """`pretrain_quality.py --compare A B` pairs the same rows, seeds and records: B better on every record gives a
    positive difference with an interval above zero; runs scored on other records, or without per-record scores,
    are refused with the reason."""
    import json

    bench = load_benchmark()
    rng = np.random.default_rng(0)
    y = (rng.random((136, 5)) < 0.3).astype(int)
    noise = rng.normal(size=(2, 136, 5))

    def run(path: Path, signal: float, labels: np.ndarray = y) -> Path:
        scores = {str(sd): (signal * labels + noise[sd]).tolist() for sd in (0, 1)}
        path.write_text(json.dumps({"labels": labels.tolist(), "scores": {"JEPA 1000 steps + probe": scores,
                                                                          "supervised: 1D CNN (220k)": scores}}))
        return path

    table = bench.compare(run(tmp_path / "a.json", 0.5), run(tmp_path / "b.json", 1.5), n_boot=200)
    assert set(table) == {"JEPA 1000 steps + probe [A]", "JEPA 1000 steps + probe [B]"}  # supervised rows left out
    diff = table["JEPA 1000 steps + probe [B]"]["diff"]
    assert diff["mean"] > 0 and diff["ci95"][0] > 0
    with pytest.raises(SystemExit, match="different records"):
        bench.compare(tmp_path / "a.json", run(tmp_path / "c.json", 1.5, labels=1 - y), n_boot=10)
    (tmp_path / "old.json").write_text(json.dumps({"table": {}}))
    with pytest.raises(SystemExit, match="no per-record scores"):
        bench.compare(tmp_path / "old.json", tmp_path / "b.json", n_boot=10)
