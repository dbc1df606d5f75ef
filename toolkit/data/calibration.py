"""Calibration windows for INT8: drawn from training folds, stratified by label, seeded, and hashed.

The sha256 covers the exact (record, offset) list and the preprocessing, so a bundle manifest can say which
data its INT8 ranges came from and a rebuild can prove it used the same.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
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


def _ptbxl_pool(root: Path, pre: EcgPreprocessing, labels: list[str] | None,
                split: str) -> tuple[np.ndarray, tuple[str, ...], Callable[[int], tuple[np.ndarray, float, str]]]:
    """PTB-XL split: labels of every labelled record, and a reader that loads only the records drawn."""
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

    def read(i: int) -> tuple[np.ndarray, float, str]:
        rec = read_record(root / db.table["filename_hr"].iloc[rows[i]], leads=pre.leads)
        return rec.signal.astype(np.float64), float(rec.fs), Path(rec.path).name

    return y_all[rows][:, cols], tuple(db_classes[c] for c in cols), read


def _source_pool(data: str | Path, pre: EcgPreprocessing, labels: list[str] | None,
                 split: str) -> tuple[np.ndarray, tuple[str, ...], Callable[[int], tuple[np.ndarray, float, str]]]:
    """Any other labelled source (Challenge folder, labels.csv folder): the split read once, skips counted."""
    from .sources import open_source

    source = open_source(data)
    held = source.records(split, classes=labels, leads=pre.leads, fs=pre.fs, min_seconds=pre.window_s)
    if held.labels is None:
        raise DataError(f"{source.root}: no labels for calibration data")

    def read(i: int) -> tuple[np.ndarray, float, str]:
        return np.asarray(held.signals[i], dtype=np.float64), float(held.fs), held.ids[i]

    return held.labels, held.classes, read


def build_calibration_set(pre: EcgPreprocessing, data: str | Path | None = None,
                          windows: int | None = DEFAULT_WINDOWS, seed: int = 0, labels: list[str] | None = None,
                          split: str = "train", keep_sources: bool = False) -> CalibrationSet:
    """`windows` preprocessed windows from the `split` of a labelled source under `data` (PTB-XL folds by default:
    the JEPA_EDGE_DATA PTB-XL folder; or a Challenge / labels.csv folder, split by its split/fold column or a
    hash of the record name), stratified by the classifier's `labels`. More windows than records -> random
    crops (when the model window is shorter than a record) or repeats, both seeded. `windows=None`: every
    labelled record of the split once (validation sets). `keep_sources`: also keep each window's raw record
    (for golden vectors that firmware re-runs the preprocessing on)."""
    if windows is not None and windows < 1:
        raise DataError(f"calibration needs at least one window, got {windows}")
    root = find_ptbxl(data)
    if root is not None:
        y, classes, read = _ptbxl_pool(root, pre, labels, split)
    elif data is not None and Path(data).is_dir():
        y, classes, read = _source_pool(data, pre, labels, split)
    else:
        raise DataError(f"{data or 'JEPA_EDGE_DATA'}: no PTB-XL folder (ptbxl_database.csv) or other labelled "
                        "folder for calibration data")
    rng = np.random.default_rng(seed)
    picks = np.arange(len(y)) if windows is None else stratified_picks(y, windows, rng)
    unique = np.unique(picks)
    processed: dict[int, np.ndarray] = {}
    names: dict[int, str] = {}
    raw: dict[int, tuple[np.ndarray, float]] = {}
    for i in unique.tolist():  # preprocess only the records drawn
        signal, fs, name = read(i)
        x = pre(signal, fs_in=fs)
        if keep_sources:
            raw[i] = (signal, fs)
        if x.shape[-1] < pre.window:
            raise DataError(f"{name}: {x.shape[-1] / pre.fs:g} s is shorter than the model window "
                            f"of {pre.window_s:g} s")
        processed[i] = x
        names[i] = name
    out, ids, offsets = [], [], []
    for i in picks.tolist():
        rec = processed[i]
        offset = int(rng.integers(0, rec.shape[-1] - pre.window + 1))
        out.append(rec[:, offset: offset + pre.window])
        ids.append(names[i])
        offsets.append(offset)
    sources = [(*raw[i], off) for i, off in zip(picks.tolist(), offsets, strict=True)] if keep_sources else None
    return CalibrationSet(windows=np.stack(out).astype(np.float32), labels=y[picks], classes=classes,
                          record_ids=ids, offsets=offsets, seed=seed, sha256=calibration_hash(ids, offsets, pre),
                          sources=sources)
