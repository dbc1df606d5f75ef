"""The beat teacher: a linear N / SVEB / VEB head on a frozen JEPA encoder, fitted on MIT-BIH training records.

Beats are nine parts normal, so the loss weighs classes by inverse frequency and the kept epoch is the one with
the best macro F1 on the validation records (other patients than the training records), never on the test records. The
same head fitted on a randomly initialised encoder of the same size is the baseline the teacher must beat.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..models.checkpoint import build_encoder, encoder_spec, load_encoder, save_model
from ..models.heads import Classifier, LinearHead, build_head
from .beats import (
    BEAT_CLASSES,
    BEAT_SPLIT,
    BeatContext,
    BeatDataError,
    BeatSet,
    BeatTemplate,
    RrFusion,
    fit_residual_fusion,
    fit_rr_fusion,
    labelled_beats,
    select_ridge,
)
from .outputs import TaskOutput
from .probe import encode, window_logits, write_metrics

BEAT_TASK = "mitdb-beats"


@dataclass
class BeatProbeConfig:
    head: str = "linear"  # or "attentive": one query cross-attends to the tokens (can find the beat's own tokens)
    epochs: int = 40
    lr: float = 2e-3
    weight_decay: float = 1e-3
    batch_size: int = 256
    encode_batch: int = 128
    seed: int = 0
    max_train_beats: int | None = None  # a stratified sample of training / validation beats (quick runs, tests)


def class_report(y: np.ndarray, pred: np.ndarray, classes: tuple[str, ...] = BEAT_CLASSES) -> dict[str, Any]:
    """Per-class Se / +P / F1 on reference beats, the confusion matrix (rows: reference), macro F1."""
    k = len(classes)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (np.asarray(y), np.asarray(pred)), 1)
    per = {}
    for i, c in enumerate(classes):
        tp, ref, det = cm[i, i], cm[i].sum(), cm[:, i].sum()
        se = tp / ref if ref else float("nan")
        ppv = tp / det if det else float("nan")
        f1 = 2 * tp / (ref + det) if ref + det else float("nan")
        per[c] = {"se": float(se), "ppv": float(ppv), "f1": float(f1), "reference": int(ref)}
    f1s = [v["f1"] for v in per.values() if np.isfinite(v["f1"])]
    return {"per_class": per, "macro_f1": float(np.mean(f1s)) if f1s else float("nan"),
            "accuracy": float(np.trace(cm) / max(cm.sum(), 1)), "confusion": cm.tolist(), "classes": list(classes)}


def fit_beat_head(train_tokens: torch.Tensor, y_train: np.ndarray, val_tokens: torch.Tensor, y_val: np.ndarray,
                  cfg: BeatProbeConfig) -> tuple[nn.Module, dict[str, Any]]:
    """Class-weighted cross-entropy; keep the epoch with the best validation macro F1."""
    torch.manual_seed(cfg.seed)
    k = len(BEAT_CLASSES)
    spec = {"kind": cfg.head, "dim": int(train_tokens.shape[-1]), "num_outputs": k}
    if cfg.head == "attentive":
        spec["heads"] = 4
    head = build_head(spec)
    if isinstance(head, LinearHead):
        head.standardise_(train_tokens)
    counts = np.bincount(y_train, minlength=k).astype(np.float64)
    if (counts == 0).any():
        missing = [c for c, n in zip(BEAT_CLASSES, counts, strict=True) if not n]
        raise BeatDataError(f"training beats lack class(es) {missing}")
    weight = torch.tensor(counts.sum() / (k * counts), dtype=torch.float32)
    target = torch.from_numpy(y_train)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    best = (-1.0, 0, {n: v.clone() for n, v in head.state_dict().items()})
    history = []
    for epoch in range(1, cfg.epochs + 1):
        head.train()
        for idx in torch.randperm(len(train_tokens), generator=gen).split(cfg.batch_size):
            loss = F.cross_entropy(head(train_tokens[idx])[0], target[idx], weight=weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        head.eval()
        score = class_report(y_val, window_logits(head, val_tokens).argmax(1).numpy())["macro_f1"]
        history.append({"epoch": epoch, "loss": float(loss.detach()), "val_macro_f1": score})
        if score > best[0]:
            best = (score, epoch, {n: v.clone() for n, v in head.state_dict().items()})
    head.load_state_dict(best[2])
    return head.eval(), {"spec": spec, "best_epoch": best[1], "best_val_macro_f1": best[0], "history": history,
                         "class_weight": weight.tolist()}


def beat_output() -> TaskOutput:
    return TaskOutput("multiclass", BEAT_CLASSES)


def probe_beats(encoder_dir: str | Path, data: str | Path | None, out: str | Path | None = None,
                cfg: BeatProbeConfig | None = None, context: BeatContext | None = None,
                random_init: bool = False) -> tuple[Path | None, dict[str, Any]]:
    """Fit the beat head on a frozen encoder folder, report test-record beats, and write the classifier folder
    to `out` when given. `random_init`: the same architecture and preprocessing with freshly initialised
    weights (seeded): the baseline a pretrained encoder has to beat."""
    cfg = cfg or BeatProbeConfig()
    context = context or BeatContext()
    encoder, meta = load_encoder(encoder_dir)
    if random_init:
        torch.manual_seed(cfg.seed)
        encoder = build_encoder(meta["encoder"])
    encoder = encoder.requires_grad_(False).eval()
    if "preprocessing" not in meta:
        raise BeatDataError(f"{encoder_dir}: encoder meta.json carries no preprocessing description")
    from ..data.preprocess import EcgPreprocessing

    pre = EcgPreprocessing.from_dict(meta["preprocessing"])
    sets = {s: labelled_beats(pre, data, s, None if s == "test" else cfg.max_train_beats, cfg.seed, context)
            for s in ("train", "val", "test")}
    tokens = {s: encode(encoder, v.windows, cfg.encode_batch) for s, v in sets.items()}
    head, fit = fit_beat_head(tokens["train"], sets["train"].labels, tokens["val"], sets["val"].labels, cfg)
    logits = {s: window_logits(head, tokens[s]).numpy() for s in ("val", "test")}
    preds = {s: v.argmax(1) for s, v in logits.items()}
    fusion = fit_beat_fusion(logits["val"], sets["val"], [sets["train"], sets["val"]])
    fused = fusion(logits["test"], sets["test"].fusion_features(True)).argmax(1)
    metrics = {
        "task": BEAT_TASK, "encoder": "random init" if random_init else "pretrained",
        "split": {k: list(v) for k, v in BEAT_SPLIT.items()},
        "beats": {s: int(len(v)) for s, v in sets.items()},
        "val": class_report(sets["val"].labels, preds["val"]), "test": class_report(sets["test"].labels, preds["test"]),
        "test_rr_fusion": class_report(sets["test"].labels, fused), "rr_fusion": fusion.to_dict(),
        "fit": fit, "config": asdict(cfg),
        "protocol": "frozen encoder; head trained with class-weighted cross-entropy on the training records; best "
                    "epoch by macro F1 on the validation records; reported on the test records' reference beats",
    }
    if out is None:
        return None, metrics
    model = Classifier(encoder, head).eval()
    cmeta = {"kind": "classifier", "modality": "ecg-beat", "encoder": encoder_spec(encoder), "head": fit["spec"],
             "labels": list(BEAT_CLASSES), "output": beat_output().to_dict(), "task": BEAT_TASK,
             "preprocessing": pre.to_dict(), "beat": asdict(context), "rr_fusion": fusion.to_dict(),
             "source_encoder": f"random init (seed {cfg.seed}) of {encoder_dir}" if random_init else str(encoder_dir),
             "probe": {"test_macro_f1": metrics["test"]["macro_f1"], "val_macro_f1": metrics["val"]["macro_f1"],
                       "test_macro_f1_rr_fusion": metrics["test_rr_fusion"]["macro_f1"]}}
    model_dir = save_model(out, model, cmeta)
    write_metrics(Path(model_dir) / "metrics.json", metrics)
    return Path(model_dir), metrics


def _pooled(sets: list[BeatSet], with_template: bool, spread: bool = True) -> tuple[np.ndarray, np.ndarray, list[str]]:
    return (np.concatenate([b.fusion_features(with_template, spread) for b in sets]),
            np.concatenate([b.labels for b in sets]), [r for b in sets for r in b.record_ids])


def fit_beat_fusion(val_logits: np.ndarray, val: BeatSet, rule_sets: list[BeatSet]) -> RrFusion:
    """The deployed fusion: a logit-free fusion of RR, RR spread and template features fitted on the reference beats
    of `rule_sets` (training + validation records, ridge by leave-one-record-out), corrected by the model's logits
    fitted on the validation records (logits the model was not trained on; `fit_residual_fusion`)."""
    return fit_residual_fusion(val_logits, _fit_rule(rule_sets, True, True), val.fusion_features(True), val.labels)


def _fit_rule(sets: list[BeatSet], with_template: bool, spread: bool) -> RrFusion:
    """The logit-free fusion of `sets`' reference beats, its ridge by leave-one-record-out (`select_ridge`)."""
    feats, y, groups = _pooled(sets, with_template, spread)
    template = BeatTemplate() if with_template else None
    ridge, _ = select_ridge(feats, y, groups, template, spread=spread)
    return fit_rr_fusion(np.zeros((len(y), len(BEAT_CLASSES))), feats, y, ridge=ridge, template=template,
                         spread=spread)


