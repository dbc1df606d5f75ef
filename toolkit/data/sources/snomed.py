"""SNOMED CT diagnosis codes (PhysioNet/CinC Challenge `# Dx:`) -> PTB-XL superdiagnostic classes.

The table ships in the package (`snomed_classes.csv`): SNOMED code, abbreviation and description as in the
Challenge 2021 mapping files, the PTB-XL superclass, the PTB-XL SCP statements that correspond to the code
(used to re-export PTB-XL in the Challenge layout), and the source of every row. Codes with an empty
superclass are known rhythm/form codes: recognised, but not a class (as in PTB-XL, where they are not
diagnostic statements). Codes missing from the table are counted and reported, never silently dropped.

NORM is defined explicitly: sinus rhythm (426783006) and no code that is not `normal_compatible`: every code
of MI, STTC, CD, HYP and every abnormal rhythm (AF, flutter, pacing, SVT, bigeminy, ...) breaks it; sinus rate
variants, isolated premature beats and form/axis codes (PTB-XL's form statements co-occur with NORM) do not.
Unknown codes do not break it: they are reported instead. This differs from PTB-XL's own labels only where
PTB-XL marks NORM together with another superclass (2 of the 136 labelled fold 9+10 records of the shared
subset).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from ..errors import DataError

SINUS_RHYTHM = "426783006"
NORM = "NORM"
TABLE_FILE = "snomed_classes.csv"
COLUMNS = ("snomed", "abbreviation", "description", "superclass", "normal_compatible", "ptbxl_scp", "source", "note")


@dataclass(frozen=True)
class SnomedRow:
    snomed: str
    abbreviation: str
    description: str
    superclass: str
    normal_compatible: bool
    ptbxl_scp: tuple[str, ...]
    source: str
    note: str


@dataclass(frozen=True)
class SnomedTable:
    """Lookup from SNOMED code to superclass, and from PTB-XL SCP statement to SNOMED code."""

    rows: tuple[SnomedRow, ...]

    @property
    def by_code(self) -> dict[str, SnomedRow]:
        return {r.snomed: r for r in self.rows}

    @property
    def classes(self) -> tuple[str, ...]:
        """Every superclass the table can produce, NORM first."""
        found = list(dict.fromkeys(r.superclass for r in self.rows if r.superclass))
        return tuple(sorted(found, key=lambda c: (c != NORM, found.index(c))))

    def classes_of(self, codes: Iterable[str]) -> tuple[set[str], list[str]]:
        """(superclasses of a record's codes, codes not in the table). NORM: sinus rhythm and only normal-compatible
        codes besides it."""
        by_code = self.by_code
        found: set[str] = set()
        unknown: list[str] = []
        sinus = abnormal = False
        for code in codes:
            row = by_code.get(code)
            if row is None:
                unknown.append(code)
                continue
            sinus |= code == SINUS_RHYTHM
            abnormal |= not row.normal_compatible
            if row.superclass and code != SINUS_RHYTHM:
                found.add(row.superclass)
        if sinus and not abnormal:
            found.add(NORM)
        return found, unknown

    def scp_to_snomed(self) -> dict[str, str]:
        """PTB-XL SCP statement -> SNOMED code, for re-exporting PTB-XL records in the Challenge layout."""
        return {scp: r.snomed for r in self.rows for scp in r.ptbxl_scp}


def parse_table(lines: Iterable[str], where: str) -> SnomedTable:
    reader = csv.DictReader(lines)
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise DataError(f"{where}: mapping table lacks column(s) {missing}; expected {list(COLUMNS)}")
    rows = []
    for n, rec in enumerate(reader, start=2):
        code = (rec["snomed"] or "").strip()
        if not code.isdigit():
            raise DataError(f"{where}:{n}: SNOMED code {code!r} is not a number")
        if not (rec["source"] or "").strip():
            raise DataError(f"{where}:{n}: row for {code} names no source")
        scp = tuple(part for part in rec["ptbxl_scp"].split(";") if part)
        rows.append(SnomedRow(code, rec["abbreviation"].strip(), rec["description"].strip(), rec["superclass"].strip(),
                              rec["normal_compatible"].strip() == "1", scp, rec["source"].strip(),
                              rec["note"].strip()))
    codes = [r.snomed for r in rows]
    if len(set(codes)) != len(codes):
        raise DataError(f"{where}: a SNOMED code appears twice")
    return SnomedTable(tuple(rows))


@lru_cache(maxsize=1)
def default_table() -> SnomedTable:
    """The table shipped with the package."""
    text = resources.files(__package__).joinpath(TABLE_FILE).read_text(encoding="utf-8")
    return parse_table(text.splitlines(), f"jepa_edge/data/sources/{TABLE_FILE}")


__all__ = ["NORM", "SINUS_RHYTHM", "SnomedRow", "SnomedTable", "default_table", "parse_table"]
