"""Supervised references that a JEPA teacher must beat on the same split: hand features + logistic regression,
and a small (~220 k-parameter) 1D CNN trained from scratch.

Both read the probe's `TaskData` (the encoder's preprocessing, folds 1-8 train, 9 validation, 10 test) and
return per-record logits for validation and test, so that `benchmarks/pretrain_quality.py` scores them exactly
as it scores probes. Fold 9 picks the regularisation strength (logistic regression) and the epoch (CNN).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import signal as sps
from scipy.stats import kurtosis, skew
from torch import nn

from . import metrics as M
from .probe import Split, TaskData, mean_per_record

BANDS_HZ = ((0.5, 5.0), (5.0, 15.0), (15.0, 40.0))


def r_peaks(x: np.ndarray, fs: float) -> np.ndarray:
    """R-peak sample indices from the summed slope energy of all leads (a plain Pan-Tompkins-like detector)."""
    energy = np.sum(np.diff(x, axis=-1) ** 2, axis=0)
    width = max(1, int(0.08 * fs))
    smooth = np.convolve(energy, np.ones(width) / width, mode="same")
    peaks, _ = sps.find_peaks(smooth, height=0.3 * np.percentile(smooth, 99), distance=int(0.3 * fs))
    # move each peak to the largest absolute deflection nearby
    half = int(0.05 * fs)
    lead = np.abs(x).sum(axis=0)
    return np.array([max(0, p - half) + int(np.argmax(lead[max(0, p - half) : p + half])) for p in peaks], dtype=int)


def hand_features(x: np.ndarray, fs: float) -> np.ndarray:
    """Features of one preprocessed record (leads, samples): rhythm (RR statistics), per-lead amplitude
    statistics and band powers, and the median beat of every lead (-0.25 s .. +0.45 s around R, at 50 Hz)."""
    peaks = r_peaks(x, fs)
    rr = np.diff(peaks) / fs if len(peaks) > 2 else np.array([1.0, 1.0])
    rhythm = [len(peaks), rr.mean(), rr.std(), np.median(np.abs(np.diff(rr))) if len(rr) > 1 else 0.0]
    stats = [x.std(1), x.min(1), x.max(1), np.percentile(x, 5, axis=1), np.percentile(x, 95, axis=1), skew(x, axis=1),
             kurtosis(x, axis=1), np.abs(np.diff(x, axis=1)).mean(1)]
    freqs, psd = sps.welch(x, fs=fs, nperseg=min(1024, x.shape[1]), axis=1)
    total = psd.sum(1) + 1e-12
    stats += [psd[:, (freqs >= lo) & (freqs < hi)].sum(1) / total for lo, hi in BANDS_HZ]
    before, after = int(0.25 * fs), int(0.45 * fs)
    beats = [x[:, p - before : p + after] for p in peaks if p - before >= 0 and p + after <= x.shape[1]]
    template = np.median(np.stack(beats), axis=0) if beats else np.zeros((x.shape[0], before + after))
    step = max(1, int(fs // 50))
    return np.concatenate([np.asarray(rhythm, dtype=np.float64), np.concatenate(stats),
                           template[:, ::step].reshape(-1)]).astype(np.float32)


def feature_matrix(split: Split, fs: float) -> np.ndarray:
    """Hand features per record (the probe's windows of one record are averaged, as its logits are)."""
    feats = np.stack([hand_features(w, fs) for w in split.x])
    n = int(split.record_of_window.max()) + 1
    out = np.zeros((n, feats.shape[1]))
    np.add.at(out, split.record_of_window, feats)
    return (out / np.bincount(split.record_of_window, minlength=n)[:, None]).astype(np.float32)


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float, iters: int = 200) -> nn.Linear:
    """Multi-label logistic regression (one sigmoid per class) with an L2 penalty, fitted by L-BFGS."""
    torch.manual_seed(0)
    xt, yt = torch.from_numpy(x).double(), torch.from_numpy(y).double()
    model = nn.Linear(x.shape[1], y.shape[1]).double()
    nn.init.zeros_(model.weight)
    nn.init.zeros_(model.bias)
    opt = torch.optim.LBFGS(model.parameters(), max_iter=iters, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(model(xt), yt) + l2 * model.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return model


def hand_features_lr(data: TaskData, fs: float, l2_grid: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1)
                     ) -> tuple[np.ndarray, np.ndarray, dict]:
    """(val logits, test logits, info): features standardised on the training folds, L2 chosen on fold 9."""
    tr, va, te = (feature_matrix(s, fs) for s in (data.train, data.val, data.test))
    mean, std = tr.mean(0), tr.std(0) + 1e-6
    tr, va, te = ((a - mean) / std for a in (tr, va, te))
    best = None
    for l2 in l2_grid:
        model = fit_logistic(tr, data.train.labels.astype(np.float64), l2)
        with torch.no_grad():
            v = model(torch.from_numpy(va).double()).numpy()
        auc = M.macro_auc(data.val.labels, v)
        if best is None or auc > best[0]:
            best = (auc, l2, model)
    _, l2, model = best
    with torch.no_grad():
        val, test = (model(torch.from_numpy(a).double()).numpy() for a in (va, te))
    return val, test, {"features": int(tr.shape[1]), "l2": l2, "val_macro_auc": float(best[0])}


