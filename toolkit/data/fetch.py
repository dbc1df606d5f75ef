"""Download PTB-XL or MIT-BIH from PhysioNet (for users with internet): resumable, checked and atomic per file.

Every name comes from a remote list (RECORDS, ptbxl_database.csv), so each is checked to stay inside the
destination before it touches the disk; every file is checked against the SHA-256 list PhysioNet publishes
beside the data (SHA256SUMS.txt); a download is written under a temporary name and renamed to its final
name only after its checksum passes, so a partial or corrupt file never sits under the final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ..io import sha256_file
from .errors import DataError
from .paths import safe_relative_path

PHYSIONET = {
    "ptbxl": "https://physionet.org/files/ptb-xl/1.0.3/",
    "mitdb": "https://physionet.org/files/mitdb/1.0.0/",
}
CHECKSUMS = "SHA256SUMS.txt"  # PhysioNet's published list: "<sha256>  <path>" per file of the project


def _open(url: str, timeout: float):  # noqa: ANN202 (an http.client response)
    try:
        return urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 (https or a user-given base)
    except urllib.error.HTTPError as exc:
        raise DataError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise DataError(f"{url}: cannot download ({exc}); check the network or --base-url") from exc


def _get(url: str, timeout: float) -> bytes:
    with _open(url, timeout) as resp:
        try:
            return resp.read()
        except (http.client.HTTPException, OSError) as exc:
            raise DataError(f"{url}: transfer broke off ({exc!r}); run the command again to resume") from exc


def read_checksums(text: str, where: str) -> dict[str, str]:
    """SHA256SUMS.txt -> {relative path: sha256}; malformed lines are an error, not silently skipped."""
    sums: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        digest, _, name = line.strip().partition(" ")
        name = name.strip().lstrip("*")  # sha256sum's binary-mode marker
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()) or not name:
            raise DataError(f"{where}: line {n} is not '<sha256>  <file>': {line[:80]!r}")
        sums[name] = digest.lower()
    if not sums:
        raise DataError(f"{where}: no checksums listed")
    return sums


def _download(base: str, name: str, target: Path, expected: str, timeout: float) -> None:
    """Stream `base + name` into a temporary file beside `target`, hashing as it goes; rename only when the
    SHA-256 matches the published one."""
    url = base + name
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as f, _open(url, timeout) as resp:
            try:
                while block := resp.read(1 << 20):
                    digest.update(block)
                    f.write(block)
                    size += len(block)
            except (http.client.HTTPException, OSError) as exc:
                raise DataError(f"{url}: transfer broke off after {size} bytes ({exc!r}); run the command "
                                "again to resume") from exc
            announced = resp.headers.get("Content-Length")
            if announced is not None and announced.isdigit() and size != int(announced):
                raise DataError(f"{url}: transfer broke off after {size} of {announced} bytes; not kept, run the "
                                "command again to resume")
            f.flush()
            os.fsync(f.fileno())
        if digest.hexdigest() != expected:
            raise DataError(f"{url}: checksum mismatch ({size} bytes, sha256 {digest.hexdigest()[:16]}..., "
                            f"{CHECKSUMS} says {expected[:16]}...): truncated or altered download; not kept")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _fetch_files(base: str, names: list[str], out: Path, sums: dict[str, str], timeout: float,
                 progress: Callable[[int, int], None] | None) -> int:
    for name in names:  # every name is checked before anything is downloaded: first that it stays inside ...
        safe_relative_path(name, f"{base}: listed file")
    for name in names:  # ... then that it can be verified
        if name not in sums:
            raise DataError(f"{base}{name}: not in the published {CHECKSUMS}; refusing an unverifiable file")
    fetched = 0
    for i, name in enumerate(names):
        target = out / name
        # resumable: a file already under its final name passed its checksum when written; checked again here
        if not (target.is_file() and sha256_file(target) == sums[name]):
            _download(base, name, target, sums[name], timeout)
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
    sums = read_checksums(_get(base + CHECKSUMS, timeout).decode("utf-8", "replace"), base + CHECKSUMS)
    if dataset == "ptbxl":
        tables = ["ptbxl_database.csv", "scp_statements.csv"]
        _fetch_files(base, tables, out, sums, timeout, None)
        db = pd.read_csv(io.BytesIO((out / "ptbxl_database.csv").read_bytes()))
        stems = [str(s) for s in list(db["filename_hr"])[: records or len(db)]]
        names = [f"{s}{ext}" for s in stems for ext in (".hea", ".dat")]
    else:
        _fetch_files(base, ["RECORDS"], out, sums, timeout, None)
        listing = (out / "RECORDS").read_text().split()
        for name in listing:  # record names are bare: a separator in one is an attack, not a layout
            safe_relative_path(name, f"{base}RECORDS", subdirs=False)
        names = [f"{r}{ext}" for r in listing[: records or len(listing)] for ext in (".hea", ".dat", ".atr")]
    _fetch_files(base, names, out, sums, timeout, progress)
    return out
