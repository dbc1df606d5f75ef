"""End-to-end fine-tuning of an encoder + head on PTB-XL: a second way to make a teacher, beside the frozen probe.

Protocol (the probe's, so distillation and parity take the result unchanged): the head is first fitted on the
frozen encoder exactly as `probe_encoder` does (linear probing, then fine-tuning: the encoder never sees the
gradient of a random head); then encoder and head train together with layer-wise learning-rate decay (the
last block at `lr`, each block below it `layer_decay` times less, the patch embedding least), AdamW and a
cosine schedule. Fold 9 picks the epoch (best macro AUC, ties to the lower BCE) and stops the run after
`patience` evaluations without improvement; F1 thresholds are tuned on fold 9; fold 10 is reported.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError
from ..data.preprocess import EcgPreprocessing
from ..models.checkpoint import load_encoder, save_model
from ..models.heads import Classifier
from ..models.vit import TokenEncoder
from . import metrics as M
from .probe import (
    HEADS,
    ProbeConfig,
    ProbeResult,
    TaskData,
    TaskError,
    evaluate_scores,
    label_set_for,
    load_task_data,
    mean_per_record,
    probe_encoder,
    window_logits,
    write_metrics,
)


@dataclass
class FinetuneConfig:
    """End-to-end settings; defaults fine-tune a vit-xs on the ~350 PTB-XL training records in minutes on CPU."""

    epochs: int = 30
    lr: float = 3e-4  # the head and the last block; lower blocks get lr * layer_decay ** depth-from-top
    layer_decay: float = 0.75
    weight_decay: float = 0.05
    warmup_epochs: int = 2
    batch_size: int = 32
    patience: int = 5  # evaluations on fold 9 without a better macro AUC before stopping
    eval_every: int = 1  # epochs
    grad_clip: float = 1.0
    seed: int = 0
    n_boot: int = 1000
    probe: ProbeConfig = None  # type: ignore[assignment]  # the head's warm start (linear probe on frozen tokens)

    def __post_init__(self) -> None:
        if self.probe is None:
            self.probe = ProbeConfig()
        if isinstance(self.probe, dict):
            self.probe = ProbeConfig(**self.probe)
        for name in ("epochs", "batch_size", "patience", "eval_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"finetune {name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 < self.layer_decay <= 1.0:
            raise ConfigError(f"layer_decay must be in (0, 1], got {self.layer_decay}")


def layer_of(name: str, depth: int) -> int:
    """Depth index of an encoder or classifier parameter: 0 embedding/registers, 1..depth the blocks, depth + 1
    the final norm and the head."""
    if name.startswith("head."):
        return depth + 1
    name = name.removeprefix("encoder.")
    if name.startswith("blocks."):
        return int(name.split(".")[1]) + 1
    if name.startswith("norm."):
        return depth + 1
    return 0


def layerwise_groups(model: Classifier, lr: float, layer_decay: float, weight_decay: float) -> list[dict]:
    """AdamW groups with lr * layer_decay ** (top - layer); no weight decay on vectors (norms, registers)."""
    depth = len(model.encoder.blocks)
    groups: dict[tuple[int, bool], dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        layer = layer_of(name, depth)
        decay = p.dim() >= 2 and p.shape[0] > 1
        g = groups.setdefault((layer, decay), {"params": [], "scale": layer_decay ** (depth + 1 - layer),
                                               "weight_decay": weight_decay if decay else 0.0})
        g["params"].append(p)
    for g in groups.values():
        g["lr"] = lr * g["scale"]
    return list(groups.values())


def _lr_factor(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _record_logits(model: nn.Module, x: np.ndarray, record_of_window: np.ndarray, batch: int = 64) -> torch.Tensor:
    was = model.training
    model.eval()
    logits = window_logits(model, torch.from_numpy(x), batch)
    model.train(was)
    return logits


def finetune_classifier(encoder: TokenEncoder, pre: EcgPreprocessing, data: TaskData,
                        cfg: FinetuneConfig | None = None,
                        progress: Any = None) -> tuple[Classifier, dict[str, Any], dict[str, Any]]:
    """Linear probe, then end-to-end fine-tuning with fold-9 early stopping. Returns (Classifier, meta, metrics)
    in the probe's format (same thresholds tuning, same fold-10 report), with the fine-tuning history added."""
    cfg = cfg or FinetuneConfig()
    probe_cfg = replace(cfg.probe, seed=cfg.seed, n_boot=min(cfg.probe.n_boot, 200))
    model, meta, probe_metrics = probe_encoder(encoder.requires_grad_(False).eval(), pre, data, probe_cfg)
    model.requires_grad_(True).train()
    torch.manual_seed(cfg.seed)
    groups = layerwise_groups(model, cfg.lr, cfg.layer_decay, cfg.weight_decay)
    opt = torch.optim.AdamW(groups, betas=(0.9, 0.999))
    x = torch.from_numpy(data.train.x)
    y = torch.from_numpy(data.train.labels[data.train.record_of_window]).float()
    y_val_w = torch.from_numpy(data.val.labels[data.val.record_of_window]).float()
    per_epoch = math.ceil(len(x) / cfg.batch_size)
    total = cfg.epochs * per_epoch
    gen = torch.Generator().manual_seed(cfg.seed)

    def val_score() -> tuple[float, float]:
        logits = _record_logits(model, data.val.x, data.val.record_of_window)
        auc = M.macro_auc(data.val.labels, mean_per_record(logits, data.val.record_of_window))
        return auc, float(F.binary_cross_entropy_with_logits(logits, y_val_w))

    start_auc, start_loss = val_score()
    best = ((start_auc, -start_loss), 0, {k: v.clone() for k, v in model.state_dict().items()})
    history = [{"epoch": 0, "val_macro_auc": start_auc, "val_loss": start_loss}]
    stale, step = 0, 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        for idx in torch.randperm(len(x), generator=gen).split(cfg.batch_size):
            factor = _lr_factor(step, cfg.warmup_epochs * per_epoch, total)
            for g in opt.param_groups:
                g["lr"] = cfg.lr * g["scale"] * factor
            logits, _ = model(x[idx])
            loss = F.binary_cross_entropy_with_logits(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            step += 1
        if epoch % cfg.eval_every and epoch != cfg.epochs:
            continue
        auc, val_loss = val_score()
        history.append({"epoch": epoch, "loss": float(loss.detach()), "val_macro_auc": auc, "val_loss": val_loss})
        if progress is not None:
            progress(epoch, cfg.epochs, history[-1])
        if np.isfinite(auc) and (auc, -val_loss) > best[0]:
            best, stale = ((auc, -val_loss), epoch, {k: v.clone() for k, v in model.state_dict().items()}), 0
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    model.load_state_dict(best[2])
    model.eval().requires_grad_(False)
    val_logits = mean_per_record(_record_logits(model, data.val.x, data.val.record_of_window),
                                 data.val.record_of_window)
    test_logits = mean_per_record(_record_logits(model, data.test.x, data.test.record_of_window),
                                  data.test.record_of_window)
    metrics = evaluate_scores(data.val.labels, val_logits, data.test.labels, test_logits, data.classes,
                              cfg.n_boot, cfg.seed)
    fit = {"best_epoch": best[1], "best_val_macro_auc": float(best[0][0]), "best_val_loss": float(-best[0][1]),
           "stopped_epoch": history[-1]["epoch"], "history": history,
           "probe_start": {"val_macro_auc": probe_metrics["val_macro_auc"],
                           "test_macro_auc": probe_metrics["test_macro_auc"]}}
    metrics.update({"task": data.task, "head": meta["head"]["kind"], "train_records": int(len(data.train.labels)),
                    "classes": list(data.classes), "fit": fit, "config": asdict(cfg),
                    "protocol": "linear probe on the frozen encoder, then end-to-end fine-tuning with layer-wise lr "
                                "decay; best epoch by fold-9 macro AUC with early stopping; F1 thresholds tuned on "
                                "fold 9; reported on fold 10"})
    meta["thresholds"] = metrics["thresholds"]
    meta["probe"] = {"test_macro_auc": metrics["test_macro_auc"], "val_macro_auc": metrics["val_macro_auc"],
                     "head": meta["head"]["kind"], "epochs": best[1], "seed": cfg.seed, "finetuned": True}
    meta["finetune"] = {k: v for k, v in asdict(cfg).items() if k != "probe"}
    return model, meta, metrics


def train_finetune(encoder_dir: str | Path, data_dir: str | Path | None = None, task: str = "ptbxl-super",
                   head: str = "linear", out: str | Path = "runs/finetune", config: FinetuneConfig | None = None,
                   limit: int | None = None, progress: Any = None) -> ProbeResult:
    """Fine-tune an encoder (model folder, pretraining run or classifier) end to end; write the classifier."""
    if head not in HEADS:
        raise TaskError(f"unknown head {head!r}; choose from {HEADS}")
    cfg = config or FinetuneConfig()
    cfg = replace(cfg, probe=replace(cfg.probe, head=head))
    label_set_for(task)
    encoder, enc_meta = load_encoder(encoder_dir)
    if "preprocessing" not in enc_meta:
        raise TaskError(f"{encoder_dir}: encoder meta.json carries no preprocessing description")
    pre = EcgPreprocessing.from_dict(enc_meta["preprocessing"])
    data = load_task_data(data_dir, task, pre, limit=limit)
    model, meta, metrics = finetune_classifier(encoder, pre, data, cfg, progress)
    meta["source_encoder"] = str(Path(encoder_dir))
    model_dir = save_model(out, model, meta)
    metrics_path = write_metrics(Path(model_dir) / "metrics.json", metrics)
    return ProbeResult(Path(model_dir), metrics, metrics_path)


__all__ = ["FinetuneConfig", "finetune_classifier", "layerwise_groups", "train_finetune"]
