"""Echo probes on a frozen video encoder: LVEF regression and view classification.

As EchoJEPA: the regression target is z-scored (mean/std of the training labels) and fitted with
SmoothL1; results are reported as MAE (EF points) and R^2; views as accuracy. Heads are the shared ones:
`LinearHead` (mean-pooled tokens) or V-JEPA 2's attentive probe, `AttentiveHead(blocks=3)` (learnable
query, three self-attention blocks, one cross-attention, Linear). Tokens are extracted once and cached,
so fitting a head costs seconds even on a CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError
from ..data.echo import EchoPreprocessing, EchoVideo, load_videos, read_echonet
from ..data.echo_perturb import DEPTH_PRESETS, EchoPerturbation
from ..data.errors import DataError, SkipReport
from ..models.checkpoint import load_encoder, save_model
from ..models.heads import Classifier, build_head
from .metrics import accuracy, mae, r2
from .outputs import TaskOutput

TASKS = ("ef", "view")
TASK_NAMES = {"ef": "lvef-regression", "view": "view-classification"}


@dataclass
class EchoProbeConfig:
    """Probe training; defaults fit a few hundred cached clips in seconds on a CPU."""

    task: str = "ef"  # "ef" (LVEF regression) or "view" (view classification)
    head: str = "linear"  # "linear" or "attentive" (V-JEPA 2 probe: 3 self-attention blocks + cross-attention)
    blocks: int = 3
    heads: int = 16  # attention heads of the attentive probe (reduced to a divisor of the width if needed)
    epochs: int = 200
    lr: float = 3e-3
    weight_decay: float = 0.05
    batch_size: int = 64
    smooth_l1_beta: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"unknown echo task {self.task!r}; choose from {TASKS}")
        if self.head not in ("linear", "attentive"):
            raise ConfigError(f"unknown head {self.head!r}; choose 'linear' or 'attentive'")


@dataclass
class EchoProbe:
    """A fitted head plus what is needed to turn its outputs into EF percent or view names."""

    head: nn.Module
    head_spec: dict[str, Any]
    task: str
    labels: list[str]
    target_mean: float = 0.0
    target_std: float = 1.0
    metrics: dict[str, float] = field(default_factory=dict)

    def output(self) -> TaskOutput:
        """How to read this head's logits (regressed EF in percent, or one of the views)."""
        if self.task == "ef":
            return TaskOutput("regression", tuple(self.labels), mean=self.target_mean, std=self.target_std,
                              unit="percent")
        return TaskOutput("multiclass", tuple(self.labels))

    @torch.no_grad()
    def predict(self, tokens: torch.Tensor) -> np.ndarray:
        """EF in percent (n,) or class indices (n,)."""
        self.head.eval()
        out = self.head(tokens)[0]
        if self.task == "ef":
            return (out[:, 0] * self.target_std + self.target_mean).numpy()
        return out.argmax(dim=1).numpy()

    def evaluate(self, tokens: torch.Tensor, y: np.ndarray) -> dict[str, float]:
        pred = self.predict(tokens)
        if self.task == "ef":
            baseline = np.full(len(y), self.target_mean)
            return {"mae": mae(y, pred), "r2": r2(y, pred), "mae_predict_mean": mae(y, baseline)}
        return {"accuracy": accuracy(y, pred)}


