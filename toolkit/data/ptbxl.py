"""PTB-XL: records, SCP label sets (superdiagnostic, all) and the official strat_fold split."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .ecg import iter_records
from .errors import DataError, SkipReport
from .preprocess import STANDARD_LEADS

SUPERCLASSES: tuple[str, ...] = ("NORM", "MI", "STTC", "CD", "HYP")
SPLIT_FOLDS: dict[str, tuple[int, ...]] = {"train": (1, 2, 3, 4, 5, 6, 7, 8), "val": (9,), "test": (10,)}
LABEL_SETS = ("superdiagnostic", "all")


@dataclass
class EcgSet:
    """Raw signals (n, leads, samples) in mV at `fs`, multi-hot labels (n, classes), and identifiers."""

    signals: np.ndarray
    labels: np.ndarray | None
    classes: tuple[str, ...]
    ids: list[str]
    fs: float
    leads: tuple[str, ...]
    folds: np.ndarray | None = None
    report: SkipReport | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, mask: np.ndarray) -> EcgSet:
        idx = np.flatnonzero(mask)
        return EcgSet(
            signals=self.signals[idx],
            labels=None if self.labels is None else self.labels[idx],
            classes=self.classes,
            ids=[self.ids[i] for i in idx],
            fs=self.fs,
            leads=self.leads,
            folds=None if self.folds is None else self.folds[idx],
            report=self.report,
        )


class PtbXl:
    """A PTB-XL folder: ptbxl_database.csv, scp_statements.csv and records500/ (or records100/)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        db = self.root / "ptbxl_database.csv"
        stmts = self.root / "scp_statements.csv"
        for f in (db, stmts):
            if not f.is_file():
                raise DataError(f"{f}: not found; is {self.root} a PTB-XL folder?")
        try:
            self.table = pd.read_csv(db, index_col="ecg_id")
            self.table["scp_codes"] = self.table["scp_codes"].apply(ast.literal_eval)
            self.statements = pd.read_csv(stmts, index_col=0)
        except Exception as exc:
            raise DataError(f"{db}: cannot read PTB-XL tables: {exc}") from exc
        for col in ("scp_codes", "strat_fold", "filename_hr", "filename_lr"):
            if col not in self.table.columns:
                raise DataError(f"{db}: column {col!r} missing")

    def labels(self, label_set: str = "superdiagnostic") -> tuple[np.ndarray, tuple[str, ...]]:
        """Multi-hot labels for every row, and the class names (records with none stay all-zero)."""
        if label_set == "superdiagnostic":
            diag = self.statements[self.statements["diagnostic"] == 1]["diagnostic_class"].dropna().to_dict()
            present = set(diag.values())
            # PTB-XL's five superclasses; a PTB-XL-layout set with other classes (the synthetic one) keeps its own
            classes = SUPERCLASSES if present <= set(SUPERCLASSES) else tuple(sorted(present))
            sets = [{diag[c] for c in codes if c in diag} for codes in self.table["scp_codes"]]
        elif label_set == "all":
            known = set(self.statements.index)
            sets = [{c for c in codes if c in known} for codes in self.table["scp_codes"]]
            classes = tuple(sorted(set().union(*sets)))
        else:
            raise DataError(f"unknown PTB-XL label set {label_set!r}; choose from {LABEL_SETS}")
        y = np.array([[c in s for c in classes] for s in sets], dtype=np.float32)
        return y, classes

    def load(
        self,
        label_set: str | None = "superdiagnostic",
        folds: Sequence[int] | None = None,
        split: str | None = None,
        leads: Sequence[str] = STANDARD_LEADS,
        high_rate: bool = True,
        labelled_only: bool = True,
        skip_bad: bool = False,
        limit: int | None = None,
    ) -> EcgSet:
        """Read records (500 Hz by default) of the chosen folds/split with their labels."""
        if split is not None:
            if split not in SPLIT_FOLDS:
                raise DataError(f"unknown split {split!r}; choose from {sorted(SPLIT_FOLDS)}")
            folds = SPLIT_FOLDS[split]
        table = self.table
        y_all, classes = (None, ()) if label_set is None else self.labels(label_set)
        keep = np.ones(len(table), dtype=bool)
        if folds is not None:
            keep &= table["strat_fold"].isin(list(folds)).to_numpy()
        if y_all is not None and labelled_only:
            keep &= y_all.sum(axis=1) > 0
        rows = np.flatnonzero(keep)
        if limit is not None:
            rows = rows[:limit]
        col = "filename_hr" if high_rate else "filename_lr"
        paths = [self.root / table[col].iloc[i] for i in rows]
        report = SkipReport()
        signals, ids = [], []
        for rec in iter_records(paths, leads=leads, skip_bad=skip_bad, report=report):
            signals.append(rec.signal.astype(np.float32))
            ids.append(Path(rec.path).name)
        name_to_row = {Path(table[col].iloc[i]).name: i for i in rows}
        kept_rows = [name_to_row[n] for n in ids]
        if not signals:
            raise DataError(f"{self.root}: no usable records for folds={folds} ({report.summary()})")
        lengths = {s.shape[1] for s in signals}
        if len(lengths) != 1:
            raise DataError(f"{self.root}: records of different lengths {sorted(lengths)}")
        return EcgSet(
            signals=np.stack(signals),
            labels=None if y_all is None else y_all[kept_rows],
            classes=classes,
            ids=ids,
            fs=500.0 if high_rate else 100.0,
            leads=tuple(leads),
            folds=table["strat_fold"].to_numpy()[kept_rows],
            report=report,
        )
