"""Linear and attentive probes on a frozen encoder: PTB-XL folds 1-8 train, 9 validation, 10 test.

Protocol (kept deliberately simple and documented): the encoder sees windows of its own length
(`EcgPreprocessing.window`, 10 s by default = a whole PTB-XL record). When records are longer than the
window, every window at half-window stride is a training example and a record's score is the mean of its
windows' logits (ECG-JEPA's crop protocol, which also covers 2.5 s encoders). The encoder is frozen, so its
tokens are computed once and the head is trained on them; the epoch with the best validation macro AUC is
kept; F1 thresholds (on sigmoid probabilities) are tuned on fold 9; everything is reported on fold 10.

The output is a classifier model folder (`save_model`, kind="classifier") that `load_classifier` opens and
the export stages consume, plus `metrics.json` beside the weights.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError
from ..data.datasets import preprocess_set
from ..data.errors import DataError
from ..data.preprocess import EcgPreprocessing
from ..data.ptbxl import SUPERCLASSES
from ..data.sources import PtbXlSource, open_source
from ..io import atomic_write_json
from ..models.checkpoint import encoder_spec, load_encoder, save_model
from ..models.heads import Classifier, LinearHead, build_head
from . import metrics as M

TASKS: dict[str, str] = {"ptbxl-super": "superdiagnostic", "ptbxl-all": "all"}
HEADS = ("linear", "attentive")


class TaskError(DataError):
    """An unknown task or head, or data that cannot feed the requested task."""


@dataclass
class ProbeConfig:
    """Head training settings; the defaults fit a linear probe on ~400 PTB-XL records in seconds."""

    head: str = "linear"
    epochs: int = 200
    lr: float = 3e-3
    weight_decay: float = 1e-4
    batch_size: int = 128
    attentive_heads: int = 4
    attentive_blocks: int = 0
    eval_every: int = 5
    n_boot: int = 1000
    seed: int = 0
    encode_batch: int = 32


@dataclass
class Split:
    """Preprocessed windows of one split: x (windows, leads, samples), record index per window, labels per record."""

    x: np.ndarray
    record_of_window: np.ndarray
    labels: np.ndarray
    ids: list[str]


@dataclass
class TaskData:
    task: str
    classes: tuple[str, ...]
    train: Split
    val: Split
    test: Split
    source: str = "ptbxl"
    skipped: dict[str, dict] | None = None  # per split: the SkipReport of records left out, with reasons


@dataclass
class ProbeResult:
    model_dir: Path
    metrics: dict[str, Any]
    metrics_path: Path


def label_set_for(task: str) -> str:
    if task not in TASKS:
        raise TaskError(f"unknown task {task!r}; choose from {sorted(TASKS)}")
    return TASKS[task]


def _split_windows(signals: np.ndarray | list[np.ndarray], fs: float, labels: np.ndarray, ids: list[str],
                   pre: EcgPreprocessing) -> Split:
    if not isinstance(signals, np.ndarray):  # records of different lengths (a user folder): window each one
        hop = max(1, pre.window // 2)
        per = [pre.windows(pre(rec, fs_in=fs), hop=hop).astype(np.float32) for rec in signals]
        return Split(np.concatenate(per), np.repeat(np.arange(len(per)), [len(p) for p in per]), labels, ids)
    x = preprocess_set(signals, fs, pre)
    if x.shape[-1] < pre.window:
        raise TaskError(f"records have {x.shape[-1]} samples at {pre.fs} Hz, shorter than the encoder window "
                        f"({pre.window})")
    if x.shape[-1] == pre.window:
        return Split(x, np.arange(len(x)), labels, ids)
    hop = max(1, pre.window // 2)
    per = [pre.windows(rec, hop=hop) for rec in x]
    return Split(np.concatenate(per), np.repeat(np.arange(len(x)), [len(p) for p in per]), labels, ids)


def load_task_data(data_dir: str | Path | None, task: str, pre: EcgPreprocessing,
                   limit: int | None = None) -> TaskData:
    """Train/val/test for `task` from any labelled source (`data.sources`: PTB-XL folds, a Challenge folder, a
    labels.csv folder; user folders split by their split/fold column or a hash of the record name),
    preprocessed exactly as the encoder expects (its leads, fs, window). Unusable records are skipped and
    counted in `TaskData.skipped`."""
    label_set = label_set_for(task)
    try:
        source = open_source(data_dir)
    except DataError as exc:
        raise TaskError(f"{data_dir}: no labelled data for task {task!r}: {exc}") from exc
    if source.format == "wfdb":
        raise TaskError(f"{source.root}: WFDB records without labels; task {task!r} needs PTB-XL, a Challenge "
                        "folder or a labels.csv folder")
    ptbxl = isinstance(source, PtbXlSource)
    if ptbxl:  # PTB-XL: the task's label set, records at 500 Hz (the preprocessing resamples), bad records raise
        wanted: tuple[str, ...] | None = source.db.labels(label_set)[1]
    else:
        wanted = SUPERCLASSES if label_set == "superdiagnostic" else None
    splits = {}
    classes: tuple[str, ...] = ()
    skipped: dict[str, dict] = {}
    for name in ("train", "val", "test"):
        s = source.records(name, classes=wanted, leads=pre.leads, fs=None if ptbxl else pre.fs,
                           min_seconds=0.0 if ptbxl else pre.window_s, limit=limit, skip_bad=not ptbxl)
        classes = s.classes
        skipped[name] = s.report.to_dict()
        splits[name] = _split_windows(s.signals, s.fs, s.labels, s.ids, pre)
    return TaskData(task, classes, **splits, source=source.format, skipped=skipped)


@torch.no_grad()
def encode(encoder: nn.Module, x: np.ndarray, batch_size: int = 32) -> torch.Tensor:
    """Frozen encoder tokens (n, N, D) for preprocessed windows, in eval mode, batch by batch."""
    was_training = encoder.training
    encoder.eval()
    out = [encoder(torch.from_numpy(x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
    encoder.train(was_training)
    return torch.cat(out)


def record_scores(head_or_model: nn.Module, inputs: torch.Tensor, record_of_window: np.ndarray,
                  batch_size: int = 256) -> np.ndarray:
    """Per-record logits: the module's logits averaged over each record's windows."""
    return mean_per_record(window_logits(head_or_model, inputs, batch_size), record_of_window)


def window_logits(head_or_model: nn.Module, inputs: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """The module's logits for every window, in batches."""
    with torch.no_grad():
        return torch.cat([head_or_model(inputs[i : i + batch_size])[0]
                          for i in range(0, len(inputs), batch_size)]).float()