@torch.no_grad()
def extract_tokens(encoder: nn.Module, clips: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """Frozen-encoder tokens (n, N, D) for clips (n, C, T, H, W)."""
    encoder.eval()
    return torch.cat([encoder(clips[i : i + batch_size]) for i in range(0, len(clips), batch_size)])


def _attention_heads(dim: int, wanted: int) -> int:
    return max(h for h in range(1, wanted + 1) if dim % h == 0)


def fit_probe(tokens: torch.Tensor, y: np.ndarray, cfg: EchoProbeConfig | None = None,
              labels: Sequence[str] | None = None) -> EchoProbe:
    """Fit a head on cached tokens: z-scored SmoothL1 for EF (percent), cross-entropy for view indices."""
    cfg = cfg or EchoProbeConfig()
    y = np.asarray(y)
    if len(y) != len(tokens) or len(y) < 2:
        raise ConfigError(f"need matching tokens and labels (>= 2), got {len(tokens)} tokens, {len(y)} labels")
    torch.manual_seed(cfg.seed)
    dim = tokens.shape[-1]
    if cfg.task == "ef":
        mean, std = float(y.mean()), float(y.std()) or 1.0
        target = torch.from_numpy(((y - mean) / std).astype(np.float32))[:, None]
        outputs, names = 1, ["LVEF"]
    else:
        mean, std = 0.0, 1.0
        names = list(labels) if labels is not None else [str(i) for i in range(int(y.max()) + 1)]
        target = torch.from_numpy(y.astype(np.int64))
        outputs = len(names)
    spec: dict[str, Any] = {"kind": cfg.head, "dim": dim, "num_outputs": outputs}
    if cfg.head == "attentive":
        spec.update(heads=_attention_heads(dim, cfg.heads), blocks=cfg.blocks)
    head = build_head(spec)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs)
    gen = torch.Generator().manual_seed(cfg.seed)
    head.train()
    for _ in range(cfg.epochs):
        for idx in torch.randperm(len(tokens), generator=gen).split(cfg.batch_size):
            out = head(tokens[idx])[0]
            if cfg.task == "ef":
                loss = F.smooth_l1_loss(out, target[idx], beta=cfg.smooth_l1_beta)
            else:
                loss = F.cross_entropy(out, target[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
    probe = EchoProbe(head.eval(), spec, cfg.task, names, mean, std)
    probe.metrics = {f"train_{k}": v for k, v in probe.evaluate(tokens, y).items()}
    return probe


def save_echo_classifier(out: str | Path, encoder: nn.Module, probe: EchoProbe, pre: EchoPreprocessing,
                         extra: dict[str, Any] | None = None) -> Path:
    """Encoder + head as ONE exportable Classifier folder (the format every later stage reads)."""
    meta = {"kind": "classifier", "modality": "echo", "encoder": encoder.spec.to_dict(), "head": probe.head_spec,
            "output": probe.output().to_dict(),
            "labels": probe.labels, "thresholds": [], "task": TASK_NAMES[probe.task],
            "preprocessing": pre.to_dict(), "metrics": probe.metrics,
            "target": ({"mean": probe.target_mean, "std": probe.target_std, "unit": "percent",
                        "decode": "EF = logits[:, 0] * std + mean"} if probe.task == "ef" else None),
            **(extra or {})}
    return save_model(out, Classifier(encoder, probe.head), meta)


def perturbed_clips(videos: Sequence[EchoVideo], pre: EchoPreprocessing, perturbation: EchoPerturbation | None,
                    seed: int = 0) -> torch.Tensor:
    """Centre clips (n, C, T, H, W), each perturbed on its uint8 frames (shadow centre drawn once per video)."""
    clips = []
    for i, video in enumerate(videos):
        idx = pre.frame_indices(video.num_frames, video.fps, max(0, pre.max_start(video.num_frames, video.fps) // 2),
                                video.path)
        frames = video.frames[idx]
        if frames.shape[1] != pre.size or frames.shape[2] != pre.size:
            frames = pre.resize_frames(frames)
        if perturbation is not None:
            frames = perturbation(frames, np.random.default_rng([seed, i]))
        clips.append(pre.normalise(frames))
    return torch.stack(clips)


def robustness(encoder: nn.Module, probe: EchoProbe, videos: Sequence[EchoVideo], y: np.ndarray,
               pre: EchoPreprocessing, seed: int = 0) -> dict[str, dict[str, float]]:
    """EchoJEPA's robustness study: the probe's metrics on clean clips and under every perturbation preset."""
    results = {"clean": probe.evaluate(extract_tokens(encoder, perturbed_clips(videos, pre, None, seed)), y)}
    for kind in ("depth", "shadow"):
        for level in DEPTH_PRESETS:
            pert = EchoPerturbation(kind, level)
            tokens = extract_tokens(encoder, perturbed_clips(videos, pre, pert, seed))
            results[f"{kind}-{level}"] = probe.evaluate(tokens, y)
    return results


@dataclass
class EchoProbeRun:
    probe: EchoProbe
    metrics: dict[str, dict[str, float]]
    out: Path | None
    counts: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.probe.task, "metrics": self.metrics, "counts": self.counts,
                "out": str(self.out) if self.out else None}


def probe_echonet(encoder_path: str | Path, data: str | Path, cfg: EchoProbeConfig | None = None,
                  out: str | Path | None = None, skip_bad: bool = False, max_videos: int | None = None) -> EchoProbeRun:
    """Fit a probe on an EchoNet-layout folder's TRAIN split, report VAL and TEST; optionally save a classifier."""
    cfg = cfg or EchoProbeConfig()
    encoder, meta = load_encoder(encoder_path)
    if meta.get("encoder", {}).get("modality") != "echo":
        raise DataError(f"{encoder_path}: not an echo encoder (modality {meta.get('encoder', {}).get('modality')!r})")
    pre = EchoPreprocessing.from_dict(meta["preprocessing"]) if meta.get("preprocessing", {}).get("kind") == "echo" \
        else EchoPreprocessing(frames=encoder.spec.frames, size=encoder.spec.image_size)
    items = read_echonet(data)
    if max_videos is not None:
        items = items[:max_videos]
    if cfg.task == "view":
        views = sorted({i.view for i in items if i.view})
        if not views:
            raise DataError(f"{data}/FileList.csv: no View column; view classification needs one")
    report = SkipReport()
    videos, kept = load_videos(items, pre, skip_bad=skip_bad, report=report)
    by_split: dict[str, tuple[torch.Tensor, np.ndarray]] = {}
    for split in ("train", "val", "test"):
        chosen = [(v, it) for v, it in zip(videos, kept, strict=True) if it.split == split]
        if not chosen:
            continue
        clips = torch.stack([pre.clip(v, max(0, pre.max_start(v.num_frames, v.fps) // 2), resized=True)
                             for v, _ in chosen])
        y = np.array([it.ef if cfg.task == "ef" else views.index(it.view) for _, it in chosen])
        by_split[split] = (extract_tokens(encoder, clips), y)
    if "train" not in by_split:
        raise DataError(f"{data}: no TRAIN videos to fit the probe on")
    probe = fit_probe(*by_split["train"], cfg, labels=views if cfg.task == "view" else None)
    metrics = {"train": probe.evaluate(*by_split["train"])}
    for split in ("val", "test"):
        if split in by_split:
            metrics[split] = probe.evaluate(*by_split[split])
    probe.metrics = {f"{s}_{k}": v for s, m in metrics.items() for k, v in m.items()}
    saved = None
    if out is not None:
        saved = save_echo_classifier(out, encoder, probe, pre, {"probe_config": asdict(cfg), "data": str(data),
                                                                "load_report": report.to_dict()})
    return EchoProbeRun(probe, metrics, saved, {s: len(v[1]) for s, v in by_split.items()})
