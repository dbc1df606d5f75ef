"""The loader over packed shards: every window slot once per epoch, across DDP ranks, and across a resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from jepa_edge.data.pack import PackConfig, pack
from jepa_edge.data.packed import EpochPlan, PackedWindows
from jepa_edge.jepa.ecg_task import build_ecg_task
from jepa_edge.jepa.sampling import StepBatchSampler
from jepa_edge.jepa.trainer import PretrainConfig, pretrain

WINDOW_S = 5.0  # two slots per 10 s PTB-XL record


@pytest.fixture(scope="module")
def small_pack(ptbxl_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 real PTB-XL training records, 12 leads, float16, 5 s windows -> 16 window slots per epoch."""
    out = tmp_path_factory.mktemp("loader") / "pack"
    pack([ptbxl_dir], out, PackConfig(window_s=WINDOW_S, records_per_shard=3, max_records_per_source=8))
    return out


def _epochs(windows: list[tuple[int, int]], size: int) -> list[list[tuple[int, int]]]:
    return [windows[i : i + size] for i in range(0, len(windows), size)]


def test_epoch_plan_covers_every_slot_once_per_epoch() -> None:
    lengths = np.array([5000, 5000, 12_345, 650_000 * 500 // 360, 7_499])  # PTB-XL-like and MIT-BIH-like
    plan = EpochPlan(lengths, window=2500, seed=3)
    n = plan.epoch_size
    assert n == 2 + 2 + 4 + (650_000 * 500 // 360) // 2500 + 2
    batch = 7  # does not divide the epoch: batches straddle epoch boundaries
    stream = [w for step in range(3 * n // batch + 1) for w in plan.global_batch(step, batch)]
    for epoch in _epochs(stream, n)[:3]:
        assert len(set(epoch)) == n  # none twice, none skipped
        records = Counter(r for r, _ in epoch)
        assert all(records[r] == lengths[r] // 2500 for r in range(len(lengths)))
        for r in range(len(lengths)):  # slots of one record never overlap and stay inside it
            offsets = sorted(o for rr, o in epoch if rr == r)
            assert offsets[0] >= 0 and offsets[-1] + 2500 <= lengths[r]
            assert all(b - a == 2500 for a, b in zip(offsets, offsets[1:], strict=False))
    e0, e1 = _epochs(stream, n)[:2]
    assert e0 != e1  # a fresh order (and fresh crops) every epoch
    assert EpochPlan(lengths, 2500, seed=3).global_batch(11, batch) == plan.global_batch(11, batch)
    assert EpochPlan(lengths, 2500, seed=4).global_batch(11, batch) != plan.global_batch(11, batch)


def test_rank_slices_partition_the_global_batch() -> None:
    plan = EpochPlan(np.full(10, 5000), window=5000, seed=0)
    per_rank = [list(StepBatchSampler(plan, 4, 0, 5, rank=r, world=2)) for r in range(2)]
    for step in range(5):
        assert per_rank[0][step] + per_rank[1][step] == plan.global_batch(step, 4)
    seen = [w for step in range(5) for r in range(2) for w in per_rank[r][step]]
    assert sorted(seen[:10]) == sorted(seen[10:20]) == [(i, 0) for i in range(10)]


def test_bad_plan_inputs() -> None:
    with pytest.raises(ValueError, match="no records"):
        EpochPlan(np.array([], dtype=np.int64), 10)
    with pytest.raises(ValueError, match="record 1 is shorter than the window 100"):
        EpochPlan(np.array([100, 99]), 100)


def test_packed_windows_in_dataloader_workers(small_pack: Path) -> None:
    windows = PackedWindows(small_pack)
    plan = EpochPlan(windows.lengths, windows.window, seed=0)
    loader = torch.utils.data.DataLoader(windows, batch_sampler=StepBatchSampler(plan, 4, 0, 4), num_workers=2)
    batches = list(loader)
    assert [tuple(b.shape) for b in batches] == [(4, 12, 2500)] * 4
    want = torch.stack([windows[w] for w in plan.global_batch(2, 4)])
    assert torch.equal(batches[2], want)
    with pytest.raises(IndexError, match="offset 2501 outside 0..2500"):
        windows[(0, 2501)]


class Recording(Dataset):
    """Wraps the task's windows and remembers which (record, offset) the trainer asked for, in order."""

    def __init__(self, inner: Dataset) -> None:
        self.inner, self.seen = inner, []

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, item):
        self.seen.append(tuple(int(v) for v in item))
        return self.inner[item]


def _cfg(pack_dir: Path, out: Path, **kw) -> PretrainConfig:
    return PretrainConfig(data=str(pack_dir), model="vit-tiny", out=str(out), batch_size=8, warmup_steps=1,
                          log_every=1, **kw)


def test_resume_mid_epoch_reads_exactly_the_unseen_windows(small_pack: Path, tmp_path: Path) -> None:
    cfg = _cfg(small_pack, tmp_path / "run", steps=4, checkpoint_every=1)
    task = build_ecg_task(cfg)
    assert isinstance(task.windows, PackedWindows) and isinstance(task.plan, EpochPlan)
    assert task.meta["preprocessing"]["window"] == 2500 and task.meta["preprocessing"]["mean"] is not None
    first = Recording(task.windows)
    task.windows = first
    pretrain(cfg, task=task, stop_after=1)  # killed after step 1 (checkpoint at 1), mid-way through epoch 0

    resumed_task = build_ecg_task(cfg)
    second = Recording(resumed_task.windows)
    resumed_task.windows = second
    pretrain(cfg, task=resumed_task)  # continues from the checkpoint to step 4

    epoch = resumed_task.plan.epoch_size
    assert epoch == 16 and len(first.seen) == 8 and len(second.seen) == 24  # 2 steps per epoch
    epoch0 = first.seen + second.seen[: epoch - len(first.seen)]
    assert len(set(epoch0)) == epoch  # the resumed run read exactly the 8 windows not yet seen
    assert not set(first.seen) & set(second.seen[:8])
    assert len(set(second.seen[8:24])) == epoch  # and then one whole fresh epoch
    uninterrupted = [w for s in range(4) for w in task.plan.global_batch(s, 8)]
    assert first.seen + second.seen == uninterrupted
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 5)) and all(np.isfinite(r["loss"]) for r in rows)


TORCHRUN_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from torch.utils.data import Dataset
    from jepa_edge.jepa.ecg_task import build_ecg_task
    from jepa_edge.jepa.trainer import PretrainConfig, pretrain

    class Recording(Dataset):  # runs inside this rank's DataLoader worker: append what is fetched
        def __init__(self, inner, path):
            self.inner, self.path = inner, path
        def __len__(self):
            return len(self.inner)
        def __getitem__(self, item):
            with open(self.path, "a") as f:
                f.write(json.dumps([int(v) for v in item]) + "\\n")
            return self.inner[item]

    pack_dir, out, seen_dir = sys.argv[1:4]
    cfg = PretrainConfig(data=pack_dir, model="vit-tiny", out=out, steps=4, batch_size=8, warmup_steps=1,
                         checkpoint_every=4, num_workers=1, log_every=1)
    task = build_ecg_task(cfg)
    task.windows = Recording(task.windows, os.path.join(seen_dir, f"rank{os.environ['RANK']}.jsonl"))
    pretrain(cfg, task=task)
    """
)


def test_two_rank_gloo_torchrun_sees_each_window_once_per_epoch(small_pack: Path, tmp_path: Path) -> None:
    script = tmp_path / "run_packed.py"
    script.write_text(TORCHRUN_SCRIPT)
    seen_dir = tmp_path / "seen"
    seen_dir.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc-per-node", "2",
           str(script), str(small_pack), str(tmp_path / "run"), str(seen_dir)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    per_rank = [[tuple(json.loads(line)) for line in (seen_dir / f"rank{r}.jsonl").read_text().splitlines()]
                for r in range(2)]
    assert [len(s) for s in per_rank] == [16, 16]  # 4 steps x 4 windows per rank
    epoch = 16  # 8 records x 2 slots
    steps_per_epoch = epoch // 8
    for e in range(2):
        steps = range(e * steps_per_epoch, (e + 1) * steps_per_epoch)
        together = [w for s in steps for r in range(2) for w in per_rank[r][4 * s : 4 * s + 4]]
        assert len(together) == epoch and len(set(together)) == epoch, f"epoch {e}: {Counter(together)}"
        assert {r for r, _ in together} == set(range(8)) and {o % 2500 for _, o in together} == {0}
    plan = EpochPlan(PackedWindows(small_pack, verify=False).lengths, 2500, seed=0)
    for s in range(4):  # each rank read its own half of the global batch the plan names
        assert per_rank[0][4 * s : 4 * s + 4] + per_rank[1][4 * s : 4 * s + 4] == plan.global_batch(s, 8)
    assert (tmp_path / "run" / "encoder" / "meta.json").is_file()
