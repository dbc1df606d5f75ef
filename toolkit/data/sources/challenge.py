"""PhysioNet/CinC Challenge 2020/2021 folders: WFDB headers + MATLAB v4 `.mat` signals, SNOMED CT codes in `# Dx:`.

Headers carry `# Age:`, `# Sex:` and `# Dx: code,code,...`; the signal file holds `val` (leads x samples, int16
ADC units; the header gives gain and baseline). Any rate and any length of at least one model window is
accepted (records are resampled and their leads reordered by name by `read_record`). The site comes from the
record-name prefix (HR = PTB-XL, E = Georgia, JS = Chapman-Shaoxing/Ningbo, A = CPSC, Q = CPSC-Extra,
I = St Petersburg INCART, S = PTB) unless an optional `records.csv` (columns `record` plus any of `site`,
`split`, `fold` and further strata) says otherwise.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import wfdb

from ..ecg import find_records
from ..errors import DataError, RecordError
from ..preprocess import STANDARD_LEADS
from .base import (
    Candidate,
    LabelledRecords,
    Split,
    age_band,
    check_classes,
    fold_of,
    read_candidates,
    wanted_folds,
)
from .snomed import SnomedTable, default_table

SITE_PREFIXES: tuple[tuple[str, str], ...] = (
    ("HR", "PTB-XL"), ("JS", "Chapman-Shaoxing/Ningbo"), ("E", "Georgia"), ("A", "CPSC"), ("Q", "CPSC-Extra"),
    ("I", "St Petersburg"), ("S", "PTB"),
)
RECORDS_CSV = "records.csv"
ADC_GAIN = 1000.0  # ADC units per mV written by `write_challenge_record` (the Challenge files use 1000/mV)


def site_of(name: str) -> str:
    """Contributing database from a Challenge record name (letters then digits), "unknown" otherwise."""
    for prefix, site in SITE_PREFIXES:
        rest = name[len(prefix):]
        if name.startswith(prefix) and rest[:1].isdigit():
            return site
    return "unknown"


def header_fields(comments: Sequence[str]) -> dict[str, str]:
    """`# Key: value` comment lines as a dict with lower-case keys ("dx", "age", "sex", ...)."""
    out = {}
    for line in comments:
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip().lower()] = value.strip()
    return out


def read_table(path: Path) -> dict[str, dict[str, str]]:
    """Rows of a per-record CSV keyed by its `record` column (record names without extension)."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if "record" not in (reader.fieldnames or []):
                raise DataError(f"{path}: needs a 'record' column (found {reader.fieldnames})")
            rows = {}
            for n, row in enumerate(reader, start=2):
                name = Path((row.get("record") or "").strip()).with_suffix("").as_posix()
                if not name:
                    raise DataError(f"{path}:{n}: empty record name")
                if name in rows:
                    raise DataError(f"{path}:{n}: record {name!r} listed twice")
                rows[name] = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
            return rows
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read CSV: {exc}") from exc


