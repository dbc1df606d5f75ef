"""Beat classification for an arrhythmia monitor: N / SVEB / VEB from the context around each detected beat.

A beat is judged from a window of one lead around it (`BeatContext`: the beat sits `beat_at_s` into the
window), preprocessed by the same causal `EcgPreprocessing` the stream runs, so the preceding and following
beats, and thus the RR intervals that make a beat premature, are inside the model's input. Labels are the
AAMI classes of the MIT-BIH reference annotations. The split is inter-patient: no record contributes beats to
both training and the figures reported for the model (see BEAT_SPLIT).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ..data.calibration import CalibrationSet, calibration_hash
from ..data.ecg import check_record
from ..data.errors import DataError
from ..data.mitdb import read_mitdb
from ..data.paths import data_root
from ..data.preprocess import EcgPreprocessing, canonical_lead, other_lead
from .ec57 import aami_class

BEAT_CLASSES: tuple[str, ...] = ("N", "S", "V")  # AAMI normal, supraventricular ectopic, ventricular ectopic
PACED_RECORDS: tuple[str, ...] = ("102", "104", "107")  # AAMI leaves paced records out of beat statistics

# Inter-patient split of the 20 non-paced MIT-BIH 100-series records on these machines, chosen so every part
# holds VEB and SVEB beats: train 524 V / 136 S (119 bigeminy, 118, 124), validation 152 V / 13 S (114, 116: other
# patients, so model selection rewards what carries over to new patients, not a fit to the training patients'
# own beats), test 604 V / 43 S (106 with its VT run and bigeminy, 105 under heavy noise, 100, 109).
BEAT_SPLIT: dict[str, tuple[str, ...]] = {
    "train": ("101", "108", "112", "115", "118", "119", "122", "124"),
    "val": ("114", "116"),
    "test": ("100", "103", "105", "106", "109", "111", "113", "117", "121", "123"),
}


class BeatDataError(DataError):
    """MIT-BIH records or annotations that cannot give labelled beats."""


@dataclass(frozen=True)
class BeatContext:
    """Where the beat sits in the model window: `beat_at_s` of signal before it, the rest after it."""

    beat_at_s: float = 2.0

    def offsets(self, pre: EcgPreprocessing) -> tuple[int, int]:
        """(samples before the beat, samples from the beat to the window end) at the model rate."""
        before = int(round(self.beat_at_s * pre.fs))
        if not 0 < before < pre.window:
            raise BeatDataError(f"beat position {self.beat_at_s} s outside the {pre.window_s} s model window")
        return before, pre.window - before

    def windows(self, signal: np.ndarray, beats: np.ndarray, pre: EcgPreprocessing) -> tuple[np.ndarray, np.ndarray]:
        """Windows (n, leads, window) around the beats of a preprocessed (leads, samples) signal, and the mask of
        beats that had a full context (those too near either end have none)."""
        before, after = self.offsets(pre)
        beats = np.asarray(beats, dtype=np.int64)
        ok = (beats - before >= 0) & (beats + after <= signal.shape[-1])
        starts = beats[ok] - before
        if not len(starts):
            return np.zeros((0, signal.shape[0], pre.window), np.float32), ok
        idx = starts[:, None] + np.arange(pre.window)[None, :]
        return np.ascontiguousarray(signal[:, idx].transpose(1, 0, 2), dtype=np.float32), ok


def beat_preprocessing(fs: int = 250, window_s: float = 3.0, leads: Sequence[str] = ("II",)) -> EcgPreprocessing:
    """The beat model's default input: one limb lead (MIT-BIH MLII), 3 s at 250 Hz, the stream's band-pass."""
    return EcgPreprocessing(fs=fs, window_s=window_s, hop_s=window_s, leads=tuple(leads))


@dataclass
class BeatSet(CalibrationSet):
    """Beat windows with their labels and each beat's RR features (`rr_features`) and template features
    (`template_features` with the default BeatTemplate) for the RR fusion."""

    rr: np.ndarray | None = None  # RR_FEATURES, then RR_SPREAD_FEATURES
    template: np.ndarray | None = None

    def fusion_features(self, with_template: bool, spread: bool = True) -> np.ndarray:
        """The columns a fusion with (or without) the template and the RR spread takes, in `RrFusion.features`
        order."""
        assert self.rr is not None and self.template is not None
        rr = self.rr if spread else self.rr[:, : len(RR_FEATURES)]
        return np.concatenate([rr, self.template], axis=1) if with_template else rr


@dataclass
class RecordBeats:
    """One record filtered at the model rate (not yet normalised) and its reference beats at that rate."""

    name: str
    filtered: np.ndarray  # (leads, samples) float64
    samples: np.ndarray  # beat positions at pre.fs
    classes: list[str]  # AAMI class per beat
    template_signal: np.ndarray | None = None  # (template leads, samples) normalised, when read with a template


def mitdb_dir(data: str | Path | None) -> Path:
    """The MIT-BIH folder: `data` itself when it holds .atr files, else its `mitdb/` subfolder."""
    root = Path(data) if data is not None else data_root()
    for cand in (root, root / "mitdb"):
        if cand.is_dir() and any(cand.glob("*.atr")):
            return cand
    raise BeatDataError(f"{root}: no MIT-BIH records (.hea/.dat/.atr) here or in {root / 'mitdb'}")


def read_record_beats(folder: Path, name: str, pre: EcgPreprocessing,
                      template: BeatTemplate | None = None) -> RecordBeats:
    """A record at the model rate in the model's lead order, band-passed causally as the stream does; with a
    `template`, also the normalised signal its features compare (`template_preprocessing`)."""
    leads, tpre = tuple(pre.leads), None
    if template is not None:
        _, header = check_record(folder / name)
        tpre = template_preprocessing(pre, header.sig_name or [], template)
        leads = tuple(dict.fromkeys(leads + tpre.leads))
    rec, ann = read_mitdb(folder / name, leads=leads)
    filtered = pre.filter_record(rec.signal, rec.fs)  # every row alike: one band-pass, one rate
    keep = [i for i, s in enumerate(ann.symbols) if aami_class(s) is not None]
    samples = np.round(ann.samples[keep] * (pre.fs / ann.fs)).astype(np.int64)
    rows = [leads.index(lead) for lead in pre.leads]
    compared = tpre.normalise(filtered[[leads.index(lead) for lead in tpre.leads]]) if tpre is not None else None
    return RecordBeats(name, filtered[rows], samples, [aami_class(ann.symbols[i]) for i in keep], compared)


def split_records(split: str) -> tuple[str, ...]:
    if split not in BEAT_SPLIT:
        raise BeatDataError(f"unknown beat split {split!r}; choose {sorted(BEAT_SPLIT)}")
    return BEAT_SPLIT[split]


def labelled_beats(pre: EcgPreprocessing, data: str | Path | None, split: str = "train", count: int | None = None,
                   seed: int = 0, context: BeatContext | None = None,
                   classes: Sequence[str] = BEAT_CLASSES) -> BeatSet:
    """Beat windows with class indices from the split's records (beats of other AAMI classes left out).

    `count`: a seeded sample of that many beats, stratified so rare classes keep at least their share. Needs
    fitted normalisation constants in `pre` (those of the model the beats are for)."""
    if pre.mean is None or pre.std is None:
        raise BeatDataError("beat windows need the model's fitted normalisation constants")
    context = context or BeatContext()
    template = BeatTemplate()
    folder = mitdb_dir(data)
    xs, ys, ids, offs, rr_all, tpl_all = [], [], [], [], [], []
    for name in split_records(split):
        rb = read_record_beats(folder, name, pre, template)
        keep = np.isin(rb.classes, list(classes))
        normed = pre.normalise(rb.filtered)
        samples = rb.samples[keep]
        windows, ok = context.windows(normed, samples, pre)
        labels = np.asarray([classes.index(c) for c, k in zip(rb.classes, keep, strict=True) if k])[ok]
        rr_all.append(rr_features(rb.samples, spread=True)[keep][ok])
        tpl_all.append(template_features(rb.template_signal, rb.samples, pre.fs, template)[keep][ok])
        xs.append(windows)
        ys.append(labels)
        ids += [name] * len(labels)
        offs += samples[ok].tolist()
    x, y = np.concatenate(xs), np.concatenate(ys).astype(np.int64)
    if not len(y):
        raise BeatDataError(f"{folder}: no labelled beats in split {split!r}")
    pick = np.arange(len(y))
    if count is not None and count < len(y):
        pick = stratified_pick(y, count, seed)
    return BeatSet(windows=x[pick], labels=y[pick], classes=tuple(classes),
                   record_ids=[ids[i] for i in pick], offsets=[offs[i] for i in pick], seed=seed,
                   sha256=calibration_hash([ids[i] for i in pick], [offs[i] for i in pick], pre),
                   rr=np.concatenate(rr_all)[pick], template=np.concatenate(tpl_all)[pick])


def stratified_pick(y: np.ndarray, count: int, seed: int) -> np.ndarray:
    """`count` indices, every class getting an equal share where it has enough beats (rare classes in full)."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(y == c) for c in np.unique(y)]
    share = count // len(groups)
    picked = [g if len(g) <= share else rng.choice(g, share, replace=False) for g in groups]
    rest = count - sum(len(p) for p in picked)
    if rest > 0:
        left = np.setdiff1d(np.arange(len(y)), np.concatenate(picked))
        picked.append(rng.choice(left, min(rest, len(left)), replace=False))
    return np.sort(np.concatenate(picked))




