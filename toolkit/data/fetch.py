"""Download PTB-XL or MIT-BIH from PhysioNet (for users with internet), resumable and atomic per file."""

from __future__ import annotations

import io
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ..io import atomic_write_bytes
from .errors import DataError

PHYSIONET = {
    "ptbxl": "https://physionet.org/files/ptb-xl/1.0.3/",
    "mitdb": "https://physionet.org/files/mitdb/1.0.0/",
}


def _get(url: str, timeout: float) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (https or a user-given base)
            return resp.read()
    except urllib.error.HTTPError as exc:
        raise DataError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise DataError(f"{url}: cannot download ({exc}); check the network or --base-url") from exc


def _fetch_files(base: str, names: list[str], out: Path, timeout: float,
                 progress: Callable[[int, int], None] | None) -> int:
    fetched = 0
    for i, name in enumerate(names):
        target = out / name
        if not target.is_file():  # resumable: files already complete are kept (writes are atomic)
            atomic_write_bytes(target, _get(base + name, timeout))
            fetched += 1
        if progress:
            progress(i + 1, len(names))
    return fetched


def fetch(
    dataset: str,
    out: str | Path,
    records: int | None = None,
    base_url: str | None = None,
    timeout: float = 60.0,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Fetch `dataset` ('ptbxl' at 500 Hz, or 'mitdb') into `out`; `records` limits how many records."""
    if dataset not in PHYSIONET:
        raise DataError(f"unknown dataset {dataset!r}; choose from {sorted(PHYSIONET)}")
    if records is not None and records < 1:
        raise DataError(f"--records must be at least 1, got {records}")
    base = (base_url or PHYSIONET[dataset]).rstrip("/") + "/"
    out = Path(out)
    if dataset == "ptbxl":
        tables = ["ptbxl_database.csv", "scp_statements.csv"]
        _fetch_files(base, tables, out, timeout, None)
        db = pd.read_csv(io.BytesIO((out / "ptbxl_database.csv").read_bytes()))
        stems = list(db["filename_hr"])[: records or len(db)]
        names = [f"{s}{ext}" for s in stems for ext in (".hea", ".dat")]
    else:
        listing = _get(base + "RECORDS", timeout).decode().split()
        atomic_write_bytes(out / "RECORDS", "\n".join(listing).encode() + b"\n")
        names = [f"{r}{ext}" for r in listing[: records or len(listing)] for ext in (".hea", ".dat", ".atr")]
    _fetch_files(base, names, out, timeout, progress)
    return out
