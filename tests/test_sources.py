"""Labelled-data sources: PTB-XL, PhysioNet Challenge folders (SNOMED `# Dx:` -> superclasses through the shipped
table) and WFDB + labels.csv folders give the same records and labels through one interface; every bad record
is a clear error or a counted skip with its reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import wfdb

from jepa_edge.data.errors import DataError, RecordError
from jepa_edge.data.preprocess import STANDARD_LEADS, EcgPreprocessing
from jepa_edge.data.ptbxl import SUPERCLASSES
from jepa_edge.data.sources import (
    ChallengeSource,
    LabelsCsvSource,
    default_table,
    detect_format,
    hashed_fold,
    open_source,
    site_of,
    write_challenge_record,
)

CLASSES = list(SUPERCLASSES)


def test_mapping_table_names_a_source_for_every_row_and_defines_norm():
    table = default_table()
    assert table.classes == SUPERCLASSES
    assert all(r.source.startswith("https://github.com/physionetchallenges/evaluation-2021/") for r in table.rows)
    # every PTB-XL diagnostic statement of the shared subset has a SNOMED counterpart with the same superclass
    scp = table.scp_to_snomed()
    by_code = table.by_code
    assert by_code[scp["IMI"]].superclass == "MI" and by_code[scp["CLBBB"]].superclass == "CD"
    assert by_code[scp["NDT"]].superclass == "STTC" and by_code[scp["LVH"]].superclass == "HYP"
    # NORM: sinus rhythm and nothing abnormal; form codes do not break it, abnormal rhythms and classes do
    assert table.classes_of(["426783006"]) == ({"NORM"}, [])
    assert table.classes_of(["426783006", "164951009"]) == ({"NORM"}, [])  # + abnormal QRS (a form code)
    assert table.classes_of(["426783006", "164889003"]) == (set(), [])  # + atrial fibrillation
    assert table.classes_of(["426783006", "164865005"]) == ({"MI"}, [])
    # codes outside the table are returned for reporting, never dropped silently
    assert table.classes_of(["164865005", "999999"]) == ({"MI"}, ["999999"])


def test_site_prefixes_and_hashed_folds():
    assert [site_of(n) for n in ("HR00001", "E00001", "JS00001", "A0001", "Q0001", "I01", "S0001", "rec1")] == [
        "PTB-XL", "Georgia", "Chapman-Shaoxing/Ningbo", "CPSC", "CPSC-Extra", "St Petersburg", "PTB", "unknown"]
    assert hashed_fold("HR00008") == hashed_fold("HR00008") and {hashed_fold(f"r{i}") for i in range(200)} == set(
        range(1, 11))


def test_challenge_export_reads_back_as_the_ptbxl_original(challenge_dir, ptbxl_dir):
    assert detect_format(challenge_dir) == ("challenge", challenge_dir)
    ours = open_source(challenge_dir).records(None, classes=CLASSES)
    ptbxl = open_source(ptbxl_dir).records((9, 10), classes=CLASSES, limit=24)
    assert ours.ids == ["HR" + i[:5] for i in ptbxl.ids]
    assert np.array_equal(ours.signals, ptbxl.signals)  # int16 at 1000/mV: lossless for PTB-XL's 1 uV steps
    assert np.array_equal(ours.labels, ptbxl.labels)
    assert set(ours.strata["site"]) == {"PTB-XL"} and ours.info["unmapped_code_count"] == 0
    assert ours.strata["sex"] == ptbxl.strata["sex"] and ours.strata["age_band"] == ptbxl.strata["age_band"]


def _copy_record(src: Path, dst: Path, name: str) -> None:
    text = (src.with_suffix(".hea")).read_text().replace(src.name, name)
    (dst / f"{name}.hea").write_text(text)
    shutil.copy(src.with_suffix(".mat"), dst / f"{name}.mat")


def test_bad_challenge_records_are_counted_with_their_reason(challenge_dir, tmp_path):
    good = sorted(challenge_dir.glob("*.hea"))[0].with_suffix("")
    folder = tmp_path / "site"
    folder.mkdir()
    _copy_record(good, folder, "E00001")
    rec = ChallengeSource(challenge_dir).records(None, classes=CLASSES, limit=1)
    signal = rec.signals[0].astype(np.float64)
    # other rate (250 Hz), other lead order, 14 s long: resampled and reordered by name, kept
    half = signal[:, ::2]
    longer = np.concatenate([half, half[:, :1000]], axis=1)
    order = list(reversed(STANDARD_LEADS))
    write_challenge_record(folder, "E00002", longer[::-1], 250, order, ["164865005", "426783006"])
    write_challenge_record(folder, "E00003", signal, 500, STANDARD_LEADS, ["164865005", "999999"])  # MI + unknown
    write_challenge_record(folder, "E00004", signal, 500, STANDARD_LEADS, None)  # no '# Dx:' line
    write_challenge_record(folder, "E00005", signal, 500, STANDARD_LEADS, ["999999", "888888"])  # unknown codes only
    write_challenge_record(folder, "E00006", signal[:, :1000], 500, STANDARD_LEADS, ["426783006"])  # 2 s: too short
    write_challenge_record(folder, "E00007", signal, 500, STANDARD_LEADS, ["426783006"])
    hea = folder / "E00007.hea"  # .mat of the wrong size: the header promises more samples than the file holds
    hea.write_text(hea.read_text().replace("E00007 12 500 5000", "E00007 12 500 6000", 1))
    (folder / "E00008.hea").write_text("this is not a WFDB header\n")
    write_challenge_record(folder, "E00009", signal, 500, STANDARD_LEADS, ["Myocardial infarction"])

    out = ChallengeSource(folder).records(None, classes=CLASSES, leads=STANDARD_LEADS, fs=500, min_seconds=10.0)
    assert out.ids == ["E00001", "E00002", "E00003"]
    assert isinstance(out.signals, list) and out.signals[1].shape == (12, 7000)  # 14 s resampled to 500 Hz
    back = out.signals[1][:, 100:4900]  # leads back in standard order: each matches its own lead of the original
    corr = [np.corrcoef(back[i], signal[i, 100:4900])[0, 1] for i in range(12)]
    assert min(corr) > 0.95
    assert out.labels[2].tolist() == [0, 1, 0, 0, 0]
    reasons = {Path(p).stem: r for p, r, _ in out.report.skipped}
    assert reasons == {"E00004": "missing-dx", "E00005": "no-class", "E00006": "too-short", "E00007": "wrong-size",
                       "E00008": "bad-header", "E00009": "bad-dx"}
    assert out.info["unmapped_codes"] == {"999999": 2, "888888": 1}  # counted, never silently dropped
    problems = {Path(p).stem: m for p, _, m in out.report.skipped}
    assert "shape (12, 5000)" in problems["E00007"] and "6000 samples" in problems["E00007"]
    assert "codes outside the mapping table: ['999999', '888888']" in problems["E00005"]
    with pytest.raises(RecordError, match=r"E00004\.hea: no '# Dx:' line"):
        ChallengeSource(folder).records(None, classes=CLASSES, skip_bad=False)
    with pytest.raises(DataError, match="cannot label class"):
        ChallengeSource(folder).records(None, classes=["NORM", "AFIB"])


def _wfdb_copy(ptbxl_dir: Path, folder: Path, ecg_id: int, name: str, fs: int = 500, seconds: float = 10.0) -> None:
    from jepa_edge.data.ecg import read_record

    rec = read_record(ptbxl_dir / "records500" / "00000" / f"{ecg_id:05d}_hr", fs=fs)
    n = int(seconds * fs)
    sig = np.concatenate([rec.signal, rec.signal], axis=1)[:, :n]
    wfdb.wrsamp(name, fs=fs, units=["mV"] * 12, sig_name=list(STANDARD_LEADS), p_signal=sig.T, fmt=["16"] * 12,
                adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(folder))


def test_labels_csv_folder_splits_strata_and_errors(ptbxl_dir, tmp_path):
    folder = tmp_path / "hospital"
    folder.mkdir()
    for i, ecg_id in enumerate((8, 9, 10, 26, 28, 30)):
        _wfdb_copy(ptbxl_dir, folder, ecg_id, f"p{i}", fs=250 if i % 2 else 500, seconds=10 + 2 * i)
    (folder / "labels.csv").write_text(
        "record,NORM,MI,STTC,CD,HYP,site,split,ward\n"
        "p0,1,0,0,0,0,north,train,icu\np1,0,1,0,0,0,north,train,er\np2,0,0,1,0,0,south,val,icu\n"
        "p3,1,0,0,0,0,south,test,er\np4,0,0,0,1,0,south,test,icu\np5,0,0,0,0,1,north,test,er\n"
        "missing,1,0,0,0,0,north,test,er\n")
    assert detect_format(folder) == ("labels-csv", folder)
    test = LabelsCsvSource(folder).records("test", classes=CLASSES, fs=500, min_seconds=10)
    assert test.ids == ["p3", "p4", "p5"] and test.labels.argmax(axis=1).tolist() == [0, 3, 4]
    assert test.strata["site"] == ["south", "south", "north"] and test.strata["ward"] == ["er", "icu", "er"]
    assert [s.shape[1] for s in test.signals] == [8000, 9000, 10000] and test.fs == 500
    assert test.report.counts == {"missing-file": 1}
    with pytest.raises(DataError, match=r"labels\.csv: no 0/1 column for class\(es\) \['AFIB'\]"):
        LabelsCsvSource(folder).records(None, classes=["NORM", "AFIB"])
    (folder / "labels.csv").write_text("record,NORM,split\np0,1,holdout\n")
    with pytest.raises(DataError, match="record p0: split 'holdout'"):
        LabelsCsvSource(folder).records("train", classes=["NORM"])
    (folder / "labels.csv").unlink()
    assert detect_format(folder) == ("wfdb", folder)
    with pytest.raises(DataError, match="--unlabelled"):
        open_source(folder).records(None, classes=CLASSES)
    plain = open_source(folder).records(None, labelled=False, fs=500)
    assert plain.labels is None and len(plain) == 6
    with pytest.raises(DataError, match="unknown data format 'dicom'"):
        open_source(folder, "dicom")


def test_probe_and_calibration_read_a_challenge_folder(challenge_dir, tmp_path):
    from jepa_edge.data.calibration import build_calibration_set
    from jepa_edge.tasks.probe import load_task_data

    folder = tmp_path / "split"
    shutil.copytree(challenge_dir, folder)
    names = sorted(p.stem for p in folder.glob("*.hea"))
    split = ["train"] * 16 + ["val"] * 4 + ["test"] * 4
    rows = "".join(f"{n},{s}\n" for n, s in zip(names, split, strict=True))
    (folder / "records.csv").write_text("record,split\n" + rows)
    pre = EcgPreprocessing(window_s=5.0)
    data = load_task_data(folder, "ptbxl-super", pre)
    assert data.source == "challenge" and data.classes == SUPERCLASSES
    assert (len(data.train.labels), len(data.val.labels), len(data.test.labels)) == (16, 4, 4)
    assert data.train.x.shape[1:] == (12, 2500) and len(data.train.x) == 16 * 3  # 10 s at half-window stride
    calib = build_calibration_set(pre, folder, windows=8, seed=1, labels=CLASSES)
    again = build_calibration_set(pre, folder, windows=8, seed=1, labels=CLASSES)
    assert calib.windows.shape == (8, 12, 2500) and calib.sha256 == again.sha256
    assert set(calib.record_ids) <= set(names[:16])  # training split only
