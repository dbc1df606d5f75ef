"""Errors that name the file and the problem, so a bad record never surfaces as a crash deep in torch."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import JepaEdgeError


class DataError(JepaEdgeError):
    """Base class for input problems a user can fix (wrong folder, bad file, unsupported format)."""


class RecordError(DataError):
    """One record (or file) is unusable; carries its path and a short reason code for reports."""

    def __init__(self, path: str | Path, problem: str, reason: str = "invalid") -> None:
        self.path = str(path)
        self.problem = problem
        self.reason = reason
        super().__init__(f"{self.path}: {problem}")


@dataclass
class SkipReport:
    """Counts and names records skipped during bulk loading (only ever when the caller asked to skip)."""

    loaded: int = 0
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (path, reason, message)

    def add(self, err: RecordError) -> None:
        self.skipped.append((err.path, err.reason, err.problem))

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(reason for _, reason, _ in self.skipped))

    def summary(self) -> str:
        if not self.skipped:
            return f"{self.loaded} records loaded, none skipped"
        parts = ", ".join(f"{n} {r}" for r, n in sorted(self.counts.items()))
        return f"{self.loaded} records loaded, {len(self.skipped)} skipped ({parts})"

    def to_dict(self) -> dict:
        return {
            "loaded": self.loaded,
            "skipped": len(self.skipped),
            "counts": self.counts,
            "records": [{"path": p, "reason": r, "problem": m} for p, r, m in self.skipped],
        }
