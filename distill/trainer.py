"""Teacher -> student distillation: one loop over any token encoder, ECG or echo video.

The frozen teacher (any encoder folder, or a classifier folder whose head then teaches outputs too) sees the
full input; the student (a size from the one size table) sees what its modality description pairs with it
(`Modality.paired_inputs`: a lead subset or longer patches for ECG; fewer frames, a coarser tubelet or a
smaller image for echo) and regresses the teacher's final tokens, and optionally intermediate block outputs,
through a small projector with cosine + smooth-L1 losses. When the student's token grid is coarser, teacher
tokens are average-pooled onto it axis by axis. When the teacher has a head, the student's head learns the
teacher's outputs as its `TaskOutput` reads them: sigmoid probabilities (multi-label), softmax (views), or
the z-scored value itself (LVEF), at temperature T. Batches are a pure function of (seed, step) through the JEPA
trainer's `RandomWindows` / `StepBatchSampler`, and checkpoints use its atomic save / latest / load, so a
killed run resumes exactly. The output is ONE classifier model folder (student encoder + head, the
student's preprocessing, labels, thresholds) that `load_classifier` opens and the export stages consume.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from jepa_edge.config import ConfigError, to_dict
from jepa_edge.jepa import checkpoint as ckpt
from jepa_edge.jepa.distributed import init_distributed
from jepa_edge.jepa.sampling import RandomWindows, StepBatchSampler
from jepa_edge.jepa.trainer import linear, lr_at, param_groups
from jepa_edge.modality import Modality, modality_of
from jepa_edge.models.checkpoint import (
    build_encoder,
    load_classifier,
    load_encoder,
    read_meta,
    resolve_model_dir,
)
from jepa_edge.models.heads import build_head
from jepa_edge.models.vit import TokenEncoder, model_size
from jepa_edge.paired import PairedInputs, PairingError, align_tokens, student_preprocessing
from jepa_edge.tasks.outputs import TaskOutput

STUDENT_SIZES = ("vit-tiny", "vit-xs")
Progress = Callable[[int, int, dict], None]


# One error for "this teacher / student / data cannot be distilled as asked", whether the trainer or the
# modality's pairing (jepa_edge.paired) finds the problem.
DistillError = PairingError


@dataclass
class DistillConfig:
    """Defaults distil a vit-tiny student in a few hundred steps; schedule names match PretrainConfig."""

    teacher: str | None = None  # encoder folder, pretraining run or classifier folder
    student: str = "vit-tiny"
    data: str | None = None  # PTB-XL (train folds used) or any WFDB folder with the teacher's leads
    out: str = "runs/distill"
    steps: int = 300
    batch_size: int = 32
    lr: float = 1e-3
    min_lr: float = 1e-5
    warmup_steps: int = 20
    weight_decay: float = 0.05
    final_weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.99)
    eps: float = 1e-6
    grad_clip: float = 1.0
    leads: tuple[str, ...] | None = None  # ECG: student lead subset, e.g. ("II", "V1"); None: the teacher's leads
    patch: int | None = None  # ECG: student patch in samples (a multiple of the teacher's); None: the teacher's
    registers: int | None = None  # ECG: register tokens (default 1)
    frames: int | None = None  # echo: student clip frames over the teacher's span; None: the teacher's
    tubelet: int | None = None  # echo: student tubelet (frames per token); None: the teacher's
    image_size: int | None = None  # echo: student clip size in pixels; None: the teacher's
    intermediate: tuple[int, ...] = ()  # teacher block indices whose outputs are regressed as well
    cosine_weight: float = 1.0
    smooth_l1_weight: float = 1.0
    logit_weight: float = 1.0
    temperature: float = 1.0
    head: str = "auto"  # auto: distil the teacher's head (probe if it has none); linear/attentive: probe after
    task: str = "ptbxl-super"  # labelled task for a probe on the student (ECG: ptbxl-super/-all; echo: ef, view)
    labels_data: str | None = None  # labelled data for thresholds / probe / evaluation (default: `data`)
    evaluate: bool = True  # tune thresholds on fold 9 and report fold 10 when labelled PTB-XL is at hand
    probe_epochs: int = 200
    n_boot: int = 200
    cache_teacher: str = "auto"  # auto: precompute teacher outputs when every record is one window; on / off
    seed: int = 0
    num_workers: int = 0
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    log_every: int = 10
    max_records: int | None = None
    skip_bad: bool = False
    device: str = "auto"
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------------
# token capture and alignment
# --------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def capture_blocks(encoder: TokenEncoder, indices: Sequence[int]) -> Iterator[dict[int, torch.Tensor]]:
    """Record the patch tokens (registers dropped) leaving the chosen blocks during the next forward."""
    captured: dict[int, torch.Tensor] = {}
    handles = []
    for i in indices:
        def hook(_module: nn.Module, _inp: Any, out: torch.Tensor, i: int = i) -> None:
            captured[i] = out[:, encoder.num_registers :]

        handles.append(encoder.blocks[i].register_forward_hook(hook))
    try:
        yield captured
    finally:
        for h in handles:
            h.remove()


def student_block_for(teacher_block: int, teacher_depth: int, student_depth: int) -> int:
    """The student block at the same relative depth as a teacher block."""
    return max(0, min(student_depth - 1, round((teacher_block + 1) * student_depth / teacher_depth) - 1))


def feature_loss(pred: torch.Tensor, target: torch.Tensor, cosine_weight: float,
                 smooth_l1_weight: float) -> torch.Tensor:
    """Cosine distance per token plus smooth-L1, both against the (aligned) teacher tokens."""
    cos = 1.0 - F.cosine_similarity(pred, target, dim=-1).mean()
    return cosine_weight * cos + smooth_l1_weight * F.smooth_l1_loss(pred, target)


def logit_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
               kind: str = "multilabel") -> torch.Tensor:
    """Output distillation as the output is read: BCE against tempered sigmoid probabilities (multi-label), KL
    against tempered softmax (one-of-N), both scaled by T^2; smooth-L1 on the z-scored value (regression)."""
    t = temperature
    if kind == "regression":
        return F.smooth_l1_loss(student_logits, teacher_logits)
    if kind == "multiclass":
        return F.kl_div(F.log_softmax(student_logits / t, dim=-1), F.log_softmax(teacher_logits / t, dim=-1),
                        reduction="batchmean", log_target=True) * t * t
    return F.binary_cross_entropy_with_logits(student_logits / t, torch.sigmoid(teacher_logits / t)) * t * t


# --------------------------------------------------------------------------------------------------------
# teacher and student modules
# --------------------------------------------------------------------------------------------------------
class Teacher(nn.Module):
    """Frozen encoder (+ optional head): x -> (final tokens, {block: tokens}, logits or None)."""

    def __init__(self, encoder: TokenEncoder, head: nn.Module | None, intermediate: Sequence[int]) -> None:
        super().__init__()
        self.encoder = encoder.eval().requires_grad_(False)
        self.head = head.eval().requires_grad_(False) if head is not None else None
        self.intermediate = tuple(intermediate)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[int, torch.Tensor], torch.Tensor | None]:
        with capture_blocks(self.encoder, self.intermediate) as inter:
            tokens = self.encoder(x)
        logits = self.head(tokens)[0] if self.head is not None else None
        return tokens, {i: F.layer_norm(v, v.shape[-1:]) for i, v in inter.items()}, logits


class Student(nn.Module):
    """Student encoder, one projector per regressed teacher layer, and the student head (if distilled)."""

    def __init__(self, encoder: TokenEncoder, teacher_dim: int, teacher_depth: int, intermediate: Sequence[int],
                 head: nn.Module | None) -> None:
        super().__init__()
        self.encoder = encoder
        self.layer_map = {t: student_block_for(t, teacher_depth, encoder.size.depth) for t in intermediate}
        names = ["final", *(f"block{t}" for t in intermediate)]
        self.projectors = nn.ModuleDict(
            {n: nn.Sequential(nn.LayerNorm(encoder.dim), nn.Linear(encoder.dim, teacher_dim)) for n in names})
        self.head = head

    def forward(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        with capture_blocks(self.encoder, sorted(set(self.layer_map.values()))) as inter:
            tokens = self.encoder(x)
        preds = {"final": self.projectors["final"](tokens)}
        for t, s in self.layer_map.items():
            preds[f"block{t}"] = self.projectors[f"block{t}"](inter[s])
        logits = self.head(tokens)[0] if self.head is not None else None
        return preds, logits


class TeacherFingerprint(nn.Module):
    """The teacher's weights SHA-256 as a buffer, so a checkpoint records which teacher it was distilled from."""

    def __init__(self, sha256_hex: str) -> None:
        super().__init__()
        raw = bytes.fromhex(sha256_hex) if sha256_hex else bytes(32)
        self.register_buffer("digest", torch.tensor(list(raw), dtype=torch.uint8))


