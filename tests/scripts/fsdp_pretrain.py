"""Tiny pretraining runs under torchrun (or alone), for the FSDP tests.

argv: a JSON list of runs, each {"cfg": PretrainConfig fields, "stop_after": int | null}; they run one after
the other in this process group (a run with stop_after ends there without a final checkpoint, as a killed
run's folder would be left).
"""

import json
import sys

import torch

from jepa_edge.jepa.trainer import PretrainConfig, pretrain

torch.set_num_threads(1)
for run in json.loads(sys.argv[1]):
    cfg = PretrainConfig(**run["cfg"])
    pretrain(cfg, stop_after=run.get("stop_after"))
