"""Streaming R peaks (neurokit2 on a lookback buffer) and rhythm episodes, on real MIT-BIH records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import wfdb

from jepa_edge.config import ConfigError
from jepa_edge.data.mitdb import read_annotations, read_mitdb
from jepa_edge.devices.stream import StreamError
from jepa_edge.devices.stream.beats import QrsConfig, RhythmConfig, RhythmTracker, StreamingQrs
from jepa_edge.tasks.ec57 import aami_class, episode_score, match_beats, rhythm_episodes

CLEAN_RECORDS = ("100", "103", "113", "117", "123")
MONITOR_MIN = 0.99  # sensitivity and +P a monitor's beat detector needs on clean records


def _mlii(mitdb_dir: Path, record: str) -> tuple[np.ndarray, float, np.ndarray]:
    """The MLII lead (mV), its rate and the reference AAMI beats' samples."""
    rec, ann = read_mitdb(mitdb_dir / record, leads=("II",))
    ref = np.array([s for s, sym in zip(ann.samples, ann.symbols, strict=True) if aami_class(sym) is not None])
    return rec.signal[0], rec.fs, ref


def _stream(x: np.ndarray, fs: float, chunk: int, config: QrsConfig | None = None) -> np.ndarray:
    qrs = StreamingQrs(fs, config)
    parts = [qrs.push(x[i:i + chunk]) for i in range(0, x.shape[0], chunk)]
    parts.append(qrs.finish())
    out = np.concatenate(parts)
    assert out.dtype == np.int64 and np.all(np.diff(out) > 0)
    return out


def _se_ppv(ref: np.ndarray, peaks: np.ndarray, fs: float) -> tuple[float, float]:
    tp = int((match_beats(ref, peaks, fs) >= 0).sum())
    return tp / ref.shape[0], tp / max(peaks.shape[0], 1)


def test_chunking_never_changes_the_settled_peaks(mitdb_dir: Path):
    x, fs, _ = _mlii(mitdb_dir, "119")
    whole = _stream(x, fs, x.shape[0])
    assert np.array_equal(_stream(x, fs, round(fs)), whole)  # 1 s chunks
    assert np.array_equal(_stream(x, fs, round(7.3 * fs)), whole)  # 7.3 s chunks
    head = x[: round(30 * fs)]  # sample by sample on the first 30 s
    assert np.array_equal(_stream(head, fs, 1), _stream(head, fs, head.shape[0]))
    assert whole.shape[0] > 1900


def test_peaks_come_out_settled_and_in_order(mitdb_dir: Path):
    x, fs, _ = _mlii(mitdb_dir, "100")
    qrs = StreamingQrs(fs)
    settle = QrsConfig().settle_s * fs
    last = -1
    for i in range(0, round(60 * fs), round(fs)):
        got = qrs.push(x[i:i + round(fs)])
        assert np.all(got > last) and np.all(got < qrs.samples_seen - settle)
        if got.size:
            last = int(got[-1])
    assert last > 50 * fs  # peaks did come out while streaming, not only at finish()


@pytest.mark.parametrize("record", CLEAN_RECORDS)
def test_detection_on_clean_records(mitdb_dir: Path, record: str):
    x, fs, ref = _mlii(mitdb_dir, record)
    se, ppv = _se_ppv(ref, _stream(x, fs, round(fs)), fs)
    print(f"MIT-BIH {record} MLII streaming R peaks: Se {se:.4f} +P {ppv:.4f} ({ref.shape[0]} reference beats)")
    assert se >= MONITOR_MIN and ppv >= MONITOR_MIN


def test_lead_off_gives_no_peaks_and_does_not_disturb_the_rest(mitdb_dir: Path):
    x, fs, ref = _mlii(mitdb_dir, "100")
    x = x[: round(120 * fs)].copy()
    ref = ref[ref < x.shape[0]]
    off = (round(40 * fs), round(52.5 * fs))
    x[off[0]:off[1]] = np.nan
    peaks = _stream(x, fs, round(fs))
    assert not np.any((peaks >= off[0]) & (peaks < off[1]))
    # beats at least a second away from the gap and the stream's start (neurokit drops a peak in the first
    # 0.3 s of the signal it is given: its minimum delay counts from sample 0)
    keep = ((ref >= fs) & (ref < off[0] - fs)) | (ref >= off[1] + fs)
    se, ppv = _se_ppv(ref[keep], peaks, fs)
    assert se >= MONITOR_MIN
    assert _stream(np.full(round(20 * fs), np.nan), fs, round(fs)).size == 0
    assert _stream(np.zeros(round(20 * fs)), fs, round(fs)).size == 0  # a flat (disconnected) lead


