"""Reading WFDB ECG records into canonical lead order, with errors that name the file and the problem."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import wfdb

from .errors import DataError, RecordError, SkipReport
from .preprocess import MAX_FS, MIN_FS, STANDARD_LEADS, canonical_lead, resample

# Bytes per sample for the WFDB storage formats whose size we can check before decoding.
_BYTES_PER_SAMPLE = {"8": 1.0, "16": 2.0, "61": 2.0, "80": 1.0, "160": 2.0, "212": 1.5, "310": 4 / 3,
                     "311": 4 / 3, "24": 3.0, "32": 4.0}

FLAT_PTP_MV = 0.005  # a lead varying by less than 5 microvolts over the whole record is treated as lead-off


@dataclass
class EcgRecord:
    """A record in millivolts, leads in the requested canonical order, shape (leads, samples)."""

    signal: np.ndarray
    fs: float
    leads: tuple[str, ...]
    path: str

    @property
    def duration_s(self) -> float:
        return self.signal.shape[-1] / self.fs


def record_base(path: str | Path) -> Path:
    p = Path(path)
    return p.with_suffix("") if p.suffix in (".hea", ".dat", ".atr") else p


def _check_data_size(base: Path, header: wfdb.Record) -> None:
    """Catch truncated or mismatched .dat files before wfdb turns them into an obscure error."""
    files: dict[str, list[str]] = {}
    for fname, fmt in zip(header.file_name or [], header.fmt or [], strict=False):
        files.setdefault(fname, []).append(str(fmt))
    for fname, fmts in files.items():
        dat = base.parent / fname
        if not dat.is_file():
            raise RecordError(dat, "signal file named in the header is missing", "missing-file")
        if len(set(fmts)) != 1 or fmts[0] not in _BYTES_PER_SAMPLE or header.sig_len is None:
            continue
        expected = int(np.ceil(_BYTES_PER_SAMPLE[fmts[0]] * len(fmts) * header.sig_len))
        actual = dat.stat().st_size
        if actual < expected:
            raise RecordError(dat, f"truncated: {actual} bytes, header promises {expected} "
                                   f"({len(fmts)} signals x {header.sig_len} samples, format {fmts[0]})",
                              "truncated")
        if actual > expected + 4:
            raise RecordError(dat, f"header/data mismatch: {actual} bytes on disk, header describes {expected} "
                                   f"({len(fmts)} signals x {header.sig_len} samples, format {fmts[0]})",
                              "header-mismatch")


def check_record(path: str | Path) -> tuple[Path, wfdb.Record]:
    """The checks every reader of a WFDB record runs first (read_record, the stream replay, pack, parity, probe):
    header present and parsable, signal files present and of the size the header promises.

    Returns the record's base path (no extension) and its header; raises RecordError naming the file.
    """
    base = record_base(path)
    hea = base.with_suffix(".hea")
    if not hea.is_file():
        raise RecordError(hea, "header file not found", "missing-file")
    try:
        header = wfdb.rdheader(str(base))
    except Exception as exc:  # wfdb raises many types for bad headers
        raise RecordError(hea, f"cannot parse WFDB header: {exc}", "bad-header") from exc
    if not _is_mat(header):  # Challenge .mat files carry a MATLAB header: _read_mat checks them instead
        _check_data_size(base, header)
    return base, header


def _is_mat(header: wfdb.Record) -> bool:
    return any(str(f).lower().endswith(".mat") for f in header.file_name or [])


def decode_record(base: Path, header: wfdb.Record, physical: bool = True, start: int = 0,
                  stop: int | None = None) -> np.ndarray:
    """Samples [start, stop) of a checked record as (samples, signals): float64 mV when `physical`, else the raw
    digital values; decoding problems and a length other than the header's become RecordError."""
    try:
        rec = wfdb.rdrecord(str(base), physical=physical, sampfrom=start, sampto=stop)
    except Exception as exc:
        raise RecordError(base.with_suffix(".dat"), f"cannot decode signal data: {exc}", "bad-data") from exc
    data = np.asarray(rec.p_signal if physical else rec.d_signal, dtype=np.float64)
    expected = ((stop if stop is not None else header.sig_len) or 0) - start
    if header.sig_len and data.shape[0] != expected:
        raise RecordError(base.with_suffix(".dat"), f"header/data mismatch: header says {expected} samples, "
                                                    f"decoded {data.shape[0]}", "header-mismatch")
    return data