def rule_fusion(data: str | Path | None, with_template: bool = False, spread: bool = True) -> RrFusion:
    """A beat classifier with no learned morphology (zero logits), fitted on the reference beats of the training
    and validation records, ridge by leave-one-record-out. RR intervals only (`with_template` False: RR_FEATURES
    and RR_SPREAD_FEATURES): the trivial baseline, premature beats with a compensatory pause are VEB to it and it
    cannot tell VEB from SVEB by shape. With the template features: what the beat's likeness to the patient's own
    recent beats adds without a model. `spread=False`: without RR_SPREAD_FEATURES (the fusion before them)."""
    from dataclasses import replace

    from .beats import beat_preprocessing

    pre = replace(beat_preprocessing(), mean=(0.0,), std=(1.0,))  # 1-corr and log ratios ignore the affine
    return _fit_rule([labelled_beats(pre, data, s) for s in ("train", "val")], with_template, spread)


def rr_only_fusion(data: str | Path | None) -> RrFusion:
    """The trivial baseline every beat model must beat: `rule_fusion` on RR intervals alone."""
    return rule_fusion(data, with_template=False)


def fuse_classifier(model_dir: str | Path, data: str | Path | None, batch: int = 256) -> dict[str, Any]:
    """Fit the RR fusion of a beat classifier folder (e.g. a distilled student) on the validation records and
    write it into its meta.json (weights untouched); returns test-record reports without and with it."""
    import json

    from ..io import atomic_write_json
    from ..models.checkpoint import load_classifier, resolve_model_dir

    model_dir = resolve_model_dir(model_dir)
    model, meta = load_classifier(model_dir)
    if meta.get("modality") != "ecg-beat":
        raise BeatDataError(f"{model_dir}: not a beat classifier (modality {meta.get('modality')!r})")
    from ..data.preprocess import EcgPreprocessing

    pre = EcgPreprocessing.from_dict(meta["preprocessing"])
    context = BeatContext(**meta.get("beat", {}))
    sets = {s: labelled_beats(pre, data, s, context=context) for s in ("train", "val", "test")}
    logits = {s: window_logits(model, torch.from_numpy(sets[s].windows), batch).numpy() for s in ("val", "test")}
    fusion = fit_beat_fusion(logits["val"], sets["val"], [sets["train"], sets["val"]])
    fused = fusion(logits["test"], sets["test"].fusion_features(True))
    report = {"test": class_report(sets["test"].labels, logits["test"].argmax(1)),
              "test_rr_fusion": class_report(sets["test"].labels, fused.argmax(1)), "rr_fusion": fusion.to_dict()}
    raw = json.loads((Path(model_dir) / "meta.json").read_text())
    raw["rr_fusion"] = fusion.to_dict()
    atomic_write_json(Path(model_dir) / "meta.json", raw)
    write_metrics(Path(model_dir) / "rr_fusion_metrics.json", report)
    return report


__all__ = ["BEAT_TASK", "BeatProbeConfig", "beat_output", "class_report", "fit_beat_fusion", "fit_beat_head",
           "fuse_classifier", "probe_beats", "rr_only_fusion", "rule_fusion"]