# -- RR intervals ------------------------------------------------------------------------------------------
RR_FEATURES: tuple[str, ...] = ("log pre-RR / local mean RR", "log post-RR / local mean RR", "log pre-RR / post-RR")
RR_HISTORY = 16  # RR intervals before a beat that make its local mean
RR_CLIP = 2.0
# How much the patient's own rhythm varies, from the RR_HISTORY log-RR intervals before the pre-RR: a premature
# beat in a steady rhythm is many spreads early, a beat of sinus arrhythmia (RR swinging with breathing, as in
# MIT-BIH 106 and 113) only a few, which RR ratios alone cannot tell apart (README, the arrhythmia monitor).
RR_SPREAD_FEATURES: tuple[str, ...] = ("log std of the previous log-RR", "log MAD of the previous log-RR",
                                       "(log pre-RR - median previous log-RR) / MAD")
RR_SPREAD_EPS = 0.01  # log(spread + eps): a metronome rhythm stays finite
RR_MAD_SCALE = 1.4826  # MAD to a normal distribution's standard deviation
RR_Z_EPS = 0.02  # z = (log pre-RR - median) / (MAD + eps)
RR_Z_MAX = 10.0  # |z| clipped here, then divided by RR_Z_MAX / RR_CLIP into the other features' range
RR_SPREAD_FLOOR = -5.0  # lower clip of the two log spreads (log(eps) = -4.6)