class SmallCnn(nn.Module):
    """Six strided Conv1d-BN-ReLU layers, global average + max pooling, Linear (~220 k parameters for 12 leads)."""

    def __init__(self, leads: int = 12, num_outputs: int = 5, width: tuple[int, ...] = (32, 64, 64, 128, 128, 128),
                 kernels: tuple[int, ...] = (7, 7, 7, 5, 5, 3)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = leads
        for cout, k in zip(width, kernels, strict=True):
            layers += [nn.Conv1d(cin, cout, k, stride=2, padding=k // 2, bias=False), nn.BatchNorm1d(cout), nn.ReLU()]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.out = nn.Linear(2 * cin, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(F.avg_pool1d(x, 4))  # 500 Hz -> 125 Hz: the ECG's content is below 40 Hz here
        return self.out(torch.cat([h.mean(-1), h.amax(-1)], dim=1))


@dataclass
class CnnConfig:
    epochs: int = 40
    lr: float = 1e-3
    weight_decay: float = 1e-2
    batch_size: int = 32
    patience: int = 10
    seed: int = 0


def _cnn_logits(model: nn.Module, split: Split) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        x = torch.from_numpy(split.x)
        logits = torch.cat([model(x[i : i + 128]) for i in range(0, len(x), 128)]).float()
    return mean_per_record(logits, split.record_of_window)


def train_cnn(data: TaskData, cfg: CnnConfig | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """(val logits, test logits, info) of a SmallCnn trained on folds 1-8 (random circular time shifts),
    the epoch with the best fold-9 macro AUC kept."""
    cfg = cfg or CnnConfig()
    torch.manual_seed(cfg.seed)
    model = SmallCnn(data.train.x.shape[1], len(data.classes))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs)
    x = torch.from_numpy(data.train.x)
    y = torch.from_numpy(data.train.labels[data.train.record_of_window]).float()
    gen = torch.Generator().manual_seed(cfg.seed)
    best, stale = (-np.inf, 0, None), 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        for idx in torch.randperm(len(x), generator=gen).split(cfg.batch_size):
            shift = int(torch.randint(0, x.shape[-1], (1,), generator=gen))
            loss = F.binary_cross_entropy_with_logits(model(torch.roll(x[idx], shift, dims=-1)), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
        auc = M.macro_auc(data.val.labels, _cnn_logits(model, data.val))
        if auc > best[0]:
            best, stale = (auc, epoch, {k: v.clone() for k, v in model.state_dict().items()}), 0
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    model.load_state_dict(best[2])
    params = sum(p.numel() for p in model.parameters())
    return _cnn_logits(model, data.val), _cnn_logits(model, data.test), {
        "parameters": params, "best_epoch": best[1], "val_macro_auc": float(best[0])}


__all__ = ["CnnConfig", "SmallCnn", "hand_features", "hand_features_lr", "r_peaks", "train_cnn"]