def read_record(
    path: str | Path,
    leads: Sequence[str] = STANDARD_LEADS,
    fs: float | None = None,
    check_flat: bool = True,
) -> EcgRecord:
    """Read one WFDB record (path with or without extension), reorder to `leads`, optionally resample.

    Raises RecordError naming the file for: missing files, unparsable header, truncated or mismatched
    .dat, sampling rate outside the supported range, missing leads, NaN/inf, flat (lead-off) leads.
    """
    base, header = check_record(path)
    hea = base.with_suffix(".hea")
    if not header.fs or not (MIN_FS <= float(header.fs) <= MAX_FS):
        raise RecordError(hea, f"unsupported sampling rate {header.fs} Hz (supported {MIN_FS:g}-{MAX_FS:g} Hz)",
                          "unsupported-fs")
    names = [canonical_lead(n) for n in (header.sig_name or [])]
    missing = [lead for lead in leads if lead not in names]
    if missing:
        raise RecordError(hea, f"missing lead(s) {missing}; record has {header.sig_name}", "missing-leads")
    data = _read_mat(base, header) if _is_mat(header) else decode_record(base, header).T  # (signals, samples)
    order = [names.index(lead) for lead in leads]
    data = data[order]
    _check_values(data, leads, base.with_suffix(".dat"), check_flat)
    sig_fs = float(header.fs)
    if fs is not None and fs != sig_fs:
        data = resample(data, sig_fs, fs)
        sig_fs = float(fs)
    return EcgRecord(signal=data, fs=sig_fs, leads=tuple(leads), path=str(base))


def _read_mat(base: Path, header: wfdb.Record) -> np.ndarray:
    """PhysioNet/CinC Challenge signal file: MATLAB v4 `.mat`, variable `val` (signals, samples) in ADC units,
    scaled to mV with the header's gain and baseline."""
    from scipy.io import loadmat

    names = set(header.file_name)
    if len(names) != 1:
        raise RecordError(base.with_suffix(".hea"), f"signals spread over several files {sorted(names)}", "bad-header")
    mat = base.parent / names.pop()
    if not mat.is_file():
        raise RecordError(mat, "signal file named in the header is missing", "missing-file")
    try:
        val = loadmat(str(mat))["val"]
    except KeyError:
        raise RecordError(mat, "no variable 'val' in the .mat file", "bad-data") from None
    except Exception as exc:  # scipy raises ValueError/TypeError/OSError for damaged files
        raise RecordError(mat, f"cannot read MATLAB file: {exc}", "bad-data") from exc
    expected = (int(header.n_sig), int(header.sig_len or 0))
    if val.ndim != 2 or val.shape != expected:
        raise RecordError(mat, f"'val' has shape {val.shape}; the header promises {expected[0]} signals x "
                               f"{expected[1]} samples", "wrong-size")
    gain = np.array([g if g else 200.0 for g in header.adc_gain], dtype=np.float64)[:, None]  # WFDB default 200/mV
    baseline = np.array(header.baseline or [0] * expected[0], dtype=np.float64)[:, None]
    per_mv = np.array([1e-3 if str(u).lower() in ("uv", "\u00b5v") else 1.0 for u in (header.units or ["mV"] *
                                                                                   expected[0])])[:, None]
    return (val.astype(np.float64) - baseline) / gain * per_mv


def _check_values(data: np.ndarray, leads: Sequence[str], where: Path, check_flat: bool) -> None:
    bad = ~np.isfinite(data)
    if bad.any():
        per_lead = {lead: int(n) for lead, n in zip(leads, bad.sum(axis=1), strict=True) if n}
        raise RecordError(where, f"non-finite samples (NaN/inf) per lead: {per_lead}", "non-finite")
    if check_flat:
        ptp = np.ptp(data, axis=1)
        flat = [lead for lead, v in zip(leads, ptp, strict=True) if v < FLAT_PTP_MV]
        if flat:
            raise RecordError(where, f"flat lead(s) {flat} (peak-to-peak < {FLAT_PTP_MV} mV: lead-off?)", "flat-lead")


def find_records(folder: str | Path) -> list[Path]:
    """Every WFDB record (by its .hea) below a folder, sorted; a clear error for an empty or missing folder."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    heads = sorted(root.rglob("*.hea"))
    if not heads:
        raise DataError(f"{root}: no WFDB records (*.hea) found")
    return [h.with_suffix("") for h in heads]


def iter_records(
    paths: Iterable[str | Path],
    leads: Sequence[str] = STANDARD_LEADS,
    fs: float | None = None,
    skip_bad: bool = False,
    report: SkipReport | None = None,
) -> Iterator[EcgRecord]:
    """Read many records; bad ones raise unless `skip_bad`, in which case they are counted in `report`."""
    report = report if report is not None else SkipReport()
    for p in paths:
        try:
            rec = read_record(p, leads=leads, fs=fs)
        except RecordError as err:
            if not skip_bad:
                raise
            report.add(err)
            continue
        report.loaded += 1
        yield rec