def test_bad_input_is_a_user_error():
    with pytest.raises(StreamError, match="1-D"):
        StreamingQrs(360.0).push(np.zeros((2, 100)))
    qrs = StreamingQrs(360.0)
    qrs.finish()
    with pytest.raises(StreamError, match="after finish"):
        qrs.push(np.zeros(10))
    with pytest.raises(ConfigError, match="lookback_s"):
        QrsConfig(lookback_s=4.0)
    with pytest.raises(ConfigError, match="sampling rate"):
        StreamingQrs(0.0)
    with pytest.raises(StreamError, match="not one of"):
        RhythmTracker(360.0).push(10, "X")
    with pytest.raises(StreamError, match="time order"):
        t = RhythmTracker(360.0)
        t.push(100, "N")
        t.push(100, "N")


def _track(fs: float, beats: list[tuple[int, str]], end: int, config: RhythmConfig | None = None):
    t = RhythmTracker(fs, config)
    out = []
    for s, label in beats:
        out += t.push(s, label)
    return out + t.finish(end)


def test_a_run_of_four_fast_v_beats_is_one_vt_episode():
    fs = 360.0
    rr = round(0.4 * fs)  # 150 bpm
    labels = "NNVVVVN"
    beats = [(1000 + k * rr, lab) for k, lab in enumerate(labels)]
    eps = _track(fs, beats, end=1000 + 10 * rr)
    assert eps == [(1000 + 2 * rr, 1000 + 5 * rr, "VT")]
    slow = [(1000 + k * round(0.8 * fs), lab) for k, lab in enumerate(labels)]  # 75 bpm: idioventricular
    assert _track(fs, slow, end=10**5) == []


def test_bigeminy_and_trigeminy_open_after_the_pattern_repeats():
    fs = 360.0
    rr = round(0.8 * fs)

    def beats(labels: str) -> list[tuple[int, str]]:
        return [(rr * (k + 1), lab) for k, lab in enumerate(labels)]

    # NNN | VNVNVNV | NNNN: a B episode from half-way before the first V to half-way after the last V
    eps = _track(fs, beats("NNNVNVNVNVNNNN"), end=20 * rr)
    assert eps == [(3 * rr + rr // 2, 10 * rr + rr // 2, "B")]
    assert _track(fs, beats("NNNVNVNNNN"), end=20 * rr) == []  # two pairs are not bigeminy yet
    eps = _track(fs, beats("NNVNNVNNVNNVNNNNN"), end=20 * rr)
    assert eps == [(2 * rr + rr // 2, 12 * rr + rr // 2, "T")]
    # still bigeminal at the end of the stream: the episode ends there
    assert _track(fs, beats("NVNVNVNVN"), end=12 * rr) == [(rr + rr // 2, 12 * rr, "B")]


def test_withheld_beats_neither_start_nor_extend_an_episode():
    fs = 360.0
    rr = round(0.8 * fs)

    def beats(labels: list[str]) -> list[tuple[int, str]]:
        return [(rr * (k + 1), lab) for k, lab in enumerate(labels)]

    broken = ["N", "V", "N", "withheld", "N", "V", "N", "N", "N"]
    assert _track(fs, beats(broken), end=20 * rr) == []
    # an open B episode ends at the withheld beat (half-way after the last V)
    labels = [*"NVNVNVNVN", "withheld", *"VNVN"]
    assert _track(fs, beats(labels), end=20 * rr) == [(rr + rr // 2, 8 * rr + rr // 2, "B")]
    # with offset_beats=2 one withheld beat does not end it
    eps = _track(fs, beats(labels), end=20 * rr, config=RhythmConfig(offset_beats=2))
    assert [e[2] for e in eps] == ["B"] and eps[0][1] == 20 * rr


@pytest.mark.parametrize("record", ["106", "119"])
def test_bigeminy_episodes_from_reference_labels(mitdb_dir: Path, record: str):
    """With right beat labels (the annotators' own) the tracker finds the annotators' bigeminy episodes."""
    ann = read_annotations(mitdb_dir / record)
    end = wfdb.rdheader(str(mitdb_dir / record)).sig_len
    beats = [(int(s), aami_class(sym)) for s, sym in zip(ann.samples, ann.symbols, strict=True)]
    eps = _track(ann.fs, [(s, c) for s, c in beats if c is not None], end=end)
    ref = rhythm_episodes(ann.rhythm, end)
    score = episode_score(ref["B"], [(on, off) for on, off, r in eps if r == "B"])
    print(f"MIT-BIH {record} bigeminy from reference labels: episode Se {score.se:.3f} +P {score.ppv:.3f}, "
          f"duration Se {score.duration_se:.3f} +P {score.duration_ppv:.3f} "
          f"({score.ref_episodes} reference, {score.test_episodes} detected episodes)")
    assert score.se >= 0.8 and score.duration_se >= 0.7