# --------------------------------------------------------------------------------------------------------
# set-up
# --------------------------------------------------------------------------------------------------------
@dataclass
class DistillSetup:
    teacher: Teacher
    teacher_meta: dict[str, Any]
    modality: Modality
    output: TaskOutput | None  # how the teacher's head is read (None: an encoder without a head)
    pairs: PairedInputs
    student: Student
    teacher_grid: tuple[int, ...]
    student_grid: tuple[int, ...]

    @property
    def windows(self) -> Any:
        return self.pairs.dataset

    @property
    def student_pre(self) -> Any:
        return self.pairs.student_pre

    @property
    def data_summary(self) -> dict[str, Any]:
        return self.pairs.summary


def load_teacher(path: str | Path, intermediate: Sequence[int]) -> tuple[Teacher, dict[str, Any]]:
    if path is None:
        raise DistillError("no teacher given: pass an encoder, pretraining run or classifier folder")
    model_dir = resolve_model_dir(path)
    meta = read_meta(model_dir)
    if meta.get("kind") == "classifier":
        clf, meta = load_classifier(model_dir)
        encoder, head = clf.encoder, clf.head
    else:
        encoder, meta = load_encoder(model_dir)
        head = None
    bad = [i for i in intermediate if not 0 <= i < len(encoder.blocks)]
    if bad:
        raise DistillError(f"{model_dir}: intermediate block(s) {bad} outside the teacher's {len(encoder.blocks)}")
    return Teacher(encoder, head, intermediate), meta


