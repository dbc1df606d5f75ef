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


def safe_relative_path(name: object, where: str, subdirs: bool = True) -> str:
    """`name` checked to stay inside the folder it is joined to: a relative POSIX path (a bare file name when
    not `subdirs`) with no '..', '.', empty, backslash or NUL parts. Names come from remote listings and
    index files, so a crafted '../evil' or '/etc/x' must never reach the file system; DataError names `where`."""
    from .errors import DataError

    if not isinstance(name, str) or not name:
        raise DataError(f"{where}: file name {name!r} is not a non-empty string")
    if "\x00" in name or "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise DataError(f"{where}: file name {name!r} is absolute or has a backslash / NUL; refused")
    parts = name.split("/")
    if not subdirs and len(parts) > 1:
        raise DataError(f"{where}: file name {name!r} has a path separator; a bare name is expected")
    if any(part in ("", ".", "..") for part in parts):
        raise DataError(f"{where}: file name {name!r} has an empty, '.' or '..' part; refused")
    return name
