"""Plain WFDB folders: with a `labels.csv` (record, one 0/1 column per class, optional site/split/fold/strata
columns), or without labels (for unlabelled parity and distillation)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..ecg import find_records
from ..errors import DataError
from ..preprocess import STANDARD_LEADS
from .base import Candidate, LabelledRecords, Split, check_classes, fold_of, read_candidates, wanted_folds
from .challenge import read_table, site_of

LABELS_CSV = "labels.csv"
META_COLUMNS = ("record", "site", "split", "fold")


class LabelsCsvSource:
    """A WFDB folder (`.hea` + `.dat` or `.mat`) whose `labels.csv` names each record and its classes.

    Class columns hold 0 or 1; every other column except record/split/fold is a stratum (site first). Records
    are read in the CSV's row order; records listed but absent on disk are skipped as missing-file."""

    format = "labels-csv"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.csv = self.root / LABELS_CSV
        if not self.csv.is_file():
            raise DataError(f"{self.csv}: not found; a labels-csv folder needs it (record, one 0/1 column per class)")
        self.rows = read_table(self.csv)
        if not self.rows:
            raise DataError(f"{self.csv}: no rows")
        first = next(iter(self.rows.values()))
        self.class_columns = [k for k in first if k not in META_COLUMNS and self._is_binary_column(k)]
        self.strata_columns = [k for k in first if k not in META_COLUMNS and k not in self.class_columns]

    def _is_binary_column(self, key: str) -> bool:
        return all(row.get(key, "") in ("0", "1", "0.0", "1.0") for row in self.rows.values())

    def _candidates(self, split: Split, classes: tuple[str, ...], labelled: bool) -> Iterator[Candidate]:
        folds = wanted_folds(split)
        lower = {c.lower(): c for c in classes}
        for name, row in self.rows.items():
            fold = fold_of(name, row, str(self.csv))
            if folds is not None and fold not in folds:
                continue
            strata = {"site": row.get("site") or site_of(Path(name).name), "fold": str(fold)}
            strata.update({k: row[k] for k in self.strata_columns if row.get(k)})
            found = {lower[k] for k in lower if float(row[k]) == 1.0} if labelled else None
            yield Candidate(self.root / name, name, found, strata)

    def records(self, split: Split = None, classes: Sequence[str] | None = None,
                leads: Sequence[str] = STANDARD_LEADS, fs: float | None = None, min_seconds: float = 0.0,
                limit: int | None = None, skip_bad: bool = True, labelled: bool = True) -> LabelledRecords:
        # class columns match the model's class names case-insensitively
        if classes is not None:
            missing = [c for c in classes if c.lower() not in self.class_columns]
            if missing and labelled:
                raise DataError(f"{self.csv}: no 0/1 column for class(es) {missing}; class columns found: "
                                f"{self.class_columns or 'none'} (other columns: {self.strata_columns})")
            wanted = tuple(classes)
        else:
            wanted = check_classes(None, self.class_columns, str(self.csv))
        info: dict[str, Any] = {"format": self.format, "root": str(self.root), "labels_csv": str(self.csv),
                                "split": split if split is None or isinstance(split, str) else list(split),
                                "split_rule": "labels.csv split/fold column, else a hash of the record name"}
        return read_candidates(self._candidates(split, wanted, labelled), wanted, leads, fs, min_seconds, limit,
                               skip_bad, labelled, info)


class WfdbFolderSource:
    """Any folder of WFDB records, without labels: every record, strata from the record name (site) only."""

    format = "wfdb"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.paths = find_records(self.root)

    def records(self, split: Split = None, classes: Sequence[str] | None = None,
                leads: Sequence[str] = STANDARD_LEADS, fs: float | None = None, min_seconds: float = 0.0,
                limit: int | None = None, skip_bad: bool = True, labelled: bool = True) -> LabelledRecords:
        if labelled:
            raise DataError(f"{self.root}: WFDB records without labels (no labels.csv, no '# Dx:' headers); add a "
                            f"{LABELS_CSV} (record, one 0/1 column per class) or run parity with --unlabelled")
        folds = wanted_folds(split)
        cands = []
        for path in self.paths:
            name = path.relative_to(self.root).as_posix()
            fold = fold_of(name, {}, str(self.root))
            if folds is None or fold in folds:
                cands.append(Candidate(path, name, None, {"site": site_of(path.name), "fold": str(fold)}))
        info = {"format": self.format, "root": str(self.root), "split": split if split is None or isinstance(
            split, str) else list(split), "split_rule": "a hash of the record name"}
        return read_candidates(cands, (), leads, fs, min_seconds, limit, skip_bad, False, info)


__all__ = ["LABELS_CSV", "LabelsCsvSource", "WfdbFolderSource"]
