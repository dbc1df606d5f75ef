"""Packing real PTB-XL and MIT-BIH records into shards: index, equality with the WFDB path, checksums, resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import wfdb
from typer.testing import CliRunner

from jepa_edge.data.ecg import read_record
from jepa_edge.data.errors import DataError, RecordError
from jepa_edge.data.pack import PackConfig, PackError, is_pack, pack
from jepa_edge.data.packed import PackedWindows, read_index, verify_shards
from jepa_edge.data.preprocess import EcgPreprocessing
from jepa_edge.io import sha256_file

MIXED_LEADS = ("II", "V1")


@pytest.fixture(scope="module")
def mixed_pack(ptbxl_dir: Path, mitdb_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 PTB-XL training records (500 Hz) + the first 6 MIT-BIH records (360 Hz), leads II and V1, float32."""
    base = tmp_path_factory.mktemp("mixed")
    mitdb = base / "mitdb"  # the first six MIT-BIH records, linked (not copied) into a folder of their own
    mitdb.mkdir()
    for name in ("100", "101", "102", "103", "104", "105"):
        for ext in (".hea", ".dat"):
            (mitdb / f"{name}{ext}").symlink_to((mitdb_dir / f"{name}{ext}").resolve())
    out = base / "pack"
    cfg = PackConfig(leads=MIXED_LEADS, dtype="float32", records_per_shard=4, workers=2, max_records_per_source=16)
    pack([ptbxl_dir, mitdb], out, cfg)
    return out


@pytest.fixture(scope="module")
def ptbxl_f16_pack(ptbxl_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("f16") / "pack"
    pack([ptbxl_dir], out, PackConfig(records_per_shard=5, max_records_per_source=12))
    return out


def _reference(path: str, pre: EcgPreprocessing) -> np.ndarray:
    """Band-passed mV at the model rate, read straight through wfdb and the shared preprocessing."""
    rec = read_record(path, leads=pre.leads)
    return pre.filter_record(rec.signal, rec.fs)


def test_index_describes_both_sources(mixed_pack: Path, mitdb_dir: Path) -> None:
    index = read_index(mixed_pack)
    assert is_pack(mixed_pack)
    assert index["leads"] == list(MIXED_LEADS) and index["fs"] == 500 and index["dtype"] == "float32"
    by_source: dict[str, list[dict]] = {}
    for rec in index["records"]:
        by_source.setdefault(rec["source"], []).append(rec)
    ptb, mit = by_source["ptbxl"], by_source["mitdb"]
    assert len(ptb) == 16 and all(r["fs_original"] == 500 and r["duration_s"] == 10.0 for r in ptb)
    assert all(1 <= r["fold"] <= 8 and r["labels"] is not None for r in ptb)  # training folds only, with labels
    assert any("NORM" in r["labels"] for r in ptb)
    # MIT-BIH: 100, 102, 103, 104 lack V1; 101 and 105 are packed, resampled 360 -> 500 Hz.
    assert [r["id"] for r in mit] == ["101", "105"]
    assert all(r["fs_original"] == 360 and abs(r["duration_s"] - 650000 / 360) < 0.01 and r["labels"] is None
               for r in mit)
    report = json.loads((mixed_pack / "report.json").read_text())
    assert report["loaded"] == 18 and report["counts"] == {"missing-leads": 4}
    assert sorted(Path(r["path"]).name for r in report["records"]) == ["100.hea", "102.hea", "103.hea", "104.hea"]
    for shard in index["shards"]:
        assert sha256_file(mixed_pack / shard["file"]) == shard["sha256"]
    assert len(index["shards"]) == 6  # 22 records planned, 4 per shard


def test_packed_windows_equal_wfdb_windows(mixed_pack: Path) -> None:
    windows = PackedWindows(mixed_pack)
    pre = windows.pre
    rng = np.random.default_rng(0)
    picks = [0, 5, 15, len(windows) - 2, len(windows) - 1]  # PTB-XL and both MIT-BIH records
    for i in picks:
        rec = windows.records[i]
        reference = pre.normalise(_reference(rec["path"], pre))
        assert reference.shape[1] == rec["samples"]
        for offset in {0, int(windows.max_offsets[i]), int(rng.integers(0, windows.max_offsets[i] + 1))}:
            got = windows[(i, offset)].numpy()
            want = reference[:, offset : offset + pre.window]
            assert got.shape == (2, 5000) and got.dtype == np.float32
            np.testing.assert_allclose(got, want, atol=2e-5, err_msg=f"{rec['path']} at offset {offset}")


def test_normalisation_fitted_on_everything_packed(mixed_pack: Path) -> None:
    windows = PackedWindows(mixed_pack)
    filtered = [_reference(rec["path"], windows.pre) for rec in windows.records]
    expected = EcgPreprocessing(leads=MIXED_LEADS).fit(np.concatenate(filtered, axis=1)[None])
    np.testing.assert_allclose(windows.pre.mean, expected.mean, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(windows.pre.std, expected.std, rtol=1e-8)


def test_float16_pack_within_half_precision(ptbxl_f16_pack: Path) -> None:
    windows = PackedWindows(ptbxl_f16_pack)
    assert read_index(ptbxl_f16_pack)["dtype"] == "float16" and windows.pre.leads == EcgPreprocessing().leads
    for i in (0, 6, 11):
        want = _reference(windows.records[i]["path"], windows.pre)
        got = windows.record(i)
        assert np.all(np.abs(got - want) <= np.abs(want) * 2.0**-11 + 2.0**-24)


def test_flipped_byte_is_caught_naming_the_shard(mixed_pack: Path, tmp_path: Path) -> None:
    copy = tmp_path / "pack"
    shutil.copytree(mixed_pack, copy)
    shard = copy / read_index(copy)["shards"][3]["file"]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))
    with pytest.raises(PackError, match=r"shard_00003\.npy: checksum mismatch"):
        PackedWindows(copy)
    with pytest.raises(PackError, match="shard_00003"):
        verify_shards(copy)
    PackedWindows(copy, verify=False)  # only the checksum notices: the bytes still parse


