"""Training checkpoints: written atomically, resumed exactly (weights, optimizer, step).

Layout of a run folder: `checkpoints/step_XXXXXXX/{model.safetensors, optimizer.pt, state.json}` and
`checkpoints/latest` naming the newest complete one. Optimizer state is a tensors-and-numbers dict,
loaded with `weights_only=True`.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict

from ..config import to_dict
from ..io import atomic_dir, atomic_write_bytes
from .distributed import DistInfo, barrier

FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def _name(step: int) -> str:
    return f"step_{step:08d}"


def latest(run_dir: Path) -> Path | None:
    pointer = Path(run_dir) / "checkpoints" / "latest"
    if not pointer.is_file():
        return None
    path = pointer.parent / pointer.read_text().strip()
    return path if (path / "state.json").is_file() else None


def save(run_dir: Path, step: int, student: nn.Module, target: nn.Module, opt: torch.optim.Optimizer,
         cfg, info: DistInfo) -> None:
    model_sd, optim_sd = get_state_dict(student, opt, options=FULL)
    target_sd, _ = get_state_dict(target, [], options=FULL)
    if info.is_main:
        folder = Path(run_dir) / "checkpoints" / _name(step)
        tensors = {f"student.{k}": v.contiguous() for k, v in model_sd.items()}
        tensors.update({f"target.{k}": v.contiguous() for k, v in target_sd.items()})
        with atomic_dir(folder) as tmp:
            save_file(tensors, str(tmp / "model.safetensors"))
            buf = io.BytesIO()
            torch.save(optim_sd, buf)
            (tmp / "optimizer.pt").write_bytes(buf.getvalue())
            (tmp / "state.json").write_text(json.dumps({"step": step, "config": to_dict(cfg)}, indent=2))
        atomic_write_bytes(folder.parent / "latest", folder.name.encode())
        _prune(folder.parent, cfg.keep_checkpoints)
    barrier(info)


def _prune(folder: Path, keep: int) -> None:
    steps = sorted(p for p in folder.glob("step_*") if p.is_dir())
    for old in steps[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)


def load(path: Path, student: nn.Module, target: nn.Module, opt: torch.optim.Optimizer, info: DistInfo) -> int:
    """Restore a checkpoint into the (possibly wrapped) modules; returns the step to continue from."""
    tensors = load_file(str(path / "model.safetensors"))
    model_sd = {k[len("student."):]: v for k, v in tensors.items() if k.startswith("student.")}
    target_sd = {k[len("target."):]: v for k, v in tensors.items() if k.startswith("target.")}
    optim_sd = torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True)
    opts = StateDictOptions(full_state_dict=True)
    set_state_dict(student, opt, model_state_dict=model_sd, optim_state_dict=optim_sd, options=opts)
    set_state_dict(target, [], model_state_dict=target_sd, optim_state_dict={}, options=opts)
    return int(json.loads((path / "state.json").read_text())["step"])


def truncate_metrics(metrics: Path, step: int) -> None:
    """Drop log rows written after the checkpoint we resume from (they will be written again)."""
    if not metrics.is_file():
        return
    rows = [line for line in metrics.read_text().splitlines() if line and json.loads(line)["step"] <= step]
    atomic_write_bytes(metrics, ("\n".join(rows) + "\n").encode() if rows else b"")