def student_options(cfg: DistillConfig) -> dict[str, Any]:
    """The student input options as given (None: not given); the modality refuses those that are not its own."""
    return {"leads": cfg.leads, "patch": cfg.patch, "registers": cfg.registers, "frames": cfg.frames,
            "tubelet": cfg.tubelet, "image_size": cfg.image_size}


def build_setup(cfg: DistillConfig) -> DistillSetup:
    if cfg.student not in STUDENT_SIZES:
        model_size(cfg.student)  # unknown name: the size table's own error
        raise DistillError(f"student size {cfg.student!r} is not a compact student; choose from {STUDENT_SIZES}")
    teacher, tmeta = load_teacher(cfg.teacher, cfg.intermediate)
    modality = modality_of(tmeta)
    if "preprocessing" not in tmeta and modality.name == "ecg":
        raise DistillError(f"{cfg.teacher}: meta.json carries no preprocessing description")
    try:
        pairs = modality.paired_inputs(tmeta, student_options(cfg), cfg.data, cfg.skip_bad, cfg.max_records)
    except PairingError as exc:
        raise DistillError(f"{cfg.teacher}: {exc}") from None
    output = TaskOutput.from_meta(tmeta) if teacher.head is not None else None

    torch.manual_seed(cfg.seed)
    student_spec = {**pairs.student_spec, "size": cfg.student}
    encoder = build_encoder(student_spec)
    head = build_head(dict(tmeta["head"], dim=encoder.dim)) if teacher.head is not None and cfg.head == "auto" \
        else None
    student = Student(encoder, teacher.encoder.dim, len(teacher.encoder.blocks), cfg.intermediate, head)
    return DistillSetup(teacher, tmeta, modality, output, pairs, student, modality.token_grid(tmeta["encoder"]),
                        modality.token_grid(student_spec))


