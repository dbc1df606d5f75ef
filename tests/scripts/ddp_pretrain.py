"""Run a tiny pretraining (under torchrun or alone) and dump this rank's live encoder weights."""

import os
import sys
from pathlib import Path

import torch

from jepa_edge.jepa.trainer import PretrainConfig, build_task, pretrain

data, out = sys.argv[1], Path(sys.argv[2])
cfg = PretrainConfig(data=data, model="vit-tiny", steps=4, batch_size=8, warmup_steps=2, checkpoint_every=4,
                     out=str(out), max_records=24, log_every=1, seed=3)
task = build_task(cfg)
pretrain(cfg, task=task)
rank = int(os.environ.get("RANK", "0"))
torch.save({k: v.detach().clone() for k, v in task.encoder.state_dict().items()}, out / f"encoder_rank{rank}.pt")