def rr_features(samples: np.ndarray, history: int = RR_HISTORY, next_sample: int | None = None,
                spread: bool = False) -> np.ndarray:
    """(n, 3) RR features of beats at `samples` (sorted, every detected beat of a stream, any class): a premature
    beat has a short pre-RR and a long post-RR against the patient's own recent rhythm. The same code serves the
    training records (reference beat positions) and the stream (detected beats, `next_sample` the beat after the
    last one once known). Missing neighbours fall back to the other side. `spread`: (n, 6), RR_SPREAD_FEATURES
    after them (`rr_spread_features`)."""
    s = np.asarray(samples, dtype=np.float64)
    n = len(s)
    out = np.zeros((n, len(RR_FEATURES)))
    if spread:
        return np.concatenate([rr_features(s, history, next_sample), rr_spread_features(s, history)], axis=1)
    if n < 2 and next_sample is None:
        return out
    rr = np.diff(s)
    pre = np.r_[np.nan, rr]
    post = np.r_[rr, np.nan if next_sample is None else float(next_sample) - s[-1]] if n else np.zeros(0)
    pre = np.where(np.isnan(pre), post, pre)
    post = np.where(np.isnan(post), pre, post)
    csum = np.r_[0.0, np.cumsum(rr)]
    for i in range(n):
        lo = max(0, i - history)
        count = i - lo  # RR intervals ending at beats lo+1..i
        mean = (csum[i] - csum[lo]) / count if count else pre[i]
        out[i] = (np.log(pre[i] / mean), np.log(post[i] / mean), np.log(pre[i] / post[i]))
    return np.clip(np.nan_to_num(out), -RR_CLIP, RR_CLIP)


