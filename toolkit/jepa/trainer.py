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
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from ..config import ConfigError, to_dict
from ..models.checkpoint import encoder_spec, save_model
from ..models.vit import TokenEncoder, gather_tokens
from . import checkpoint as ckpt
from .collapse import CollapseWatch, embedding_stats, variance_covariance
from .config import PretrainConfig
from .distributed import DistInfo, all_gather_rows, barrier, init_distributed, mean_over_ranks
from .sampling import StepBatchSampler, rank_slice, step_rng
from .sharding import after_no_grad_forward, ema_update, full_state_dict, shard, wants_fsdp, wrap_student
from .task import JepaTask, MaskSampler


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
    raise ConfigError(f"unknown modality {cfg.modality!r}; choose 'ecg' or 'echo'")


class ContextPredictor(nn.Module):
    """Context encoder + predictor as one module, so DDP/FSDP see a single forward. Returns the predictions and
    the context tokens (for the optional variance / covariance terms)."""

    def __init__(self, encoder: TokenEncoder, predictor: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.predictor = predictor

    def forward(self, x: torch.Tensor, keep: torch.Tensor, target: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        context = self.encoder(x, keep)
        return self.predictor(context, keep, target), context


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
    use_fsdp = wants_fsdp(cfg.fsdp, info, encoder.size.name)
    model = wrap_student(student, info, use_fsdp)
    if use_fsdp:
        shard(target)  # exactly like the context encoder, so the EMA runs shard to shard
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
    watch = CollapseWatch()
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
                    target_tokens = target(x)
                    after_no_grad_forward(target)
                    h = gather_tokens(target_tokens, tgt).float()
                    if cfg.target_norm:
                        h = F.layer_norm(h, h.shape[-1:])
                p, context = forward(x, keep, tgt)
            loss = F.l1_loss(p.float(), h)
            terms: dict[str, torch.Tensor] = {}
            if cfg.var_weight > 0 or cfg.cov_weight > 0:
                terms["var_term"], terms["cov_term"] = variance_covariance(context.float().mean(dim=1))
                loss = loss + cfg.var_weight * terms["var_term"] + cfg.cov_weight * terms["cov_term"]

            opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(student.parameters(), cfg.grad_clip)
            opt.step()

            momentum = ema_at(cfg, step)
            ema_update(target, encoder, momentum)

            seen += x.shape[0] * info.world
            done = step + 1
            status = {"loss": float(loss.detach())}  # this rank's loss; logged rows average over ranks
            if done % cfg.log_every == 0 or done == last:  # collectives: every rank takes part
                elapsed = time.perf_counter() - t0
                pooled = all_gather_rows(target_tokens.float().mean(dim=1), info)  # the global batch
                status = {"step": done, "loss": mean_over_ranks(loss.detach(), info), "lr": lr,
                          "weight_decay": wd, "ema": momentum, "grad_norm": float(grad_norm),
                          "samples_per_s": seen / max(elapsed, 1e-9), "elapsed_s": elapsed,
                          **{k: mean_over_ranks(v.detach(), info) for k, v in terms.items()},
                          **watch.check(embedding_stats(pooled), done)}
                if metrics_file:
                    metrics_file.write(json.dumps(status) + "\n")
                    metrics_file.flush()
            if progress and info.is_main:
                progress(done, cfg.steps, status)
            if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                ckpt.save(out, done, student, target, opt, cfg, info)
                export_encoder(out, target, task.meta, cfg, done, info)
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


def export_encoder(out: Path, target: nn.Module, meta: dict[str, Any], cfg: PretrainConfig, step: int,
                   info: DistInfo | None = None) -> Path:
    """The EMA target encoder is the teacher handed to probing and distillation. Every rank calls this (an
    FSDP target is gathered collectively); rank 0 writes the full encoder."""
    state = full_state_dict(target)
    if info is None or info.is_main:
        save_model(out / "encoder", target,
                   {"kind": "encoder", "encoder": encoder_spec(target), "step": step, "source": "jepa-pretrain",
                    "pretrain_config": to_dict(cfg), **meta}, state=state)
    return out / "encoder"


__all__ = ["JepaTask", "MaskSampler", "PretrainConfig", "pretrain", "rank_slice"]