def test_missing_and_truncated_shards_named(mixed_pack: Path, tmp_path: Path) -> None:
    copy = tmp_path / "pack"
    shutil.copytree(mixed_pack, copy)
    (copy / "shards" / "shard_00001.npy").unlink()
    truncated = copy / "shards" / "shard_00002.npy"
    truncated.write_bytes(truncated.read_bytes()[:-100])
    with pytest.raises(PackError, match=r"shard_00001\.npy: shard listed in the index is missing.*1 more"):
        PackedWindows(copy)


def test_resume_repacks_only_missing_or_corrupt_shards(ptbxl_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "pack"
    cfg = PackConfig(records_per_shard=3, max_records_per_source=9)
    first = pack([ptbxl_dir], out, cfg)
    assert (first.shards, first.reused_shards, first.records) == (3, 0, 9)
    before = read_index(out)
    (out / "shards" / "shard_00001.npy").unlink()  # killed while writing shard 1
    (out / "index.json").unlink()
    corrupt = out / "shards" / "shard_00002.npy"
    data = bytearray(corrupt.read_bytes())
    data[-1] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    again = pack([ptbxl_dir], out, cfg)
    assert again.reused_shards == 1  # shard 0 kept; 1 (missing) and 2 (bad checksum) packed again
    assert read_index(out)["shards"] == before["shards"]  # byte-identical shards
    verify_shards(out)


def test_resume_into_folder_with_other_settings_is_refused(ptbxl_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "pack"
    pack([ptbxl_dir], out, PackConfig(records_per_shard=4, max_records_per_source=4))
    with pytest.raises(PackError, match="planned from other sources or settings"):
        pack([ptbxl_dir], out, PackConfig(records_per_shard=4, max_records_per_source=4, leads=("II",)))
    stray = tmp_path / "not-a-pack"
    stray.mkdir()
    (stray / "notes.txt").write_text("mine")
    with pytest.raises(PackError, match="not a pack folder"):
        pack([ptbxl_dir], stray, PackConfig(max_records_per_source=2))


def _copy_record(src: Path, dst_dir: Path, name: str) -> Path:
    dst_dir.mkdir(parents=True, exist_ok=True)
    for ext in (".hea", ".dat"):
        shutil.copy(src.with_suffix(ext), dst_dir / f"{src.name}{ext}")
    return dst_dir / src.name


def test_bad_records_skipped_with_reasons(ptbxl_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "wfdb"
    good = _copy_record(ptbxl_dir / "records500/00000/00001_hr", folder, "00001_hr")
    bad = _copy_record(ptbxl_dir / "records500/00000/00002_hr", folder, "00002_hr")
    dat = bad.with_suffix(".dat")
    dat.write_bytes(dat.read_bytes()[:5000])  # truncated download
    rec = read_record(good)
    wfdb.wrsamp("short", fs=500, units=["mV"] * 12, sig_name=list(rec.leads), p_signal=rec.signal[:, :1000].T,
                fmt=["16"] * 12, adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(folder))
    out = tmp_path / "pack"
    result = pack([folder], out, PackConfig())
    assert result.records == 1
    report = json.loads((out / "report.json").read_text())
    reasons = {Path(r["path"]).name: r["reason"] for r in report["records"]}
    assert reasons == {"00002_hr.dat": "truncated", "short.hea": "too-short"}
    assert "shorter than one 10 s training window" in " ".join(r["problem"] for r in report["records"])
    with pytest.raises(RecordError, match="00002_hr.dat: truncated"):
        pack([folder], tmp_path / "strict", PackConfig(skip_bad=False))


def test_bad_sources_and_settings_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nowhere: not a PTB-XL folder"):
        pack([tmp_path / "nowhere"], tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: no WFDB records"):
        pack([tmp_path / "empty"], tmp_path / "out")
    with pytest.raises(ValueError, match="dtype 'int8' not supported"):
        PackConfig(dtype="int8")
    with pytest.raises(ValueError, match="unknown lead"):
        PackConfig(leads=("II", "X9"))
    with pytest.raises(PackError, match=r"index\.json: not found"):
        PackedWindows(tmp_path)
    (tmp_path / "index.json").write_text('{"format": "something-else"}')
    with pytest.raises(PackError, match="is not 'jepa-edge-pack'"):
        PackedWindows(tmp_path)


def test_cli_pack(mitdb_dir: Path, tmp_path: Path) -> None:
    from jepa_edge.cli import app

    runner = CliRunner()
    out = tmp_path / "pack"
    args = ["data", "pack", str(mitdb_dir), "--out", str(out), "--leads", "II", "--max-records", "2",
            "--records-per-shard", "1", "--window-s", "5"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "2 records loaded, none skipped" in result.output
    assert len(PackedWindows(out)) == 2
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "2 shard(s) (2 reused)" in again.output
    bad = runner.invoke(app, ["data", "pack", str(tmp_path / "missing"), "--out", str(tmp_path / "o2")])
    assert bad.exit_code == 2 and "missing: not a PTB-XL folder" in bad.output
    bad = runner.invoke(app, ["data", "pack", str(mitdb_dir), "--out", str(out), "--ptbxl-folds", "x-y"])
    assert bad.exit_code == 2 and "--ptbxl-folds" in bad.output


# -- echo videos ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def echo_pack(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Six synthetic EchoNet-shaped AVI videos (no echo data is shared here) plus one empty, broken file."""
    from jepa_edge.data.pack import EchoPackConfig, pack_echo
    from jepa_edge.data.synthetic_echo import write_synthetic_echonet

    base = tmp_path_factory.mktemp("echo")
    src = write_synthetic_echonet(base / "echonet", count=6, seed=0, fmt="avi")
    (src / "Videos" / "broken.avi").write_bytes(b"")
    out = base / "pack"
    pack_echo([src / "Videos"], out, EchoPackConfig(records_per_shard=4, workers=2))
    return src, out


def test_echo_pack_clips_equal_decoded_clips(echo_pack: tuple[Path, Path]) -> None:
    from jepa_edge.data.echo import read_video
    from jepa_edge.data.packed import EpochPlan, PackedClips

    src, out = echo_pack
    report = json.loads((out / "report.json").read_text())
    assert report["loaded"] == 6 and report["counts"] == {"empty": 1}
    assert Path(report["records"][0]["path"]).name == "broken.avi"
    clips = PackedClips(out)
    assert read_index(out)["dtype"] == "uint8" and len(clips) == 6
    for i in (0, 5):
        video = read_video(clips.records[i]["path"])
        assert clips.records[i]["fps_original"] == video.fps and clips.records[i]["frames"] == video.num_frames
        for start in (0, int(clips.max_offsets[i])):
            np.testing.assert_array_equal(clips[(i, start)].numpy(), clips.pre.clip(video, start).numpy())
    plan = EpochPlan(clips.lengths, clips.spans, seed=0)
    epoch = plan.windows(0, plan.epoch_size)
    assert len(set(epoch)) == plan.epoch_size == int((clips.lengths // clips.spans).sum())
    assert all(0 <= start <= clips.max_offsets[v] for v, start in epoch)
    with pytest.raises(PackError, match="a pack of echo data, not ecg"):
        PackedWindows(out)


def test_echo_pack_labels_checksums_and_resume(echo_pack: tuple[Path, Path], tmp_path: Path) -> None:
    from jepa_edge.data.pack import EchoPackConfig, pack_echo
    from jepa_edge.data.packed import PackedClips

    src, out = echo_pack
    labelled = pack_echo([src], tmp_path / "labelled", EchoPackConfig(records_per_shard=3))
    assert labelled.records == 6  # FileList.csv names only the six real videos
    records = read_index(tmp_path / "labelled")["records"]
    assert all(r["labels"]["ef"] > 0 and r["split"] in ("train", "val", "test") for r in records)
    again = pack_echo([src], tmp_path / "labelled", EchoPackConfig(records_per_shard=3))
    assert again.reused_shards == again.shards == 2
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    shard = copy / "shards" / "shard_00001.npy"
    data = bytearray(shard.read_bytes())
    data[-7] ^= 0x10
    shard.write_bytes(bytes(data))
    with pytest.raises(PackError, match=r"shard_00001\.npy: checksum mismatch"):
        PackedClips(copy)
    with pytest.raises(DataError, match="not a folder of echo videos"):
        pack_echo([tmp_path / "nothing-here"], tmp_path / "o")


def test_cli_pack_echo(echo_pack: tuple[Path, Path], tmp_path: Path) -> None:
    from jepa_edge.cli import app

    src, _ = echo_pack
    result = CliRunner().invoke(app, ["data", "pack", str(src), "--out", str(tmp_path / "p"), "--modality", "echo",
                                      "--size", "64"])
    assert result.exit_code == 0, result.output
    assert read_index(tmp_path / "p")["records"][0]["shape"][1:] == [64, 64]
    bad = CliRunner().invoke(app, ["data", "pack", str(src), "--out", str(tmp_path / "q"), "--modality", "eeg"])
    assert bad.exit_code == 2 and "choose ecg or echo" in bad.output


@pytest.mark.parametrize("name", ["../outside.npy", "/etc/passwd", "shards/../../x.npy", "shards\\x.npy", ""])
def test_index_shard_paths_must_stay_inside_the_pack(name: str, tmp_path: Path) -> None:
    """index.json names its shard files; a crafted name must never be joined to the pack folder and opened."""
    from jepa_edge.data.pack import PACK_FORMAT, PACK_VERSION

    (tmp_path / "index.json").write_text(json.dumps({
        "format": PACK_FORMAT, "version": PACK_VERSION, "modality": "ecg",
        "shards": [{"shard": 0, "file": name, "sha256": "0" * 64, "bytes": 0, "shape": [1], "dtype": "float16"}]}))
    with pytest.raises(DataError, match="index.json: shard: file name .*(refused|not a non-empty string)"):
        read_index(tmp_path)
    with pytest.raises(DataError, match="refused|not a non-empty string"):
        PackedWindows(tmp_path, verify=False)
