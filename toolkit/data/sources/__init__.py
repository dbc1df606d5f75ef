"""Labelled-data sources behind one interface (`LabelledSource.records(split)`), and `open_source`, which picks
the source by what a folder holds: PTB-XL (ptbxl_database.csv), a WFDB folder with labels.csv, a PhysioNet/CinC
Challenge folder (`.mat` signals / `# Dx:` SNOMED codes), or plain WFDB records (unlabelled only)."""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from ..paths import data_root, find_ptbxl
from .base import SPLIT_FOLDS, LabelledRecords, LabelledSource, Split, hashed_fold
from .challenge import ChallengeSource, site_of, write_challenge_record
from .folders import LABELS_CSV, LabelsCsvSource, WfdbFolderSource
from .ptbxl import PtbXlSource
from .snomed import SnomedTable, default_table

FORMATS = ("ptbxl", "challenge", "labels-csv", "wfdb")


def looks_like_challenge(root: Path) -> bool:
    """A header naming a `.mat` signal file or carrying a `# Dx:` line (checks the first few headers)."""
    for hea in sorted(root.rglob("*.hea"))[:5]:
        try:
            text = hea.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        lines = text.splitlines()
        if any(".mat" in line.split(" ")[0] for line in lines[1:] if line and not line.startswith("#")):
            return True
        if any(line.lstrip("#").strip().lower().startswith("dx:") for line in lines if line.startswith("#")):
            return True
    return False


def detect_format(root: str | Path | None) -> tuple[str, Path]:
    """(format, folder) for a data folder, or for the data root holding a PTB-XL folder."""
    base = data_root(root)
    if not base.is_dir():
        raise DataError(f"{base}: not a folder")
    ptbxl = find_ptbxl(base)
    if ptbxl is not None:
        return "ptbxl", ptbxl
    if (base / LABELS_CSV).is_file():
        return "labels-csv", base
    if not any(base.rglob("*.hea")):
        raise DataError(f"{base}: no PTB-XL folder (no PTB-XL table ptbxl_database.csv here or in {base / 'ptbxl'}), "
                        f"no {LABELS_CSV} and no WFDB records (*.hea)")
    return ("challenge" if looks_like_challenge(base) else "wfdb"), base


def find_labelled(root: str | Path | None) -> Path | None:
    """The folder of a labelled source (PTB-XL, Challenge, labels.csv) at `root`, or None when there is none."""
    try:
        fmt, folder = detect_format(root)
    except DataError:
        return None
    return None if fmt == "wfdb" else folder


def open_source(root: str | Path | None, format: str | None = None) -> LabelledSource:
    """The source for a folder: `format` (ptbxl, challenge, labels-csv, wfdb) or detected from its contents."""
    if format is None:
        format, folder = detect_format(root)
    else:
        if format not in FORMATS:
            raise DataError(f"unknown data format {format!r}; choose from {list(FORMATS)}")
        folder = data_root(root)
        if format == "ptbxl":
            found = find_ptbxl(folder)
            if found is None:
                raise DataError(f"{folder}: no PTB-XL table (ptbxl_database.csv) here or in {folder / 'ptbxl'}")
            folder = found
    if format == "ptbxl":
        return PtbXlSource(folder)
    if format == "labels-csv":
        return LabelsCsvSource(folder)
    if format == "challenge":
        return ChallengeSource(folder)
    return WfdbFolderSource(folder)


__all__ = ["FORMATS", "LABELS_CSV", "SPLIT_FOLDS", "ChallengeSource", "LabelledRecords", "LabelledSource",
           "LabelsCsvSource", "PtbXlSource", "SnomedTable", "Split", "WfdbFolderSource", "default_table",
           "detect_format", "find_labelled", "hashed_fold", "open_source", "site_of", "write_challenge_record"]