def _teacher_cache(setup: DistillSetup, device: torch.device, batch: int = 16) -> dict[tuple[int, int], tuple]:
    """Teacher outputs for every window at offset 0, computed once in a fixed order (resume-exact)."""
    cache = {}
    ws = setup.windows
    for start in range(0, len(ws), batch):
        ids = list(range(start, min(len(ws), start + batch)))
        x = torch.stack([ws[(i, 0)][2] for i in ids]).to(device)  # the teacher's input
        tokens, inter, logits = setup.teacher(x)
        for j, i in enumerate(ids):
            cache[(i, 0)] = (tokens[j].cpu(), {k: v[j].cpu() for k, v in inter.items()},
                             None if logits is None else logits[j].cpu())
    return cache


def _stack_cached(cache: dict, keys: list[tuple[int, int]], device: torch.device):
    rows = [cache[k] for k in keys]
    tokens = torch.stack([r[0] for r in rows]).to(device)
    inter = {i: torch.stack([r[1][i] for r in rows]).to(device) for i in rows[0][1]}
    logits = None if rows[0][2] is None else torch.stack([r[2] for r in rows]).to(device)
    return tokens, inter, logits


def distill_losses(setup: DistillSetup, cfg: DistillConfig, x_student: torch.Tensor, teacher_out: tuple
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, feature, logit) losses for one batch."""
    t_tokens, t_inter, t_logits = teacher_out
    preds, s_logits = setup.student(x_student)

    def aligned(tokens: torch.Tensor) -> torch.Tensor:
        return align_tokens(tokens, setup.student_grid, setup.teacher_grid)

    pairs = [(preds["final"], aligned(t_tokens))]
    pairs += [(preds[f"block{i}"], aligned(t_inter[i])) for i in cfg.intermediate]
    feat = sum(feature_loss(p.float(), t.float(), cfg.cosine_weight, cfg.smooth_l1_weight) for p, t in pairs)
    feat = feat / len(pairs)
    if s_logits is not None and t_logits is not None and cfg.logit_weight > 0:
        kind = setup.output.kind if setup.output is not None else "multilabel"
        logit = logit_loss(s_logits.float(), t_logits.float(), cfg.temperature, kind)
    else:
        logit = torch.zeros((), device=x_student.device)
    return feat + cfg.logit_weight * logit, feat, logit


@torch.no_grad()
def fixed_batch_feature_loss(setup: DistillSetup, cfg: DistillConfig, device: torch.device, n: int = 16) -> float:
    """Feature loss on a fixed set of windows (the first n records at offset 0), student in eval mode."""
    was = setup.student.training
    setup.student.eval()
    items = [setup.windows[(i, 0)] for i in range(min(n, len(setup.windows)))]
    x = torch.stack([it[2] for it in items]).to(device)
    xs = torch.stack([it[3] for it in items]).to(device)
    _, feat, _ = distill_losses(setup, cfg, xs, setup.teacher(x))
    setup.student.train(was)
    return float(feat)


# --------------------------------------------------------------------------------------------------------
# the loop
# --------------------------------------------------------------------------------------------------------
def distill(cfg: DistillConfig, progress: Progress | None = None, stop_after: int | None = None) -> Path:
    """Run (or resume) distillation into `cfg.out`; returns the student classifier folder (`out/classifier`).

    `stop_after` ends the loop early after that step (simulates a killed run for resume tests).
    """
    if cfg.steps < 1 or cfg.batch_size < 1:
        raise ConfigError(f"steps and batch_size must be >= 1 (got {cfg.steps}, {cfg.batch_size})")
    if cfg.head not in ("auto", "linear", "attentive"):
        raise DistillError(f"unknown head choice {cfg.head!r}; choose auto, linear or attentive")
    if cfg.cache_teacher not in ("auto", "on", "off"):
        raise DistillError(f"cache_teacher must be auto, on or off, got {cfg.cache_teacher!r}")
    info = init_distributed(cfg.device)
    if info.enabled:
        raise DistillError("distillation runs in one process (the student is small); launch it without torchrun")
    device = info.device
    setup = build_setup(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(to_dict(cfg), indent=2) + "\n")
    setup.teacher.to(device)
    student = setup.student.to(device)
    # the checkpoint's "target" slot holds the teacher's weight fingerprint (the frozen teacher itself is
    # reloaded from its folder); resuming against a different teacher is refused
    frozen = TeacherFingerprint(setup.teacher_meta.get("weights_sha256", ""))
    opt = torch.optim.AdamW(param_groups(student), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)

    start = 0
    latest = ckpt.latest(out)
    if latest is not None:
        expected = frozen.digest.clone()
        start = ckpt.load(latest, student, frozen, opt, info)
        if not torch.equal(expected, frozen.digest):
            raise DistillError(f"{latest}: checkpoint was distilled from a different teacher than {cfg.teacher}")
        ckpt.truncate_metrics(out / "metrics.jsonl", start)
    feature_start = fixed_batch_feature_loss(setup, cfg, device) if start == 0 else None
    if feature_start is not None:
        (out / "feature_loss_start.json").write_text(json.dumps({"feature_loss": feature_start}) + "\n")
    elif (out / "feature_loss_start.json").is_file():
        feature_start = json.loads((out / "feature_loss_start.json").read_text())["feature_loss"]

    one_window = bool((setup.windows.max_offsets == 0).all())
    use_cache = cfg.cache_teacher == "on" or (cfg.cache_teacher == "auto" and one_window)
    if use_cache and not one_window:
        raise DistillError("cache_teacher=on needs records exactly one window long (random crops vary)")
    cache = _teacher_cache(setup, device) if use_cache and start < cfg.steps else None
    loader = DataLoader(
        setup.windows,
        batch_sampler=StepBatchSampler(RandomWindows(setup.windows.max_offsets, seed=cfg.seed), cfg.batch_size,
                                       start, cfg.steps),
        num_workers=cfg.num_workers,
    )
    last = min(cfg.steps, stop_after) if stop_after is not None else cfg.steps
    t0, seen = time.perf_counter(), 0
    with open(out / "metrics.jsonl", "a") as metrics_file:
        for step, (rec, off, x, x_student) in zip(range(start, last), loader, strict=False):
            lr = lr_at(cfg, step)  # type: ignore[arg-type]  (same schedule fields as PretrainConfig)
            wd = linear(cfg.weight_decay, cfg.final_weight_decay, step, cfg.steps)
            for group in opt.param_groups:
                group["lr"] = lr
                if group["decay"]:
                    group["weight_decay"] = wd
            x = x.to(device)
            if cache is not None:
                teacher_out = _stack_cached(cache, list(zip(rec.tolist(), off.tolist(), strict=True)), device)
            else:
                teacher_out = setup.teacher(x)
            loss, feat, logit = distill_losses(setup, cfg, x_student.to(device), teacher_out)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(student.parameters(), cfg.grad_clip)
            opt.step()

            seen += x.shape[0]
            done = step + 1
            row = {"step": done, "loss": float(loss.detach()), "feature_loss": float(feat.detach()),
                   "logit_loss": float(logit.detach()), "lr": lr, "grad_norm": float(grad_norm),
                   "samples_per_s": seen / max(time.perf_counter() - t0, 1e-9)}
            if done % cfg.log_every == 0 or done == last:
                metrics_file.write(json.dumps(row) + "\n")
                metrics_file.flush()
            if progress:
                progress(done, cfg.steps, row)
            if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                ckpt.save(out, done, student, frozen, opt, cfg, info)
    if last < cfg.steps:
        return out / "classifier"
    from .export import export_student

    setup.student.cpu().eval()
    setup.teacher.cpu()
    feature_end = fixed_batch_feature_loss(setup, cfg, torch.device("cpu"))
    return export_student(setup, cfg, out, feature_start, feature_end)


__all__ = ["DistillConfig", "DistillError", "DistillSetup", "Student", "Teacher", "align_tokens", "build_setup",
           "distill", "logit_loss", "student_preprocessing"]
