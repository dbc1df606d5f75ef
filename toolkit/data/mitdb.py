"""MIT-BIH Arrhythmia records with their beat and rhythm annotations (long real streams)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import wfdb

from .ecg import EcgRecord, read_record
from .errors import RecordError

MITDB_LEADS: tuple[str, ...] = ("II", "V1")  # most records: MLII and V1


@dataclass
class Annotations:
    """Beat annotations (sample index, symbol) and rhythm segments (start sample, label)."""

    samples: np.ndarray
    symbols: list[str]
    rhythm: list[tuple[int, str]]
    fs: float


def read_annotations(path: str | Path, extension: str = "atr") -> Annotations:
    base = Path(path).with_suffix("") if Path(path).suffix else Path(path)
    f = base.with_suffix(f".{extension}")
    if not f.is_file():
        raise RecordError(f, "annotation file not found", "missing-file")
    try:
        ann = wfdb.rdann(str(base), extension)
    except Exception as exc:
        raise RecordError(f, f"cannot parse annotations: {exc}", "bad-annotations") from exc
    rhythm = [
        (int(s), note.strip("\x00").strip().lstrip("("))
        for s, note in zip(ann.sample, ann.aux_note, strict=True)
        if note and note.strip("\x00").startswith("(")
    ]
    return Annotations(samples=np.asarray(ann.sample), symbols=list(ann.symbol), rhythm=rhythm, fs=float(ann.fs))


def read_mitdb(
    path: str | Path, leads: Sequence[str] = MITDB_LEADS, fs: float | None = None
) -> tuple[EcgRecord, Annotations]:
    """One MIT-BIH record (leads mapped: MLII -> II) and its reference annotations."""
    return read_record(path, leads=leads, fs=fs), read_annotations(path)
