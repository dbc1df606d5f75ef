"""MIT-BIH Arrhythmia records with their beat and rhythm annotations (long real streams)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import wfdb

from .ecg import EcgRecord, read_record
from .errors import RecordError

MITDB_LEADS: tuple[str, ...] = ("II", "V1")  # most records: MLII and V1


@dataclass
class Annotations:
    """Beat annotations (sample index, symbol), rhythm changes (start sample, label) and signal-quality changes
    (`~` annotations: sample, subtype bit mask; see `noise_intervals`)."""

    samples: np.ndarray
    symbols: list[str]
    rhythm: list[tuple[int, str]]
    fs: float
    noise: list[tuple[int, int]] = field(default_factory=list)

    def noise_intervals(self, signals: int, end: int) -> list[list[tuple[int, int, str]]]:
        """Per signal, the [start, stop) sample intervals the annotators marked 'noisy' or 'unreadable'.

        MIT-BIH `~` annotations mark a change of quality; their subtype is a bit mask that holds until the next
        one: bits 0-3 say which signals are noisy, bits 4-7 which are unreadable, -1 means all unreadable and 0
        that every signal is clean again.
        """
        out: list[list[tuple[int, int, str]]] = [[] for _ in range(signals)]
        changes = sorted(self.noise)
        for k, (start, subtype) in enumerate(changes):
            stop = changes[k + 1][0] if k + 1 < len(changes) else end
            mask = 0xFF if subtype < 0 else int(subtype)
            for sig in range(min(signals, 4)):
                level = "unreadable" if mask & (0x10 << sig) else "noisy" if mask & (1 << sig) else None
                if level and stop > start:
                    out[sig].append((int(start), int(stop), level))
        return out


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
    subtypes = ann.subtype if ann.subtype is not None else np.zeros(len(ann.sample), dtype=int)
    noise = [(int(s), int(t)) for s, sym, t in zip(ann.sample, ann.symbol, subtypes, strict=True) if sym == "~"]
    return Annotations(samples=np.asarray(ann.sample), symbols=list(ann.symbol), rhythm=rhythm, fs=float(ann.fs),
                       noise=noise)


def read_mitdb(
    path: str | Path, leads: Sequence[str] = MITDB_LEADS, fs: float | None = None
) -> tuple[EcgRecord, Annotations]:
    """One MIT-BIH record (leads mapped: MLII -> II) and its reference annotations."""
    return read_record(path, leads=leads, fs=fs), read_annotations(path)
