"""One labelled-data interface for probe, calibration, distillation and parity: `LabelledSource.records(split)`.

A source answers with `LabelledRecords`: raw signals in mV (leads in the model's order, at one rate), labels
for the model's classes, strata columns (site, sex, age band, fold, ...) and the records it skipped with the
reason. Splits follow PTB-XL's convention everywhere: folds 1-8 train, 9 validation, 10 test. A user folder
gives its split in a `split` (train/val/test) or `fold` (1-10) column; without one, every record gets a fold
from a hash of its name (stable across runs and machines), and `split=None` means every record (what parity
uses on a user folder).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..ecg import read_record
from ..errors import DataError, RecordError, SkipReport
from ..preprocess import STANDARD_LEADS

SPLIT_FOLDS: dict[str, tuple[int, ...]] = {"train": (1, 2, 3, 4, 5, 6, 7, 8), "val": (9,), "test": (10,)}
Split = str | Sequence[int] | None  # "train" / "val" / "test", explicit folds, or None = every record


@dataclass
class LabelledRecords:
    """Records of one split: signals (n, leads, samples) or a list of (leads, samples_i), all at `fs`."""

    signals: np.ndarray | list[np.ndarray]
    fs: float
    leads: tuple[str, ...]
    labels: np.ndarray | None  # (n, classes) 0/1 float32; None for unlabelled data
    classes: tuple[str, ...]
    ids: list[str]
    strata: dict[str, list[str]] = field(default_factory=dict)  # column -> one value per record
    report: SkipReport = field(default_factory=SkipReport)
    info: dict[str, Any] = field(default_factory=dict)  # format, root, split rule, unmapped codes, ...

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def folds(self) -> np.ndarray | None:
        values = self.strata.get("fold")
        return None if values is None else np.array([int(v) for v in values])

    def to_dict(self) -> dict[str, Any]:
        """What a report says about the data: counts, positives, skips, the source's own notes."""
        out = dict(self.info)
        out.update({"records": len(self), "fs": float(self.fs), "strata_columns": sorted(self.strata),
                    "skip_report": self.report.to_dict()})
        if self.labels is not None:
            out["positives"] = {c: int(v) for c, v in zip(self.classes, self.labels.sum(axis=0), strict=True)}
        return out


@runtime_checkable
class LabelledSource(Protocol):
    """A folder of records the toolkit can draw labelled (or unlabelled) splits from."""

    format: str
    root: Path

    def records(self, split: Split = None, classes: Sequence[str] | None = None,
                leads: Sequence[str] = STANDARD_LEADS, fs: float | None = None, min_seconds: float = 0.0,
                limit: int | None = None, skip_bad: bool = True, labelled: bool = True) -> LabelledRecords: ...


def hashed_fold(name: str) -> int:
    """A fold 1..10 from the record name alone (CRC-32), for folders that carry no split."""
    return 1 + zlib.crc32(name.encode("utf-8")) % 10


def fold_of(name: str, row: dict[str, str], where: str) -> int:
    """A record's fold: its `fold` column, else its `split` column (train -> 1, val -> 9, test -> 10), else hashed."""
    if row.get("fold") not in (None, ""):
        try:
            fold = int(float(row["fold"]))
        except ValueError:
            raise DataError(f"{where}: record {name}: fold {row['fold']!r} is not a number 1-10") from None
        if not 1 <= fold <= 10:
            raise DataError(f"{where}: record {name}: fold {fold} outside 1-10")
        return fold
    if row.get("split") not in (None, ""):
        split = str(row["split"]).strip().lower()
        if split not in SPLIT_FOLDS:
            raise DataError(f"{where}: record {name}: split {row['split']!r}; expected one of {sorted(SPLIT_FOLDS)}")
        return SPLIT_FOLDS[split][0]
    return hashed_fold(name)


def wanted_folds(split: Split) -> set[int] | None:
    if split is None:
        return None
    if isinstance(split, str):
        if split not in SPLIT_FOLDS:
            raise DataError(f"unknown split {split!r}; choose from {sorted(SPLIT_FOLDS)}")
        return set(SPLIT_FOLDS[split])
    return {int(f) for f in split}


def check_classes(classes: Sequence[str] | None, available: Sequence[str], where: str) -> tuple[str, ...]:
    """The requested classes (default: all the source has); DataError naming those it cannot label."""
    if classes is None:
        return tuple(available)
    missing = [c for c in classes if c not in available]
    if missing:
        raise DataError(f"{where}: cannot label class(es) {missing}; this source labels {list(available)}")
    return tuple(classes)


@dataclass
class Candidate:
    """One record a source intends to read: its path, id, labels (class set) and strata values."""

    path: Path
    name: str
    classes: set[str] | None
    strata: dict[str, str]


def read_candidates(candidates: Iterable[Candidate | RecordError], classes: tuple[str, ...],
                    leads: Sequence[str], fs: float | None, min_seconds: float, limit: int | None,
                    skip_bad: bool, labelled: bool, info: dict[str, Any]) -> LabelledRecords:
    """Read every candidate with `read_record` (resampled to `fs`, leads reordered by name); records shorter than
    `min_seconds`, unreadable ones and per-record label problems (RecordError items) are raised, or counted when
    `skip_bad`."""
    report = SkipReport()
    signals, ids, labels = [], [], []
    strata: dict[str, list[str]] = {}
    rates: set[float] = set()
    for cand in candidates:
        if limit is not None and len(ids) >= limit:
            break
        try:
            if isinstance(cand, RecordError):
                raise cand
            rec = read_record(cand.path, leads=leads, fs=fs)
            if rec.duration_s + 1e-9 < min_seconds:
                raise RecordError(rec.path, f"{rec.duration_s:g} s is shorter than the model window of "
                                            f"{min_seconds:g} s", "too-short")
        except RecordError as err:
            if not skip_bad:
                raise
            report.add(err)
            continue
        report.loaded += 1
        rates.add(rec.fs)
        signals.append(rec.signal.astype(np.float32))
        ids.append(cand.name)
        if labelled and cand.classes is not None:
            labels.append([c in cand.classes for c in classes])
        for key, value in cand.strata.items():
            strata.setdefault(key, []).append(value)
    if not signals:
        raise DataError(f"{info.get('root')}: no usable records ({report.summary()})")
    if len(rates) != 1:
        raise DataError(f"{info.get('root')}: records at different rates {sorted(rates)}; pass fs to resample them")
    same = len({s.shape[1] for s in signals}) == 1
    return LabelledRecords(signals=np.stack(signals) if same else signals, fs=rates.pop(), leads=tuple(leads),
                           labels=np.array(labels, dtype=np.float32) if labelled else None,
                           classes=classes if labelled else (), ids=ids,
                           strata={k: v for k, v in strata.items() if len(v) == len(ids)}, report=report, info=info)


def age_band(age: str | float | None) -> str:
    """Age in decades-ish bands for strata ("<40", "40-59", "60-79", ">=80", "unknown")."""
    try:
        value = float(age)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "unknown"
    if not np.isfinite(value) or value < 0 or value > 130:
        return "unknown"
    return "<40" if value < 40 else "40-59" if value < 60 else "60-79" if value < 80 else ">=80"


__all__ = ["SPLIT_FOLDS", "Candidate", "LabelledRecords", "LabelledSource", "Split", "age_band", "check_classes",
           "fold_of", "hashed_fold", "read_candidates", "wanted_folds"]
