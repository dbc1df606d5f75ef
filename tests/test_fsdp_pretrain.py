"""FSDP2 pretraining on 2 gloo CPU ranks: steps run, the loss equals DDP's, a killed run resumes exactly, and
the exported teacher is the full (gathered) encoder, equal to a single-process run's.

Tolerances were measured on this machine (vit-tiny, 4 steps): FSDP and DDP logged identical losses and
exported identical weights; a single process differed by at most 6e-8 in loss and 2e-9 in any weight.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from jepa_edge.jepa.trainer import PretrainConfig, pretrain

SCRIPT = Path(__file__).parent / "scripts" / "fsdp_pretrain.py"


def _torchrun(runs: list[dict]) -> None:
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29547",
                    str(SCRIPT), json.dumps(runs)], check=True, env=env, timeout=300)


def _losses(run: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_fsdp_two_gloo_ranks_match_ddp_resume_exactly_and_export_the_full_encoder(
    ptbxl_dir: Path, tmp_path: Path
) -> None:
    base = dict(data=str(ptbxl_dir), model="vit-tiny", steps=4, batch_size=8, warmup_steps=2, checkpoint_every=2,
                max_records=24, log_every=1, seed=3)
    fsdp, ddp, killed, single = (tmp_path / n for n in ("fsdp", "ddp", "killed", "single"))
    _torchrun([{"cfg": base | {"out": str(fsdp), "fsdp": "on"}},
               {"cfg": base | {"out": str(ddp), "fsdp": "off"}},
               {"cfg": base | {"out": str(killed), "fsdp": "on"}, "stop_after": 3}])  # "killed" after step 3
    assert (killed / "checkpoints" / "latest").read_text() == "step_00000002"
    _torchrun([{"cfg": base | {"out": str(killed), "fsdp": "on"}}])  # a fresh launch resumes from step 2
    pretrain(PretrainConfig(**base, out=str(single)))

    # steps run, and the loss (averaged over ranks) follows DDP's and one process's
    assert len(_losses(fsdp)) == 4 and _losses(fsdp)[-1] < _losses(fsdp)[0]
    torch.testing.assert_close(_losses(fsdp), _losses(ddp), rtol=0, atol=1e-6)
    torch.testing.assert_close(_losses(fsdp), _losses(single), rtol=0, atol=1e-6)

    # the killed run, resumed, retraces the uninterrupted one: same losses, same weights and target
    rows = [json.loads(line) for line in (killed / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    torch.testing.assert_close([r["loss"] for r in rows], _losses(fsdp), rtol=0, atol=1e-7)
    a = load_file(str(fsdp / "checkpoints" / "step_00000004" / "model.safetensors"))
    b = load_file(str(killed / "checkpoints" / "step_00000004" / "model.safetensors"))
    assert a.keys() == b.keys() and any(k.startswith("target.") for k in a)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-6, atol=1e-7, msg=k)

    # the exported teacher holds full tensors (not rank 0's shards), equal to DDP's and one process's
    exported = load_file(str(fsdp / "encoder" / "model.safetensors"))
    reference = load_file(str(single / "encoder" / "model.safetensors"))
    assert exported.keys() == reference.keys()
    for k in reference:
        assert exported[k].shape == reference[k].shape, k
        torch.testing.assert_close(exported[k], reference[k], rtol=1e-5, atol=1e-6, msg=k)
    from_ddp = load_file(str(ddp / "encoder" / "model.safetensors"))
    assert all(torch.equal(exported[k], from_ddp[k]) for k in from_ddp)
