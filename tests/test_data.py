"""ECG data layer on real PTB-XL and MIT-BIH records, and a clear error for each kind of bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import wfdb

from jepa_edge.data.datasets import EcgWindows
from jepa_edge.data.ecg import find_records, iter_records, read_record
from jepa_edge.data.errors import DataError, RecordError, SkipReport
from jepa_edge.data.mitdb import read_mitdb
from jepa_edge.data.preprocess import STANDARD_LEADS, EcgPreprocessing, canonical_lead
from jepa_edge.data.ptbxl import SUPERCLASSES, PtbXl

RECORD = "records500/00000/00001_hr"


def test_ptbxl_superdiagnostic_counts_match_the_dataset(ptbxl_dir: Path) -> None:
    db = PtbXl(ptbxl_dir)
    y, classes = db.labels("superdiagnostic")
    assert classes == SUPERCLASSES
    counts = dict(zip(classes, y.sum(axis=0).astype(int), strict=True))
    assert counts == {"NORM": 297, "MI": 73, "STTC": 96, "CD": 78, "HYP": 40}
    y_all, all_classes = db.labels("all")
    assert y_all.shape == (500, len(all_classes)) and "NORM" in all_classes and "SR" in all_classes


def test_ptbxl_split_uses_official_folds(ptbxl_super) -> None:
    train, val, test = ptbxl_super["train"], ptbxl_super["val"], ptbxl_super["test"]
    assert set(train.folds) <= set(range(1, 9)) and set(val.folds) == {9} and set(test.folds) == {10}
    assert (len(train), len(val), len(test)) == (352, 72, 64)
    assert train.signals.shape[1:] == (12, 5000) and train.signals.dtype == np.float32
    assert train.labels.sum(axis=1).min() >= 1


def test_ptbxl_record_is_in_millivolts_and_canonical_order(ptbxl_dir: Path) -> None:
    rec = read_record(ptbxl_dir / RECORD)
    raw = wfdb.rdrecord(str(ptbxl_dir / RECORD))
    assert rec.leads == STANDARD_LEADS and rec.fs == 500
    np.testing.assert_allclose(rec.signal[3], raw.p_signal[:, raw.sig_name.index("AVR")])
    assert 0.1 < np.ptp(rec.signal[1]) < 10  # lead II amplitude in mV


def test_mitdb_leads_are_mapped_and_resampled(mitdb_dir: Path) -> None:
    rec, ann = read_mitdb(mitdb_dir / "101", fs=500)  # header names MLII and V1
    assert rec.leads == ("II", "V1")
    assert rec.fs == 500 and abs(rec.duration_s - 650000 / 360) < 0.01
    assert ann.symbols.count("N") == 1860 and ann.rhythm[0] == (7, "N")
    assert canonical_lead("MLII") == "II" and canonical_lead("AVF") == "aVF"


def test_12_lead_request_on_2_lead_record_names_missing_leads(mitdb_dir: Path) -> None:
    with pytest.raises(RecordError, match=r"100\.hea: missing lead\(s\) \['I', 'III'"):
        read_record(mitdb_dir / "100")
    with pytest.raises(RecordError, match=r"100\.hea: missing lead\(s\) \['V1'\]; record has \['MLII', 'V5'\]"):
        read_mitdb(mitdb_dir / "100")


def test_preprocessing_description_round_trips_and_streams_like_offline(ptbxl_dir: Path) -> None:
    rec = read_record(ptbxl_dir / RECORD)
    pre = EcgPreprocessing().fit(rec.signal[None])
    again = EcgPreprocessing.from_dict(pre.to_dict())
    assert again == pre and np.array_equal(again.sos, pre.sos)
    offline = pre(rec.signal)
    state, parts = None, []
    for chunk in np.array_split(rec.signal, 13, axis=1):  # uneven chunks, state carried across
        if state is None:
            state = pre.initial_state(chunk[:, 0])
        y, state = pre.filter(chunk, state)
        parts.append(pre.normalise(y))
    np.testing.assert_allclose(np.concatenate(parts, axis=1), offline, atol=1e-5)
    assert np.abs(offline).max() <= pre.clip
    bad = pre.to_dict() | {"sos": (pre.sos * 1.01).tolist()}
    with pytest.raises(ValueError, match="SOS"):
        EcgPreprocessing.from_dict(bad)


def test_windows_dataset_serves_sampler_chosen_crops() -> None:
    sig = np.arange(2 * 3 * 50, dtype=np.float32).reshape(2, 3, 50)
    ds = EcgWindows(sig, window=20, labels=np.eye(2, dtype=np.float32))
    x, y = ds[(1, 7)]
    assert x.shape == (3, 20) and float(x[0, 0]) == sig[1, 0, 7] and y.tolist() == [0, 1]
    with pytest.raises(ValueError, match="shorter than the window"):
        EcgWindows(sig, window=60)


# -- bad inputs ------------------------------------------------------------------------------------------
def _copy_record(src: Path, dst_dir: Path, name: str = "rec") -> Path:
    for ext in (".hea", ".dat"):
        text_or_bytes = src.with_suffix(ext).read_bytes()
        if ext == ".hea":
            text_or_bytes = text_or_bytes.replace(src.name.encode(), name.encode())
        (dst_dir / f"{name}{ext}").write_bytes(text_or_bytes)
    return dst_dir / name


def _write(tmp: Path, signal: np.ndarray, fs: float, names: list[str], name: str = "rec") -> Path:
    wfdb.wrsamp(name, fs=fs, units=["mV"] * len(names), sig_name=names, p_signal=signal,
                fmt=["16"] * len(names), adc_gain=[1000.0] * len(names), baseline=[0] * len(names),
                write_dir=str(tmp))
    return tmp / name


@pytest.fixture
def real_signal(ptbxl_dir: Path) -> np.ndarray:
    return read_record(ptbxl_dir / RECORD).signal.T.copy()  # (samples, leads)


def test_unsupported_sampling_rate(tmp_path: Path, real_signal: np.ndarray) -> None:
    path = _write(tmp_path, real_signal[:500], 50, list(STANDARD_LEADS))
    with pytest.raises(RecordError, match=r"rec\.hea: unsupported sampling rate 50 Hz"):
        read_record(path)


def test_missing_leads(tmp_path: Path, real_signal: np.ndarray) -> None:
    path = _write(tmp_path, real_signal[:, :6], 500, list(STANDARD_LEADS[:6]))
    with pytest.raises(RecordError, match=r"missing lead\(s\) \['V1', 'V2', 'V3', 'V4', 'V5', 'V6'\]"):
        read_record(path)


def test_non_finite_samples(tmp_path: Path, real_signal: np.ndarray) -> None:
    path = _write(tmp_path, real_signal, 500, list(STANDARD_LEADS))
    rec = wfdb.rdrecord(str(path), physical=False)
    # WFDB format 16 stores NaN as the sentinel -32768
    rec.d_signal[100:110, 4] = -32768
    rec.wrsamp(write_dir=str(tmp_path), expanded=False)
    with pytest.raises(RecordError, match=r"rec\.dat: non-finite samples \(NaN/inf\) per lead: \{'aVL': 10\}"):
        read_record(path)


def test_flat_lead(tmp_path: Path, real_signal: np.ndarray) -> None:
    sig = real_signal.copy()
    sig[:, 8] = 0.25
    path = _write(tmp_path, sig, 500, list(STANDARD_LEADS))
    with pytest.raises(RecordError, match=r"flat lead\(s\) \['V3'\]"):
        read_record(path)


def test_truncated_dat(tmp_path: Path, ptbxl_dir: Path) -> None:
    path = _copy_record(ptbxl_dir / RECORD, tmp_path)
    dat = path.with_suffix(".dat")
    dat.write_bytes(dat.read_bytes()[:50_000])
    with pytest.raises(RecordError, match=r"rec\.dat: truncated: 50000 bytes, header promises 120000"):
        read_record(path)


def test_header_data_mismatch(tmp_path: Path, ptbxl_dir: Path) -> None:
    path = _copy_record(ptbxl_dir / RECORD, tmp_path)
    hea = path.with_suffix(".hea")
    hea.write_text(hea.read_text().replace("rec 12 500 5000", "rec 12 500 4000", 1))
    with pytest.raises(RecordError, match=r"header/data mismatch: 120000 bytes on disk, header describes 96000"):
        read_record(path)


def test_missing_and_unparsable_files(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match="header file not found"):
        read_record(tmp_path / "nothing")
    (tmp_path / "junk.hea").write_text("this is not a header\n")
    with pytest.raises(RecordError, match=r"junk\.hea: cannot parse WFDB header"):
        read_record(tmp_path / "junk")


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no WFDB records"):
        find_records(tmp_path)
    with pytest.raises(DataError, match="not a folder"):
        find_records(tmp_path / "missing")


def test_bulk_loading_skips_only_when_asked_and_reports(tmp_path: Path, ptbxl_dir: Path) -> None:
    good = [_copy_record(ptbxl_dir / f"records500/00000/0000{i}_hr", tmp_path, f"good{i}") for i in (1, 2, 3)]
    bad = _copy_record(ptbxl_dir / RECORD, tmp_path, "bad")
    bad.with_suffix(".dat").write_bytes(b"\0" * 10)
    paths = find_records(tmp_path)
    assert len(paths) == 4
    with pytest.raises(RecordError, match="truncated"):
        list(iter_records(paths))
    report = SkipReport()
    recs = list(iter_records(paths, skip_bad=True, report=report))
    assert len(recs) == 3 == report.loaded and report.counts == {"truncated": 1}
    assert report.summary() == "3 records loaded, 1 skipped (1 truncated)"
    assert report.to_dict()["records"][0]["path"].endswith("bad.dat")
    shutil.rmtree(good[0].parent / "unused", ignore_errors=True)
