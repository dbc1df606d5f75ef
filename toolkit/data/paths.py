"""The one documented data path: JEPA_EDGE_DATA (default ./data)."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "JEPA_EDGE_DATA"


def data_root(explicit: str | Path | None = None) -> Path:
    """Where datasets live: an explicit path, else $JEPA_EDGE_DATA, else ./data."""
    if explicit is not None:
        return Path(explicit)
    return Path(os.environ.get(DATA_ENV, "data"))


def find_ptbxl(root: str | Path | None = None) -> Path | None:
    """A PTB-XL folder under the data root (or the root itself), or None."""
    base = data_root(root)
    for cand in (base, base / "ptbxl"):
        if (cand / "ptbxl_database.csv").is_file():
            return cand
    return None


def find_mitdb(root: str | Path | None = None) -> Path | None:
    base = data_root(root)
    for cand in (base, base / "mitdb"):
        if (cand / "100.hea").is_file():
            return cand
    return None