def rr_spread_features(samples: np.ndarray, history: int = RR_HISTORY) -> np.ndarray:
    """(n, 3) RR_SPREAD_FEATURES of beats at `samples`: the std and the MAD of the `history` log-RR intervals
    before each beat's pre-RR (the intervals ending at the `history` beats before it), and the pre-RR's distance
    from their median in MADs. Beats with fewer than two such intervals get log(eps), log(eps), 0."""
    log_rr = np.log(np.diff(np.asarray(samples, dtype=np.float64)))
    out = np.zeros((len(samples), len(RR_SPREAD_FEATURES)))
    out[:, :2] = np.log(RR_SPREAD_EPS)
    for i in range(2, len(samples)):
        past = log_rr[max(0, i - 1 - history) : i - 1]
        if len(past) < 2:
            continue
        med = np.median(past)
        mad = RR_MAD_SCALE * np.median(np.abs(past - med))
        z = np.clip((log_rr[i - 1] - med) / (mad + RR_Z_EPS), -RR_Z_MAX, RR_Z_MAX) * (RR_CLIP / RR_Z_MAX)
        out[i] = (np.log(past.std() + RR_SPREAD_EPS), np.log(mad + RR_SPREAD_EPS), z)
    return np.clip(np.nan_to_num(out), (RR_SPREAD_FLOOR, RR_SPREAD_FLOOR, -RR_CLIP), RR_CLIP)


# -- the beat against the patient's own recent beats --------------------------------------------------------
TEMPLATE_FEATURES: tuple[str, ...] = ("1 - corr(QRS, template)", "log QRS range / template range",
                                      "log QRS slope length / template slope length")


