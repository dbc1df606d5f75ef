"""PTB-XL as a labelled source: the official strat_fold split, superdiagnostic (or 'all') SCP labels, and the
database's own strata (site, sex, age band, fold). Same records and labels as `PtbXl.load`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import DataError, SkipReport
from ..preprocess import STANDARD_LEADS, resample
from ..ptbxl import SPLIT_FOLDS, SUPERCLASSES, PtbXl
from .base import LabelledRecords, Split, age_band

SEX_NAMES = {"0": "male", "1": "female"}  # PTB-XL's coding of the sex column


class PtbXlSource:
    format = "ptbxl"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.db = PtbXl(self.root)

    def label_set(self, classes: Sequence[str] | None) -> str:
        """superdiagnostic when the classes are among its classes (PTB-XL's superclasses, or a synthetic PTB-XL-layout
        set's own) or not given, else 'all'."""
        if classes is None or set(classes) <= set(SUPERCLASSES):
            return "superdiagnostic"
        return "superdiagnostic" if set(classes) <= set(self.db.labels("superdiagnostic")[1]) else "all"

    def records(self, split: Split = None, classes: Sequence[str] | None = None,
                leads: Sequence[str] = STANDARD_LEADS, fs: float | None = None, min_seconds: float = 0.0,
                limit: int | None = None, skip_bad: bool = True, labelled: bool = True) -> LabelledRecords:
        label_set = self.label_set(classes) if labelled else None
        folds = None if split is None else SPLIT_FOLDS[split] if isinstance(split, str) and split in SPLIT_FOLDS \
            else split
        if isinstance(folds, str):
            raise DataError(f"unknown split {split!r}; choose from {sorted(SPLIT_FOLDS)}")
        held = self.db.load(label_set, folds=folds, leads=leads, limit=limit, skip_bad=skip_bad,
                            labelled_only=labelled)
        labels, names = held.labels, held.classes
        if labelled and classes is not None:
            missing = [c for c in classes if c not in names]
            if missing:
                raise DataError(f"{self.root}: label set {label_set!r} has no class(es) {missing}")
            labels = labels[:, [names.index(c) for c in classes]]
            names = tuple(classes)
        signals, rate = held.signals, held.fs
        if fs is not None and float(fs) != rate:
            signals, rate = resample(signals, rate, float(fs)).astype(np.float32), float(fs)
        if signals.shape[-1] / rate + 1e-9 < min_seconds:
            raise DataError(f"{self.root}: records of {signals.shape[-1] / rate:g} s are shorter than the model "
                            f"window of {min_seconds:g} s")
        table = self.db.table
        col = "filename_hr"
        row_of = {Path(f).name: i for i, f in enumerate(table[col])}
        rows = [row_of[i] for i in held.ids]

        def column(name: str, fmt=str) -> list[str]:
            if name not in table.columns:
                return ["unknown"] * len(rows)
            return [fmt(table[name].iloc[r]) for r in rows]

        strata = {"site": column("site", lambda v: "unknown" if v != v else f"site {int(v)}"),
                  "sex": column("sex", lambda v: SEX_NAMES.get(str(int(v)), "unknown") if v == v else "unknown"),
                  "age_band": column("age", age_band),
                  "fold": [str(int(f)) for f in held.folds]}
        info = {"format": self.format, "root": str(self.root), "label_set": label_set,
                "folds": None if folds is None else [int(f) for f in folds]}
        return LabelledRecords(signals=signals, fs=rate, leads=held.leads, labels=labels if labelled else None,
                               classes=names if labelled else (), ids=held.ids, strata=strata,
                               report=held.report or SkipReport(),
                               info=info)
