"""JEPA pretraining, one loop for ECG and echo: context encoder + predictor regress an EMA target encoder.

Read top to bottom: set-up, resume, then the step loop (schedules, masks, loss, update, EMA, log,
checkpoint). Modalities differ only in the `JepaTask` they hand in (encoder, predictor, windows, masks).
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..config import to_dict
from ..models.checkpoint import encoder_spec, save_model
from ..models.vit import TokenEncoder, gather_tokens
from . import checkpoint as ckpt
from .distributed import DistInfo, barrier, init_distributed
from .sampling import BatchPlan, StepBatchSampler, rank_slice, step_rng

MaskSampler = Callable[[int, np.random.Generator], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class PretrainConfig:
    """Defaults follow ECG-JEPA (AdamW betas 0.9/0.99, EMA 0.998->0.9995, wd 0.01->0.1, cosine lr, L1 loss).

    Two recipe options are off by default because benchmarks/pretrain_quality.py did not show them helping at
    CPU budgets (see README, "Does pretraining help?"): `target_norm` (layer-norm targets, as I-JEPA / V-JEPA)
    and `ema_horizon` (cap the EMA horizon at that share of the run, so a short run's exported target is not
    mostly its random initialisation)."""

    modality: str = "ecg"
    data: str | None = None
    model: str = "vit-s"
    out: str = "runs/pretrain"
    steps: int = 1000
    batch_size: int = 64  # global, split evenly over ranks
    lr: float = 1e-3
    min_lr: float = 1e-6
    warmup_steps: int = 100
    weight_decay: float = 0.01
    final_weight_decay: float = 0.1
    ema: float = 0.998
    final_ema: float = 0.9995
    ema_horizon: float = 0.0  # > 0: momentum <= 1 - 1 / (ema_horizon * steps); 0 leaves the ramp alone
    target_norm: bool = False  # layer-norm (no affine) of the target tokens before the loss
    betas: tuple[float, float] = (0.9, 0.99)
    eps: float = 1e-6
    grad_clip: float = 1.0
    keep_ratio: tuple[float, float] = (0.15, 0.25)
    min_block: int = 10
    patch: int = 25
    seed: int = 0
    num_workers: int = 0
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU; or "fp32" / "bf16"
    activation_checkpointing: bool = False
    fsdp: str = "auto"  # auto: FSDP for vit-l / vit-g when several ranks; "on" / "off"
    compile: bool = False
    skip_bad: bool = False
    max_records: int | None = None
    device: str = "auto"
    extra: dict[str, Any] = field(default_factory=dict)  # modality-specific options (e.g. echo frames)


@dataclass
class JepaTask:
    """What a modality provides to the shared trainer."""

    encoder: TokenEncoder
    predictor: nn.Module
    windows: Dataset  # items are (record, offset) -> tensor
    plan: BatchPlan
    masks: MaskSampler
    meta: dict[str, Any]  # written into the exported encoder's meta.json (preprocessing, data summary)


def lr_at(cfg: PretrainConfig, step: int) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))


def linear(start: float, end: float, step: int, steps: int) -> float:
    return start + (end - start) * min(1.0, step / max(1, steps))


def ema_at(cfg: PretrainConfig, step: int) -> float:
    """EMA momentum of the target encoder at `step`: ECG-JEPA's linear ramp, optionally capped so that the target
    averages over at most `ema_horizon` of the run (with 0.998 -> 0.9995 over 300 steps the exported target keeps
    ~70 % of its random initialisation; at ECG-JEPA's 100k steps a 0.1 cap, 0.9999, never binds)."""
    momentum = linear(cfg.ema, cfg.final_ema, step, cfg.steps)
    if cfg.ema_horizon > 0:
        momentum = min(momentum, 1.0 - 1.0 / max(1.0, cfg.ema_horizon * cfg.steps))
    return momentum


def param_groups(*modules: nn.Module) -> list[dict]:
    """Weight decay on matrices only; norms, registers and mask tokens are left alone."""
    decay, no_decay = [], []
    for m in modules:
        for p in m.parameters():
            if p.requires_grad:
                (decay if p.dim() >= 2 and p.shape[0] > 1 else no_decay).append(p)
    return [{"params": decay, "decay": True}, {"params": no_decay, "weight_decay": 0.0, "decay": False}]


def build_task(cfg: PretrainConfig) -> JepaTask:
    """The modality's task, with model initialisation seeded by `cfg.seed` (same init on every rank)."""
    torch.manual_seed(cfg.seed)
    if cfg.modality == "ecg":
        from .ecg_task import build_ecg_task

        return build_ecg_task(cfg)
    if cfg.modality == "echo":
        from .echo_task import build_echo_task

        return build_echo_task(cfg)
    raise ValueError(f"unknown modality {cfg.modality!r}; choose 'ecg' or 'echo'")


class ContextPredictor(nn.Module):
    """Context encoder + predictor as one module, so DDP/FSDP see a single forward."""

    def __init__(self, encoder: TokenEncoder, predictor: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.predictor = predictor

    def forward(self, x: torch.Tensor, keep: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.predictor(self.encoder(x, keep), keep, target)


def _wrap(module: nn.Module, cfg: PretrainConfig, info: DistInfo, use_fsdp: bool) -> nn.Module:
    if not info.enabled:
        return module
    if use_fsdp:
        from torch.distributed.fsdp import fully_shard

        for sub in module.modules():
            if sub.__class__.__name__ == "Block":
                fully_shard(sub)
        return fully_shard(module)
    from torch.nn.parallel import DistributedDataParallel as DDP

    return DDP(module, device_ids=[info.local_rank] if info.device.type == "cuda" else None)


def pretrain(
    cfg: PretrainConfig,
    task: JepaTask | None = None,
    progress: Callable[[int, int, dict], None] | None = None,
    stop_after: int | None = None,
) -> Path:
    """Run (or resume) pretraining into `cfg.out`; returns the run folder. `stop_after` simulates a kill."""
    info = init_distributed(cfg.device)
    task = task or build_task(cfg)
    out = Path(cfg.out)
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(to_dict(cfg), indent=2) + "\n")

    encoder, predictor = task.encoder, task.predictor
    encoder.grad_checkpointing = predictor.grad_checkpointing = cfg.activation_checkpointing
    target = copy.deepcopy(encoder).requires_grad_(False)
    student = ContextPredictor(encoder, predictor).to(info.device)
    target.to(info.device)
    use_fsdp = cfg.fsdp == "on" or (cfg.fsdp == "auto" and info.enabled and encoder.size.name in ("vit-l", "vit-g"))
    model = _wrap(student, cfg, info, use_fsdp)
    if use_fsdp:
        _wrap(target, cfg, info, True)
    opt = torch.optim.AdamW(param_groups(student), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                            fused=info.device.type == "cuda")

    start = 0
    latest = ckpt.latest(out)
    if latest is not None:
        start = ckpt.load(latest, student, target, opt, info)
        if info.is_main:
            ckpt.truncate_metrics(out / "metrics.jsonl", start)

    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and info.device.type == "cuda")
    autocast = torch.autocast(info.device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    forward = torch.compile(model) if cfg.compile else model
    loader = DataLoader(
        task.windows,
        batch_sampler=StepBatchSampler(task.plan, cfg.batch_size, start, cfg.steps, info.rank, info.world),
        num_workers=cfg.num_workers,
        pin_memory=info.device.type == "cuda",
        persistent_workers=False,
    )
    last = min(cfg.steps, stop_after) if stop_after is not None else cfg.steps
    metrics_file = open(out / "metrics.jsonl", "a") if info.is_main else None  # noqa: SIM115
    t0, seen = time.perf_counter(), 0
    try:
        for step, x in zip(range(start, last), loader, strict=False):
            lr = lr_at(cfg, step)
            wd = linear(cfg.weight_decay, cfg.final_weight_decay, step, cfg.steps)
            for group in opt.param_groups:
                group["lr"] = lr
                if group["decay"]:
                    group["weight_decay"] = wd
            keep, tgt = cfg_masks(task, cfg, step, info)
            x = x.to(info.device, non_blocking=True)
            keep, tgt = keep.to(info.device), tgt.to(info.device)

            with autocast:
                with torch.no_grad():
                    h = gather_tokens(target(x), tgt).float()
                    if cfg.target_norm:
                        h = F.layer_norm(h, h.shape[-1:])
                p = forward(x, keep, tgt)
            loss = F.l1_loss(p.float(), h)

            opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(student.parameters(), cfg.grad_clip)
            opt.step()

            momentum = ema_at(cfg, step)
            with torch.no_grad():
                for t_param, s_param in zip(target.parameters(), encoder.parameters(), strict=True):
                    t_param.lerp_(s_param.detach(), 1.0 - momentum)

            seen += x.shape[0] * info.world
            done = step + 1
            if metrics_file and (done % cfg.log_every == 0 or done == last):
                elapsed = time.perf_counter() - t0
                row = {"step": done, "loss": float(loss.detach()), "lr": lr, "weight_decay": wd, "ema": momentum,
                       "grad_norm": float(grad_norm), "samples_per_s": seen / max(elapsed, 1e-9),
                       "elapsed_s": elapsed}
                metrics_file.write(json.dumps(row) + "\n")
                metrics_file.flush()
            if progress and info.is_main:
                progress(done, cfg.steps, {"loss": float(loss.detach())})
            if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                ckpt.save(out, done, student, target, opt, cfg, info)
                if info.is_main:
                    export_encoder(out, target, task.meta, cfg, done)
                barrier(info)
    finally:
        if metrics_file:
            metrics_file.close()
    return out


def cfg_masks(task: JepaTask, cfg: PretrainConfig, step: int, info: DistInfo) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks for the global batch of `step` (same keep ratio on every rank), sliced for this rank."""
    keep, tgt = task.masks(cfg.batch_size, step_rng(cfg.seed, step, 1))
    per = cfg.batch_size // info.world
    sl = slice(info.rank * per, (info.rank + 1) * per)
    return keep[sl], tgt[sl]


def export_encoder(out: Path, target: nn.Module, meta: dict[str, Any], cfg: PretrainConfig, step: int) -> Path:
    """The EMA target encoder is the teacher handed to probing and distillation."""
    return save_model(
        out / "encoder",
        target,
        {"kind": "encoder", "encoder": encoder_spec(target), "step": step, "source": "jepa-pretrain",
         "pretrain_config": to_dict(cfg), **meta},
    )


__all__ = ["JepaTask", "PretrainConfig", "pretrain", "rank_slice"]