@dataclass(frozen=True)
class BeatTemplate:
    """The QRS of a beat compared with the median QRS of the patient's `beats` previous beats (any label): an
    ectopic beat looks unlike the patient's own recent beats, whatever the patient's normal shape (an LBBB beat is
    wide, but so is its template). Compared `half_s` either side of the beat on `leads` leads: the beat model's
    lead, then (2) the first other lead of the record or stream (`template_preprocessing`), where a PVC that
    MLII hides often shows (MIT-BIH's V1 / V2 / V5)."""

    beats: int = 16
    half_s: float = 0.15
    leads: int = 2

    def __post_init__(self) -> None:
        if self.beats < 1 or self.half_s <= 0 or self.leads not in (1, 2):
            raise BeatDataError(f"template needs beats >= 1, half_s > 0 and 1 or 2 leads, got {self.beats}, "
                                f"{self.half_s}, {self.leads}")

    @property
    def feature_names(self) -> tuple[str, ...]:
        second = tuple(f"{f}, second lead" for f in TEMPLATE_FEATURES) if self.leads == 2 else ()
        return TEMPLATE_FEATURES + second

    def half(self, fs: float) -> int:
        return max(2, int(round(self.half_s * fs)))

    def segment(self, signal: np.ndarray, beat: int, fs: float, start: int = 0) -> np.ndarray | None:
        """The beat's QRS, (leads, 2 * half), from the first `leads` rows of a (rows, samples) signal whose first
        sample is absolute index `start`; None near either end."""
        if signal.shape[0] < self.leads:
            raise BeatDataError(f"the template compares {self.leads} leads; the signal has {signal.shape[0]}")
        h = self.half(fs)
        a, b = beat - h - start, beat + h - start
        return None if a < 0 or b > signal.shape[-1] else np.asarray(signal[: self.leads, a:b], dtype=np.float64)

    def features(self, seg: np.ndarray | None, previous: Sequence[np.ndarray | None]) -> np.ndarray:
        """`feature_names` of one beat from its segment and those of the beats before it (zeros without either)."""
        prev = [g for g in previous[-self.beats:] if g is not None]
        if seg is None or not prev:
            return np.zeros(len(self.feature_names))
        template = np.median(np.stack(prev), axis=0)
        out = []
        for g, t in zip(seg, template, strict=True):
            g, t = g - g.mean(), t - t.mean()
            corr = float(g @ t) / (float(np.linalg.norm(g) * np.linalg.norm(t)) + 1e-9)
            out += [1.0 - corr, np.log((np.ptp(g) + 1e-3) / (np.ptp(t) + 1e-3)),
                    np.log((np.abs(np.diff(g)).sum() + 1e-3) / (np.abs(np.diff(t)).sum() + 1e-3))]
        return np.clip(np.asarray(out), -RR_CLIP, RR_CLIP)

    @classmethod
    def from_dict(cls, d: dict) -> BeatTemplate:
        return cls(**{"leads": 1, **d})  # fusions written before the second lead compared one


def template_preprocessing(pre: EcgPreprocessing, leads: Sequence[str], template: BeatTemplate) -> EcgPreprocessing:
    """What the template compares, for a record or stream with `leads`: the beat model's lead as the model sees
    it, then the first other lead, filtered alike and scaled by the model lead's constants (the features ignore
    scale and offset). Raises BeatDataError when the signal has no second lead to compare."""
    first = pre.leads[0]
    chosen: tuple[str, ...] = (first,)
    if template.leads == 2:
        other = other_lead(leads, first)
        if other is None:
            raise BeatDataError(f"the beat fusion compares beats on {first} and a second lead; the signal has "
                                f"{[canonical_lead(n) or n for n in leads]}")
        chosen = (first, other)
    k = len(chosen)
    return replace(pre, leads=chosen, mean=None if pre.mean is None else (pre.mean[0],) * k,
                   std=None if pre.std is None else (pre.std[0],) * k)


def template_features(signal: np.ndarray, samples: np.ndarray, fs: float, template: BeatTemplate) -> np.ndarray:
    """(n, features) template features of every beat at `samples` (sorted, every beat of the record or stream)
    from the (leads, samples) model-rate signal of `template_preprocessing`; the stream computes the same rows beat
    by beat."""
    segs = [template.segment(signal, int(b), fs) for b in samples]
    return np.stack([template.features(segs[i], segs[max(0, i - template.beats):i]) for i in range(len(segs))]) \
        if len(segs) else np.zeros((0, len(template.feature_names)))


