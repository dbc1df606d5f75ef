"""Atrial fibrillation episodes: irregular RR intervals and no consistent P wave, on synthetic beat sequences and
on real PTB-XL AF records and MIT-BIH records without AF."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from jepa_edge.config import ConfigError
from jepa_edge.devices.stream.af import AF_RHYTHM, AfConfig, AfTracker, p_likeness, rr_irregularity
from jepa_edge.devices.stream.beats import RhythmTracker

FS = 250.0
P_WAVE = np.exp(-0.5 * ((np.arange(42) - 20) / 5.0) ** 2)  # one P wave, the same before every sinus beat


def _feed(tracker: RhythmTracker, beats: np.ndarray, labels: list[str], atrial: list[np.ndarray]) -> list:
    out = []
    for b, lab, a in zip(beats, labels, atrial, strict=True):
        out += tracker.push(int(b), lab, a)
    return out + tracker.finish(int(beats[-1]) + 100)


def test_irregularity_and_p_likeness_measure_what_they_say() -> None:
    assert rr_irregularity([0, 200, 400, 600, 800]) == 0.0
    assert rr_irregularity([0, 150, 400, 520, 800, 930]) > 0.3
    rng = np.random.default_rng(0)
    assert p_likeness([P_WAVE + 0.01 * rng.standard_normal(42) for _ in range(9)]) > 0.95
    assert p_likeness([rng.standard_normal(42) for _ in range(9)]) < 0.5


def test_af_needs_irregular_beats_and_no_consistent_p_wave() -> None:
    rng = np.random.default_rng(1)
    n = 60
    regular = np.cumsum(np.full(n, 200))
    irregular = np.cumsum(rng.integers(120, 300, n))
    p_waves = [P_WAVE + 0.02 * rng.standard_normal(42) for _ in range(n)]
    fibrillation = [0.3 * rng.standard_normal(42) for _ in range(n)]
    labels = ["N"] * n
    # sinus rhythm, and sinus arrhythmia (irregular but every beat with its P wave): no AF
    assert _feed(RhythmTracker(FS), regular, labels, p_waves) == []
    assert _feed(RhythmTracker(FS), irregular, labels, p_waves) == []
    # irregular with fibrillatory waves: one AF episode, from the first beat of the first AF window to the end
    episodes = _feed(RhythmTracker(FS), irregular, labels, fibrillation)
    assert [e[2] for e in episodes] == [AF_RHYTHM]
    onset, offset, _ = episodes[0]
    assert irregular[0] <= onset <= irregular[AfConfig().intervals + 2] and offset == irregular[-1] + 100
    # AF, then sinus rhythm again: the episode closes at the last beat of the last AF window
    beats = np.concatenate([irregular, irregular[-1] + np.cumsum(np.full(n, 200))])
    episodes = _feed(RhythmTracker(FS), beats, labels * 2, fibrillation + p_waves)
    assert len(episodes) == 1 and irregular[-1] <= episodes[0][1] < beats[n + AfConfig().intervals + 6]


def test_ventricular_beats_withheld_beats_and_gaps_break_the_af_window() -> None:
    rng = np.random.default_rng(2)
    n = 80
    beats = np.cumsum(rng.integers(120, 300, n))
    fibrillation = [0.3 * rng.standard_normal(42) for _ in range(n)]
    # frequent PVCs (every 5th beat): no window of 8 intervals between supraventricular beats, so no AF call
    labels = ["V" if i % 5 == 4 else "N" for i in range(n)]
    assert [e for e in _feed(RhythmTracker(FS), beats, labels, fibrillation) if e[2] == AF_RHYTHM] == []
    withheld = ["withheld" if i % 5 == 4 else "N" for i in range(n)]
    assert [e for e in _feed(RhythmTracker(FS), beats, withheld, fibrillation) if e[2] == AF_RHYTHM] == []
    no_stretch = [None if i % 5 == 4 else a for i, a in enumerate(fibrillation)]
    assert _feed(RhythmTracker(FS), beats, ["N"] * n, no_stretch) == []
    tracker = AfTracker(FS)
    for b, a in zip(beats[:8], fibrillation[:8], strict=True):
        tracker.push(int(b), "N", a)
    assert tracker.push(int(beats[7] + 3 * FS), "N", fibrillation[8]) is None  # a 3 s gap starts the window anew
    assert len(tracker._window) == 1


def test_bad_af_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="intervals"):
        AfConfig(intervals=2)
    with pytest.raises(ConfigError, match="p_window_s"):
        AfConfig(p_window_s=(0.08, 0.25))


def _stretches(signal: np.ndarray, beats: np.ndarray, config: AfConfig) -> list[np.ndarray | None]:
    return [config.segment(signal, int(b), FS) for b in beats]


def test_real_af_records_are_called_af_and_real_sinus_arrhythmia_and_ectopy_are_not(data_root: Path,
                                                                                    mitdb_dir: Path) -> None:
    """All but at most one of the PTB-XL AF records the thresholds never saw (folds 9-10) are called AF from the
    beats StreamingQrs finds and their pre-QRS stretches; MIT-BIH 113 (sinus arrhythmia) and 119 (ventricular
    bigeminy, reference beat labels) are not, over their whole 30 min."""
    import pandas as pd

    from jepa_edge.data.ecg import read_record
    from jepa_edge.data.mitdb import read_mitdb
    from jepa_edge.devices.stream.beats import StreamingQrs
    from jepa_edge.tasks.beats import beat_preprocessing
    from jepa_edge.tasks.ec57 import aami_class

    pre = beat_preprocessing()
    config = AfConfig()
    table = pd.read_csv(data_root / "ptbxl" / "ptbxl_database.csv", index_col="ecg_id")
    af_held_out = [row for _, row in table.iterrows()
                   if "AFIB" in ast.literal_eval(row.scp_codes) and row.strat_fold in (9, 10)]
    assert len(af_held_out) >= 3
    called = 0
    for row in af_held_out:
        rec = read_record(data_root / "ptbxl" / row.filename_hr, leads=("II",))
        lead = pre(rec.signal, rec.fs)[0]
        qrs = StreamingQrs(FS)
        beats = np.concatenate([qrs.push(lead), qrs.finish()])
        called += bool(_feed(RhythmTracker(FS), beats, ["N"] * len(beats), _stretches(lead, beats, config)))
    assert called >= len(af_held_out) - 1, (called, len(af_held_out))
    for name in ("113", "119"):
        rec, ann = read_mitdb(mitdb_dir / name, leads=("II",))
        lead = pre(rec.signal, rec.fs)[0]
        keep = [i for i, s in enumerate(ann.symbols) if aami_class(s) is not None]
        beats = np.round(ann.samples[keep] * FS / ann.fs).astype(np.int64)
        labels = [aami_class(ann.symbols[i]) for i in keep]
        episodes = _feed(RhythmTracker(FS), beats, labels, _stretches(lead, beats, config))
        assert [e for e in episodes if e[2] == AF_RHYTHM] == [], name