def mean_per_record(logits: torch.Tensor, record_of_window: np.ndarray) -> np.ndarray:
    logits = logits.numpy()
    n = int(record_of_window.max()) + 1
    sums = np.zeros((n, logits.shape[1]))
    np.add.at(sums, record_of_window, logits)
    return sums / np.bincount(record_of_window, minlength=n)[:, None]


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


def head_spec(kind: str, dim: int, num_outputs: int, cfg: ProbeConfig | None = None) -> dict[str, Any]:
    cfg = cfg or ProbeConfig()
    if kind == "linear":
        return {"kind": "linear", "dim": dim, "num_outputs": num_outputs}
    if kind == "attentive":
        return {"kind": "attentive", "dim": dim, "num_outputs": num_outputs, "heads": cfg.attentive_heads,
                "blocks": cfg.attentive_blocks}
    raise TaskError(f"unknown head {kind!r}; choose from {HEADS}")


def fit_head(train_tokens: torch.Tensor, train_windows: Split, val_tokens: torch.Tensor, val_windows: Split,
             spec: dict[str, Any], cfg: ProbeConfig) -> tuple[nn.Module, dict[str, Any]]:
    """Train a head on frozen tokens with BCE; keep the state with the best validation macro AUC.

    Ties in AUC go to the lower validation BCE: on an easy set the AUC saturates within a few epochs, and the
    first saturated state still scores every record near the class prior, where the thresholds sit and where
    INT8 rounding flips decisions. A linear head starts from features standardised on the training tokens
    (`LinearHead.standardise_`) so it reaches confident scores instead of creeping towards them.
    """
    torch.manual_seed(cfg.seed)
    head = build_head(spec)
    if isinstance(head, LinearHead):
        head.standardise_(train_tokens)
    y = torch.from_numpy(train_windows.labels[train_windows.record_of_window]).float()
    y_val = torch.from_numpy(val_windows.labels[val_windows.record_of_window]).float()
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    best = ((-np.inf, -np.inf), 0, {k: v.clone() for k, v in head.state_dict().items()})
    history = []
    for epoch in range(1, cfg.epochs + 1):
        head.train()
        for idx in torch.randperm(len(train_tokens), generator=gen).split(cfg.batch_size):
            logits, _ = head(train_tokens[idx])
            loss = F.binary_cross_entropy_with_logits(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
            head.eval()
            val_logits = window_logits(head, val_tokens)
            val_auc = M.macro_auc(val_windows.labels, mean_per_record(val_logits, val_windows.record_of_window))
            val_loss = float(F.binary_cross_entropy_with_logits(val_logits, y_val))
            history.append({"epoch": epoch, "loss": float(loss.detach()), "val_macro_auc": val_auc,
                            "val_loss": val_loss})
            if np.isfinite(val_auc) and (val_auc, -val_loss) > best[0]:
                best = ((val_auc, -val_loss), epoch, {k: v.clone() for k, v in head.state_dict().items()})
    head.load_state_dict(best[2])
    return head.eval(), {"best_epoch": best[1], "best_val_macro_auc": float(best[0][0]),
                         "best_val_loss": float(-best[0][1]), "history": history}


def evaluate_scores(y_val: np.ndarray, val_logits: np.ndarray, y_test: np.ndarray, test_logits: np.ndarray,
                    classes: tuple[str, ...], n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Thresholds tuned for F1 on validation probabilities, then the test-fold report."""
    p_val, p_test = sigmoid(val_logits), sigmoid(test_logits)
    thresholds = M.tune_thresholds_f1(y_val, p_val)
    value, lo, hi = M.bootstrap_ci(M.macro_auc, y_test, p_test, n_boot=n_boot, seed=seed)
    f1, f1_per = M.f1_at(y_test, p_test, thresholds)
    per = M.per_class_auc(y_test, p_test)

    def clean(v: float) -> float | None:
        return None if not np.isfinite(v) else float(v)

    return {
        "test_macro_auc": value, "test_macro_auc_ci95": [lo, hi],
        "test_per_class_auc": {c: clean(v) for c, v in zip(classes, per, strict=True)},
        "test_macro_f1": f1, "test_per_class_f1": {c: clean(v) for c, v in zip(classes, f1_per, strict=True)},
        "val_macro_auc": M.macro_auc(y_val, p_val),
        "thresholds": [clean(t) if np.isfinite(t) else 1.0 for t in thresholds],
        "test_records": int(len(y_test)), "val_records": int(len(y_val)),
    }


def encode_task(encoder: nn.Module, data: TaskData, batch_size: int = 32) -> dict[str, torch.Tensor]:
    """Frozen tokens of every split (computed once; several heads can be fitted on them)."""
    return {name: encode(encoder, getattr(data, name).x, batch_size) for name in ("train", "val", "test")}


def probe_encoder(encoder: nn.Module, pre: EcgPreprocessing, data: TaskData, cfg: ProbeConfig | None = None,
                  tokens: dict[str, torch.Tensor] | None = None) -> tuple[Classifier, dict[str, Any], dict[str, Any]]:
    """Fit a head on a frozen encoder: returns the Classifier, its meta (as `load_classifier` expects) and metrics.

    `tokens` (from `encode_task`) skips re-encoding when several heads are fitted on one encoder.
    """
    cfg = cfg or ProbeConfig()
    tokens = tokens or encode_task(encoder, data, cfg.encode_batch)
    spec = head_spec(cfg.head, encoder.dim, len(data.classes), cfg)
    head, fit_info = fit_head(tokens["train"], data.train, tokens["val"], data.val, spec, cfg)
    val_logits = record_scores(head, tokens["val"], data.val.record_of_window)
    test_logits = record_scores(head, tokens["test"], data.test.record_of_window)
    metrics = evaluate_scores(data.val.labels, val_logits, data.test.labels, test_logits, data.classes,
                              cfg.n_boot, cfg.seed)
    metrics.update({"task": data.task, "head": cfg.head, "train_records": int(len(data.train.labels)),
                    "classes": list(data.classes), "fit": fit_info, "config": asdict(cfg),
                    "protocol": "frozen encoder; windows of the encoder's length, half-window stride, mean logits "
                                "per record; best epoch by fold-9 macro AUC; F1 thresholds tuned on fold 9; "
                                "reported on fold 10"})
    model = Classifier(encoder.eval(), head).eval()
    meta = {"kind": "classifier", "encoder": encoder_spec(encoder), "head": spec, "labels": list(data.classes),
            "thresholds": metrics["thresholds"], "task": data.task, "preprocessing": pre.to_dict(),
            "probe": {"test_macro_auc": metrics["test_macro_auc"], "val_macro_auc": metrics["val_macro_auc"],
                      "head": cfg.head, "epochs": cfg.epochs, "seed": cfg.seed}}
    return model, meta, metrics


def write_metrics(path: Path, metrics: dict[str, Any]) -> Path:
    atomic_write_json(path, json.loads(json.dumps(metrics, default=float)))
    return path


PROBE_STAGES = ("load PTB-XL splits", "encode, fit head, evaluate", "write classifier")


def train_probe(encoder_dir: str | Path, data_dir: str | Path | None = None, task: str = "ptbxl-super",
                head: str = "linear", out: str | Path = "runs/probe", epochs: int | None = None, seed: int = 0,
                config: ProbeConfig | None = None, limit: int | None = None,
                progress: Callable[[str, int, int], None] | None = None) -> ProbeResult:
    """Probe a frozen encoder (model folder, pretraining run or classifier) on a PTB-XL task; write the classifier.

    `progress(stage, done, total)` is called as each of PROBE_STAGES starts."""
    step = progress or (lambda stage, done, total: None)
    if head not in HEADS:
        raise TaskError(f"unknown head {head!r}; choose from {HEADS}")
    if epochs is not None and epochs < 1:
        raise ConfigError(f"epochs must be >= 1, got {epochs}")
    base = config or ProbeConfig()
    cfg = replace(base, head=head, seed=seed, epochs=epochs if epochs is not None else base.epochs)
    label_set_for(task)
    encoder, enc_meta = load_encoder(encoder_dir)
    if "preprocessing" not in enc_meta:
        raise TaskError(f"{encoder_dir}: encoder meta.json carries no preprocessing description")
    pre = EcgPreprocessing.from_dict(enc_meta["preprocessing"])
    step(PROBE_STAGES[0], 0, len(PROBE_STAGES))
    data = load_task_data(data_dir, task, pre, limit=limit)
    step(PROBE_STAGES[1], 1, len(PROBE_STAGES))
    model, meta, metrics = probe_encoder(encoder.requires_grad_(False), pre, data, cfg)
    step(PROBE_STAGES[2], 2, len(PROBE_STAGES))
    meta["source_encoder"] = str(Path(encoder_dir))
    model_dir = save_model(out, model, meta)
    metrics_path = write_metrics(Path(model_dir) / "metrics.json", metrics)
    return ProbeResult(Path(model_dir), metrics, metrics_path)


__all__ = [
    "HEADS", "TASKS", "ProbeConfig", "ProbeResult", "Split", "TaskData", "TaskError", "encode", "encode_task",
    "evaluate_scores",
    "fit_head", "head_spec", "load_task_data", "probe_encoder", "record_scores", "train_probe",
]