@dataclass(frozen=True)
class RrFusion:
    """Late fusion of the beat engine's logits with RR features (and, with a `template`, the beat against the
    patient's own recent beats): fused = W @ [logits - mean(logits), rr, template features] + b.

    Kept outside the engine so INT8 engines, bundles and firmware keep one input; it is a few multiply-adds per beat.
    """

    weight: tuple[tuple[float, ...], ...]  # (classes, classes + len(features))
    bias: tuple[float, ...]
    history: int = RR_HISTORY
    template: BeatTemplate | None = None
    ridge: float | None = None  # the L2 weight the fit used (chosen by leave-one-record-out when fitted so)
    spread: bool = False  # RR_SPREAD_FEATURES after RR_FEATURES (fusions fitted before them have none)

    @property
    def features(self) -> tuple[str, ...]:
        return (RR_FEATURES + (RR_SPREAD_FEATURES if self.spread else ())
                + (self.template.feature_names if self.template is not None else ()))

    def __call__(self, logits: np.ndarray, feats: np.ndarray) -> np.ndarray:
        z = np.asarray(logits, dtype=np.float64)
        f = np.asarray(feats, dtype=np.float64)
        if f.shape[1] != len(self.features):
            raise BeatDataError(f"the RR fusion takes {len(self.features)} features {self.features}, got {f.shape[1]}")
        x = np.concatenate([z - z.mean(axis=1, keepdims=True), f], axis=1)
        return x @ np.asarray(self.weight).T + np.asarray(self.bias)

    def to_dict(self) -> dict:
        d = {"weight": [list(r) for r in self.weight], "bias": list(self.bias), "history": self.history,
             "features": ["logits - mean(logits)", *self.features],
             "decode": "fused = weight @ [logits - mean(logits), rr, template] + bias; class = argmax(fused)"}
        if self.template is not None:
            d["template"] = asdict(self.template)
        if self.ridge is not None:
            d["ridge"] = self.ridge
        if self.spread:
            d["spread"] = True
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RrFusion:
        template = BeatTemplate.from_dict(d["template"]) if d.get("template") else None
        fusion = cls(tuple(tuple(float(v) for v in r) for r in d["weight"]), tuple(float(v) for v in d["bias"]),
                     int(d.get("history", RR_HISTORY)), template, d.get("ridge"), bool(d.get("spread", False)))
        row_widths = {len(r) for r in fusion.weight}
        if len(fusion.bias) != len(fusion.weight) or row_widths != {len(fusion.bias) + len(fusion.features)}:
            raise BeatDataError(f"rr_fusion weight is not (classes, classes + {len(fusion.features)} features)")
        return fusion


RIDGES: tuple[float, ...] = (1e-2, 1e-3, 1e-4, 1e-5)


def _class_weights(y: np.ndarray, classes: int, balance: float) -> np.ndarray:
    """(inverse class frequency) ** `balance`, 0 for a class with no beats: the fusions' loss weights."""
    counts = np.bincount(np.asarray(y), minlength=classes).astype(np.float64)
    return np.where(counts > 0, (counts.sum() / (classes * np.maximum(counts, 1))) ** balance, 0.0)


