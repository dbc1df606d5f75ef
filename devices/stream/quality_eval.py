"""Signal-quality flags judged against real MIT-BIH `~` annotations: replay a record window by window as the
stream cuts it (same resampler, causal band-pass from the first sample, window and hop), compute every lead's
noise measures with the stream's own `lead_measures`, score flags per lead against the reference (noisy or
unreadable for >= half a window), and tune the limits on one set of records to report them on another."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import wfdb
from numpy.lib.stride_tricks import sliding_window_view

from jepa_edge.data.errors import RecordError
from jepa_edge.data.mitdb import read_mitdb
from jepa_edge.data.preprocess import EcgPreprocessing, canonical_lead, resample
from jepa_edge.tasks.ec57 import FlagScore, flag_score, reference_window_flags

from .config import QualityConfig
from .quality import artefact_score, lead_measures, noisy_leads, score_inputs

# de Chazal's inter-patient split, restricted to the records in ../shared/data (paced 102, 104, 107 excluded)
DS1 = ("101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122", "124")
DS2 = ("100", "103", "105", "111", "113", "117", "121", "123")
LEAD_SLOTS = ("MLII", "chest")  # MIT-BIH: MLII and one chest lead (V1 mostly; V2, V4, V5 in some records)


@dataclass
class RecordQuality:
    """One record's windows: per lead (MLII, chest) the noise measures and the `~` reference flags."""

    name: str
    leads: tuple[str, str]  # header names of the two slots
    starts: np.ndarray  # window starts, model-rate samples
    measures: dict[str, np.ndarray]  # name -> (2, windows)
    reference: np.ndarray  # (2, windows) bool

    def flags(self, q: QualityConfig) -> np.ndarray:
        """(2, windows): the stream's noise flag of each lead under limits `q`."""
        return noisy_leads(self.measures, q)


def record_quality(path: str | Path, pre: EcgPreprocessing | None = None, q: QualityConfig | None = None,
                   min_fraction: float = 0.5, batch: int = 256) -> RecordQuality:
    """Replay MIT-BIH record `path` (MLII first, then its chest lead) through resampling and the causal band-pass
    as the stream does (the stream equals this offline form to float rounding: tests/test_stream.py), cut windows
    at the stream's hop and compute every lead's measures; reference = `~` noisy/unreadable for >= min_fraction."""
    pre = pre or EcgPreprocessing(leads=("II", "V1"))
    q = q or QualityConfig()
    header_names = tuple(wfdb.rdheader(str(path)).sig_name)
    names = [canonical_lead(n) or n for n in header_names]
    if len(names) != 2 or "II" not in names:
        raise RecordError(Path(path).with_suffix(".hea"), f"signals {list(header_names)}: a MIT-BIH-style record "
                          "with MLII and one chest lead is needed to score quality flags per lead", "missing-leads")
    order = [names.index("II"), 1 - names.index("II")]
    rec, ann = read_mitdb(path, leads=("II", names[order[1]]))
    y = resample(rec.signal, rec.fs, pre.fs)
    band, _ = pre.filter(y, pre.initial_state(y[:, 0]))
    n, hop = pre.window, pre.hop
    starts = np.arange(1 + (y.shape[1] - n) // hop) * hop
    raw_w, band_w = sliding_window_view(y, n, axis=-1), sliding_window_view(band, n, axis=-1)
    parts = [lead_measures(raw_w[:, starts[i : i + batch]], band_w[:, starts[i : i + batch]], pre.fs, q)
             for i in range(0, len(starts), batch)]
    measures = {k: np.concatenate([p[k] for p in parts], axis=-1) for k in parts[0]}
    intervals = ann.noise_intervals(len(names), rec.signal.shape[1])
    src_starts = (starts * rec.fs / pre.fs).astype(np.int64)
    length = int(round(pre.window_s * rec.fs))
    reference = np.stack([reference_window_flags(intervals[o], src_starts, length, min_fraction) for o in order])
    return RecordQuality(Path(path).name, (header_names[order[0]], header_names[order[1]]), starts, measures,
                         reference)


def scores(records: Iterable[RecordQuality], q: QualityConfig) -> dict[str, FlagScore]:
    """Gross Se/Sp of the noise flags per lead slot, 'both' (every lead-window once) and 'window' (a window is
    reference-noisy if either lead is, flagged if either lead is: what the stream withholds)."""
    out = {slot: FlagScore() for slot in (*LEAD_SLOTS, "both", "window")}
    for r in records:
        flagged = r.flags(q)
        for i, slot in enumerate(LEAD_SLOTS):
            s = flag_score(r.reference[i], flagged[i])
            out[slot] += s
            out["both"] += s
        out["window"] += flag_score(r.reference.any(axis=0), flagged.any(axis=0))
    return out


def _logistic(x: np.ndarray, y: np.ndarray, ridge: float, iterations: int = 50) -> np.ndarray:
    """Ridge-penalised logistic regression by Newton steps on standardised inputs; returns weights on the raw
    inputs (the intercept is dropped: the limit absorbs it)."""
    mu, sd = x.mean(axis=0), x.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    z = np.concatenate([np.ones((len(x), 1)), (x - mu) / sd], axis=1)
    w = np.zeros(z.shape[1])
    pen = np.full(z.shape[1], ridge)
    pen[0] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(z @ w)))
        grad = z.T @ (p - y) / len(z) + pen * w
        hess = (z * (p * (1 - p))[:, None]).T @ z / len(z) + np.diag(pen)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return w[1:] / sd


def fit_artefact(records: Sequence[RecordQuality], base: QualityConfig | None = None, min_sp: float = 0.97,
                 ridge: float = 1e-3) -> QualityConfig:
    """The rule: a logistic regression of the `~` reference on the five score inputs of every lead-window of
    `records` (both leads pooled, ridge `ridge` on standardised inputs) gives the weights (rounded to 4 decimals);
    the limit is the lowest (3 decimals, rounded up) at which gross specificity of the whole noise flag (hf and
    band-std limits included) on `records` is >= `min_sp`."""
    base = base or QualityConfig()
    ref = np.concatenate([r.reference.ravel() for r in records])
    x = np.concatenate([score_inputs(r.measures).reshape(-1, 5) for r in records])
    weights = tuple(round(float(v), 4) for v in _logistic(x, ref.astype(np.float64), ridge))
    q = replace(base, artefact_weights=weights, artefact_max=float("inf"))
    score = np.concatenate([artefact_score(r.measures, q).ravel() for r in records])
    fixed = np.concatenate([r.flags(q).ravel() for r in records])  # hf and band std alone (score limit at inf)
    clean = ~ref
    limit = math.ceil(float(np.quantile(score[clean], min_sp)) * 1000) / 1000
    while flag_score(ref, fixed | (score > limit)).sp < min_sp:
        limit = round(limit + 0.001, 3)
    return replace(q, artefact_max=limit)