class ChallengeSource:
    """A Challenge-layout folder; labels are the SNOMED table's superclasses of each record's `# Dx` codes."""

    format = "challenge"

    def __init__(self, root: str | Path, table: SnomedTable | None = None) -> None:
        self.root = Path(root)
        self.table = table or default_table()
        self.paths = find_records(self.root)
        extra = self.root / RECORDS_CSV
        self.extra = read_table(extra) if extra.is_file() else {}

    def _name(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _candidates(self, split: Split, classes: tuple[str, ...], labelled: bool,
                    unmapped: Counter) -> Iterator[Candidate | RecordError]:
        folds = wanted_folds(split)
        for path in self.paths:
            name = self._name(path)
            row = self.extra.get(name, {})
            if folds is not None and fold_of(name, row, str(self.root / RECORDS_CSV)) not in folds:
                continue
            hea = path.with_suffix(".hea")
            try:
                header = wfdb.rdheader(str(path))
            except Exception as exc:  # wfdb raises many types for bad headers
                yield RecordError(hea, f"cannot parse WFDB header: {exc}", "bad-header")
                continue
            fields = header_fields(header.comments or [])
            strata = {"site": row.get("site") or site_of(Path(name).name),
                      "sex": (fields.get("sex") or "unknown").lower(),
                      "age_band": age_band(fields.get("age")),
                      "fold": str(fold_of(name, row, str(self.root / RECORDS_CSV)))}
            strata.update({k: v for k, v in row.items() if k not in ("record", "site", "split", "fold") and v})
            if not labelled:
                yield Candidate(path, name, None, strata)
                continue
            if "dx" not in fields:
                yield RecordError(hea, "no '# Dx:' line: the record carries no diagnosis codes", "missing-dx")
                continue
            codes = [c.strip() for c in fields["dx"].split(",") if c.strip()]
            bad = [c for c in codes if not c.isdigit()]
            if bad or not codes:
                yield RecordError(hea, f"'# Dx:' must list SNOMED CT codes (numbers), got {fields['dx']!r}", "bad-dx")
                continue
            found, unknown = self.table.classes_of(codes)
            unmapped.update(unknown)
            mine = found & set(classes)
            if not mine:
                extra = f"; codes outside the mapping table: {unknown}" if unknown else ""
                yield RecordError(hea, f"none of its codes {codes} maps to the classes {list(classes)}{extra}",
                                  "no-class")
                continue
            yield Candidate(path, name, mine, strata)

    def records(self, split: Split = None, classes: Sequence[str] | None = None,
                leads: Sequence[str] = STANDARD_LEADS, fs: float | None = None, min_seconds: float = 0.0,
                limit: int | None = None, skip_bad: bool = True, labelled: bool = True) -> LabelledRecords:
        wanted = check_classes(classes, self.table.classes, f"{self.root} (SNOMED mapping table)")
        unmapped: Counter = Counter()
        info: dict[str, Any] = {"format": self.format, "root": str(self.root),
                                "split": split if split is None or isinstance(split, str) else list(split),
                                "split_rule": "records.csv split/fold column, else a hash of the record name"}
        out = read_candidates(self._candidates(split, wanted, labelled, unmapped), wanted, leads, fs, min_seconds,
                              limit, skip_bad, labelled, info)
        out.info["unmapped_codes"] = dict(sorted(unmapped.items(), key=lambda kv: (-kv[1], kv[0])))
        out.info["unmapped_code_count"] = int(sum(unmapped.values()))
        return out


def write_challenge_record(folder: str | Path, name: str, signal_mv: np.ndarray, fs: float,
                           leads: Sequence[str], dx: Sequence[str] | None, age: float | None = None,
                           sex: str | None = None) -> Path:
    """Write one record in the Challenge layout (`name.hea` + `name.mat`, int16 at 1000 units/mV); `dx=None`
    leaves out the `# Dx:` line. Returns the header path."""
    from scipy.io import savemat

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    signal = np.asarray(signal_mv, dtype=np.float64)
    val = np.clip(np.round(signal * ADC_GAIN), -32768, 32767).astype(np.int16)
    savemat(str(folder / f"{name}.mat"), {"val": val}, format="4")
    lines = [f"{name} {val.shape[0]} {fs:g} {val.shape[1]}"]
    for lead, row in zip(leads, val, strict=True):
        checksum = int(row.astype(np.int64).sum()) % 65536
        checksum = checksum - 65536 if checksum > 32767 else checksum
        lines.append(f"{name}.mat 16+24 {ADC_GAIN:g}/mV 16 0 {int(row[0])} {checksum} 0 {lead}")
    lines.append(f"#Age: {'Unknown' if age is None or not np.isfinite(age) else int(age)}")
    lines.append(f"#Sex: {sex or 'Unknown'}")
    if dx is not None:
        lines.append(f"#Dx: {','.join(dx)}")
    lines += ["#Rx: Unknown", "#Hx: Unknown", "#Sx: Unknown"]
    hea = folder / f"{name}.hea"
    hea.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return hea


def export_ptbxl(ptbxl_dir: str | Path, out: str | Path, folds: Sequence[int] | None = None,
                 limit: int | None = None, prefixes: Sequence[str] = ("HR",), labelled_only: bool = True,
                 table: SnomedTable | None = None) -> list[Path]:
    """Re-export PTB-XL records in the Challenge layout, as the Challenge did: `# Dx:` holds the SNOMED codes of
    each record's SCP statements (through the table's `ptbxl_scp` column; statements without a SNOMED
    counterpart are left out), `.mat` int16 at 1000/mV. Records are named prefix + ecg_id, the prefixes taken
    in turn (two prefixes = two "sites"). `labelled_only`: only records with a superdiagnostic class, as the
    PTB-XL loader keeps them. Returns the header paths."""
    from ..ecg import read_record
    from ..ptbxl import PtbXl

    table = table or default_table()
    scp = table.scp_to_snomed()
    db = PtbXl(ptbxl_dir)
    rows = db.table
    keep = np.ones(len(rows), dtype=bool)
    if folds is not None:
        keep &= rows["strat_fold"].isin(list(folds)).to_numpy()
    if labelled_only:
        keep &= db.labels("superdiagnostic")[0].sum(axis=1) > 0
    picked = np.flatnonzero(keep)[:limit]
    written = []
    for n, i in enumerate(picked.tolist()):
        rec = read_record(db.root / rows["filename_hr"].iloc[i])
        codes = list(dict.fromkeys(scp[c] for c in rows["scp_codes"].iloc[i] if c in scp))
        sex = {0: "Male", 1: "Female"}.get(int(rows["sex"].iloc[i])) if "sex" in rows else None
        age = float(rows["age"].iloc[i]) if "age" in rows else None
        name = f"{prefixes[n % len(prefixes)]}{int(rows.index[i]):05d}"
        written.append(write_challenge_record(out, name, rec.signal, rec.fs, rec.leads, codes, age, sex))
    return written


__all__ = ["SITE_PREFIXES", "ChallengeSource", "export_ptbxl", "header_fields", "read_table", "site_of",
           "write_challenge_record"]