def fit_rr_fusion(logits: np.ndarray, feats: np.ndarray, y: np.ndarray, classes: int = len(BEAT_CLASSES),
                  ridge: float = 1e-2, balance: float = 0.5, steps: int = 500,
                  template: BeatTemplate | None = None, spread: bool = False) -> RrFusion:
    """Multinomial logistic regression (L2 `ridge`) of the labels on [centred logits, features]; classes weighed
    by (inverse frequency) ** `balance`: 1 equalises them (floods a monitor with false SVEB calls when S is one
    beat in 500), 0 keeps the prior (never calls S). `feats`: RR features (with `spread`, RR_SPREAD_FEATURES after
    them), then TEMPLATE_FEATURES with `template`."""
    import torch

    z = np.asarray(logits, dtype=np.float64)
    x = torch.tensor(np.concatenate([z - z.mean(axis=1, keepdims=True), feats], axis=1), dtype=torch.float64)
    t = torch.tensor(np.asarray(y), dtype=torch.int64)
    weight = torch.tensor(_class_weights(y, classes, balance))
    with torch.random.fork_rng(devices=[]):  # a seeded start for a repeatable fit, the caller's RNG untouched
        torch.manual_seed(0)
        lin = torch.nn.Linear(x.shape[1], classes).double()
    opt = torch.optim.LBFGS(lin.parameters(), lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(lin(x), t, weight=weight) + ridge * lin.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    w, b = lin.weight.detach().numpy(), lin.bias.detach().numpy()
    return RrFusion(tuple(tuple(float(v) for v in r) for r in w), tuple(float(v) for v in b), template=template,
                    ridge=ridge, spread=spread)


RESIDUAL_RIDGE = 1e-2  # L2 weight on the logit terms of `fit_residual_fusion`


def fit_residual_fusion(logits: np.ndarray, rule: RrFusion, feats: np.ndarray, y: np.ndarray,
                        ridge: float = RESIDUAL_RIDGE, balance: float = 0.5, steps: int = 500,
                        classes: int = len(BEAT_CLASSES)) -> RrFusion:
    """The model's logits as a correction of a logit-free `rule` fusion: fused = rule(features) + A @ (logits -
    mean(logits)) + c, with A (L2 `ridge`, so logits that do not help stay near zero) and c fitted on beats of
    patients the model never trained on (`logits`, `feats`, `y`), the rule's weights kept. The RR / template
    weights come from every record (leave-one-record-out ridge) instead of the 13 SVEBs of two validation
    patients, which a direct fit of all of them overfits (README, the arrhythmia monitor). Returned as one
    RrFusion (same decode: weight @ [logits - mean(logits), features] + bias)."""
    import torch

    w_rule = np.asarray(rule.weight)[:, classes:]
    offset = torch.tensor(np.asarray(feats, dtype=np.float64) @ w_rule.T + np.asarray(rule.bias))
    z = np.asarray(logits, dtype=np.float64)
    x = torch.tensor(z - z.mean(axis=1, keepdims=True))
    t = torch.tensor(np.asarray(y), dtype=torch.int64)
    weight = torch.tensor(_class_weights(y, classes, balance))
    a = torch.zeros((classes, x.shape[1]), dtype=torch.float64, requires_grad=True)
    c = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([a, c], lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(offset + x @ a.T + c, t, weight=weight) + ridge * a.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    w = np.concatenate([a.detach().numpy(), w_rule], axis=1)
    b = np.asarray(rule.bias) + c.detach().numpy()
    return RrFusion(tuple(tuple(float(v) for v in r) for r in w), tuple(float(v) for v in b), rule.history,
                    rule.template, rule.ridge, rule.spread)


def select_ridge(feats: np.ndarray, y: np.ndarray, groups: Sequence[str], template: BeatTemplate | None = None,
                 ridges: Sequence[float] = RIDGES, balance: float = 0.5, spread: bool = False
                 ) -> tuple[float, dict[float, float]]:
    """The ridge whose logit-free fusion has the best pooled macro F1 with each record held out in turn: the
    fusion must carry over to patients it never saw, which a single in-sample fit cannot tell. Returns the
    ridge and every candidate's score. Too strong a ridge flattens the RR weights until premature beats stop
    crossing the class boundary (1e-2: VEB Se 0.87 held out vs 0.92 at 1e-3, SVEB never called)."""
    from .beat_probe import class_report

    groups = np.asarray(groups)
    y = np.asarray(y)
    zeros = np.zeros((len(y), len(BEAT_CLASSES)))
    scores = {}
    for ridge in ridges:
        pred = np.zeros(len(y), dtype=np.int64)
        for g in np.unique(groups):
            held = groups == g
            fusion = fit_rr_fusion(zeros[~held], feats[~held], y[~held], ridge=ridge, balance=balance,
                                   template=template, spread=spread)
            pred[held] = fusion(zeros[held], feats[held]).argmax(1)
        scores[ridge] = class_report(y, pred)["macro_f1"]
    return max(scores, key=lambda r: scores[r]), scores


__all__ = ["BEAT_CLASSES", "BEAT_SPLIT", "PACED_RECORDS", "RESIDUAL_RIDGE", "RIDGES", "RR_FEATURES",
           "RR_SPREAD_FEATURES", "TEMPLATE_FEATURES", "BeatContext", "BeatDataError", "BeatSet", "BeatTemplate",
           "RecordBeats", "RrFusion", "beat_preprocessing", "fit_residual_fusion", "fit_rr_fusion", "labelled_beats",
           "mitdb_dir", "read_record_beats", "rr_features", "rr_spread_features", "select_ridge", "split_records",
           "stratified_pick", "template_features"]
