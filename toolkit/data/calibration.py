"""Calibration windows for INT8: drawn from training folds, stratified by label, seeded, and hashed.

The sha256 covers the exact (record, offset) list and the preprocessing, so a bundle manifest can say which
data its INT8 ranges came from and a rebuild can prove it used the same.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .ecg import read_record
from .errors import DataError
from .paths import find_ptbxl
from .preprocess import EcgPreprocessing
from .ptbxl import SPLIT_FOLDS, PtbXl

DEFAULT_WINDOWS = 300


@dataclass
class CalibrationSet:
    """Preprocessed windows (n, leads, window) float32, their labels, and where each came from."""

    windows: np.ndarray
    labels: np.ndarray | None
    classes: tuple[str, ...]
    record_ids: list[str]
    offsets: list[int]
    seed: int
    sha256: str
    # with keep_sources: per window (raw record (leads, samples) in mV as read, its fs, window offset), so a
    # bundle can carry what firmware re-runs the preprocessing on
    sources: list[tuple[np.ndarray, float, int]] | None = None

    def __len__(self) -> int:
        return len(self.windows)

    @property
    def records(self) -> int:
        return len(set(self.record_ids))

    def manifest(self) -> dict:
        """The manifest's `calibration` field."""
        return {"sha256": self.sha256, "windows": len(self), "records": self.records, "seed": self.seed}


def calibration_hash(record_ids: list[str], offsets: list[int], pre: EcgPreprocessing) -> str:
    payload = {"windows": [f"{r}@{o}" for r, o in zip(record_ids, offsets, strict=True)],
               "preprocessing": pre.to_dict()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def stratified_picks(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Record indices (with repeats only when n exceeds the records) whose label combinations appear in
    proportion to the training set, every combination at least once when n allows it."""
    keys = ["".join("1" if v else "0" for v in row) for row in labels]
    strata: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        strata.setdefault(k, []).append(i)
    names = sorted(strata)
    sizes = np.array([len(strata[k]) for k in names], dtype=float)
    quota = sizes / sizes.sum() * n
    counts = np.floor(quota).astype(int)
    if n >= len(names):
        counts = np.maximum(counts, 1)
    for j in np.argsort(-(quota - np.floor(quota)), kind="stable"):  # largest remainder fills up to n
        if counts.sum() >= n:
            break
        counts[j] += 1
    while counts.sum() > n:  # the minimum of one per stratum overshot: trim the largest strata
        counts[int(np.argmax(counts))] -= 1
    picks: list[int] = []
    for name, count in zip(names, counts, strict=True):
        members = np.array(strata[name])
        order = np.concatenate([rng.permutation(members) for _ in range(int(np.ceil(count / len(members))) or 1)])
        picks.extend(order[:count].tolist())
    return np.array(sorted(picks), dtype=np.int64)


def _label_columns(db_classes: tuple[str, ...], wanted: list[str] | None, source: Path) -> list[int]:
    if not wanted:
        return list(range(len(db_classes)))
    missing = [c for c in wanted if c not in db_classes]
    if missing:
        raise DataError(f"{source}: classifier labels {missing} are not PTB-XL classes of this label set")
    return [db_classes.index(c) for c in wanted]


def build_calibration_set(pre: EcgPreprocessing, data: str | Path | None = None,
                          windows: int | None = DEFAULT_WINDOWS, seed: int = 0, labels: list[str] | None = None,
                          split: str = "train", keep_sources: bool = False) -> CalibrationSet:
    """`windows` preprocessed windows from PTB-XL `split` folds under `data` (default: the JEPA_EDGE_DATA
    PTB-XL folder), stratified by the classifier's `labels`. More windows than records -> random crops
    (when the model window is shorter than a record) or repeats, both seeded. `windows=None`: every labelled
    record of the split once (validation sets). `keep_sources`: also keep each window's raw record (for golden
    vectors that firmware re-runs the preprocessing on)."""
    if windows is not None and windows < 1:
        raise DataError(f"calibration needs at least one window, got {windows}")
    root = find_ptbxl(data) if data is None or not (Path(data) / "ptbxl_database.csv").is_file() else Path(data)
    if root is None:
        raise DataError(f"{data or 'JEPA_EDGE_DATA'}: no PTB-XL folder (ptbxl_database.csv) for calibration data")
    db = PtbXl(root)
    y_all, db_classes = db.labels("superdiagnostic")  # the classifier's labels name their label set
    if labels and not set(labels) <= set(db_classes):
        y_all, db_classes = db.labels("all")
    cols = _label_columns(db_classes, labels, root)
    if split not in SPLIT_FOLDS:
        raise DataError(f"unknown split {split!r}; choose from {sorted(SPLIT_FOLDS)}")
    rows = np.flatnonzero(db.table["strat_fold"].isin(SPLIT_FOLDS[split]).to_numpy() & (y_all.sum(axis=1) > 0))
    if len(rows) == 0:
        raise DataError(f"{root}: no labelled records in the {split} folds")
    y = y_all[rows][:, cols]
    rng = np.random.default_rng(seed)
    picks = np.arange(len(rows)) if windows is None else stratified_picks(y, windows, rng)
    unique = np.unique(picks)
    processed: dict[int, np.ndarray] = {}
    names: dict[int, str] = {}
    raw: dict[int, tuple[np.ndarray, float]] = {}
    for i in unique.tolist():  # read only the records drawn, not the whole split
        rec = read_record(root / db.table["filename_hr"].iloc[rows[i]], leads=pre.leads)
        x = pre(rec.signal.astype(np.float64), fs_in=rec.fs)
        if keep_sources:
            raw[i] = (rec.signal.astype(np.float64), float(rec.fs))
        if x.shape[-1] < pre.window:
            raise DataError(f"{rec.path}: {x.shape[-1] / pre.fs:g} s is shorter than the model window "
                            f"of {pre.window_s:g} s")
        processed[i] = x
        names[i] = Path(rec.path).name
    out, ids, offsets = [], [], []
    for i in picks.tolist():
        rec = processed[i]
        offset = int(rng.integers(0, rec.shape[-1] - pre.window + 1))
        out.append(rec[:, offset: offset + pre.window])
        ids.append(names[i])
        offsets.append(offset)
    classes = tuple(db_classes[c] for c in cols)
    sources = [(*raw[i], off) for i, off in zip(picks.tolist(), offsets, strict=True)] if keep_sources else None
    return CalibrationSet(windows=np.stack(out).astype(np.float32), labels=y[picks], classes=classes,
                          record_ids=ids, offsets=offsets, seed=seed, sha256=calibration_hash(ids, offsets, pre),
                          sources=sources)
