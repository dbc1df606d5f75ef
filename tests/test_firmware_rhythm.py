"""The firmware's rhythm trackers (devices/firmware/src/jefw_rhythm.c) against Python's (devices/stream/beats.py,
af.py): the same beats in, the same VT / B / T / AFIB episodes out, exactly, on real MIT-BIH records with their
reference labels and on seeded random beat sequences that take every branch; the same error cases refused.

The C side is compiled here with the system `cc` (skipped without one, a failure under CI=true) together with
tests/scripts/rhythm_driver.c, which reads beats on stdin and prints the closed episodes.
"""

from __future__ import annotations

import subprocess
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from jepa_edge.config import ConfigError
from jepa_edge.devices.stream.af import AfConfig, p_likeness, rr_irregularity
from jepa_edge.devices.stream.base import StreamError
from jepa_edge.devices.stream.beats import RhythmConfig, RhythmTracker

REPO = Path(__file__).resolve().parents[1]
DRIVER = REPO / "tests" / "scripts" / "rhythm_driver.c"

Beat = tuple[int, str, np.ndarray | None]
Episode = tuple[int, int, str]

# (Python config, the driver's key=value arguments for the same config)
CONFIGS: dict[str, tuple[RhythmConfig, list[str]]] = {
    "default": (RhythmConfig(), []),
    "offset2": (RhythmConfig(offset_beats=2, af=AfConfig(onset_windows=2)),
                ["offset_beats=2", "af_onset_windows=2"]),
    "other": (RhythmConfig(vt_min_beats=4, vt_min_rate_bpm=120.0, bigeminy_onset_pairs=2, trigeminy_onset_cycles=4,
                           offset_beats=3, normal_labels=("N",),
                           af=AfConfig(intervals=5, min_irregularity=0.1, max_p_likeness=0.5, onset_windows=2,
                                       offset_windows=2, max_gap_s=1.5)),
              ["vt_min_beats=4", "vt_min_rate_bpm=120", "bigeminy_onset_pairs=2", "trigeminy_onset_cycles=4",
               "offset_beats=3", "normal_labels=N", "af_intervals=5", "af_min_irregularity=0.1",
               "af_max_p_likeness=0.5", "af_onset_windows=2", "af_offset_windows=2", "af_max_gap_s=1.5"]),
}
# MIT-BIH records with an MLII lead (the monitor's beat lead) in ../shared/data/mitdb: those where the trackers find
# episodes (VT, B and T in 106, 119, 124; false AFIB on noisy stretches of 105, 108, 111, 112, 114, 118) and two
# clean ones
MLII_RECORDS = ("100", "105", "106", "108", "111", "112", "114", "116", "118", "119", "124")


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from conftest import FIRMWARE_SRC, compile_c

    return compile_c([FIRMWARE_SRC / "jefw_rhythm.c", FIRMWARE_SRC / "jefw_util.c", DRIVER],
                     tmp_path_factory.mktemp("rhythm") / "rhythm_driver", "the firmware rhythm port")


def _python(fs: float, beats: list[Beat], end: int, config: RhythmConfig) -> list[Episode]:
    t = RhythmTracker(fs, config)
    out: list[Episode] = []
    for s, label, atrial in beats:
        out += t.push(s, label, atrial)
    return out + t.finish(end)


def _stdin(beats: list[Beat], end: int) -> str:
    lines = []
    for s, label, atrial in beats:
        values = [] if atrial is None else atrial.tolist()
        lines.append(" ".join([str(int(s)), label, str(len(values)), *map(repr, values)]))
    return "\n".join([*lines, f"end {int(end)}", ""])


def _run(driver: Path, args: list[str], text: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(driver), *args], input=text, capture_output=True, text=True, timeout=60)


def _c(driver: Path, fs: float, beats: list[Beat], end: int, args: list[str]) -> list[Episode]:
    done = _run(driver, [repr(float(fs)), *args], _stdin(beats, end))
    assert done.returncode == 0, done.stderr
    out = []
    for line in done.stdout.splitlines():
        onset, offset, rhythm = line.split()
        out.append((int(onset), int(offset), rhythm))
    return out


def _compare(driver: Path, fs: float, beats: list[Beat], end: int, config: str) -> list[Episode]:
    cfg, args = CONFIGS[config]
    py = _python(fs, beats, end, cfg)
    c = _c(driver, fs, beats, end, args)
    first = next((i for i, (a, b) in enumerate(zip(c, py, strict=False)) if a != b), min(len(c), len(py)))
    assert c == py, f"C and Python part at episode {first} of {len(py)}: C {c[first:first + 3]}, Python " \
                    f"{py[first:first + 3]}"
    return py


# -- real records --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("record", MLII_RECORDS)
def test_episodes_of_mitdb_records_with_reference_labels(driver: Path, mitdb_dir: Path, record: str):
    """Each record's reference beats (AAMI classes at the monitor's 250 Hz), with pre-QRS stretches cut by
    AfConfig.segment from its band-passed MLII as the monitor keeps it (float32, normalised)."""
    from conftest import data_missing

    from jepa_edge.tasks.beats import beat_preprocessing, read_record_beats

    if not (mitdb_dir / f"{record}.hea").is_file():
        data_missing(f"MIT-BIH record {record} not found in {mitdb_dir}")
    pre = beat_preprocessing()
    rb = read_record_beats(mitdb_dir, record, pre)
    lead = rb.filtered[0]
    lead = (lead / lead.std()).astype(np.float32).astype(np.float64)
    totals: Counter = Counter()
    for config in CONFIGS:
        af = CONFIGS[config][0].af
        beats = [(int(s), c, af.segment(lead, int(s), pre.fs)) for s, c in zip(rb.samples, rb.classes, strict=True)]
        eps = _compare(driver, pre.fs, beats, lead.shape[0], config)
        totals.update(f"{config}:{e[2]}" for e in eps)
    print(f"MIT-BIH {record}: {len(rb.samples)} beats x {len(CONFIGS)} configs, episodes {dict(totals)}")


# -- random beat sequences -----------------------------------------------------------------------------------
KINDS = ("sinus", "af", "bigeminy", "trigeminy", "vt", "noisy", "ectopic")


def _random_beats(seed: int, fs: float, n: int = 3000) -> tuple[list[Beat], int]:
    """Runs of sinus rhythm, AF (irregular, random pre-QRS stretches), bigeminy, trigeminy, V runs (fast, at the
    VT rate limit exactly, and slow), withheld beats and other classes, misread beats, gaps > 2 s and missing
    stretches; the last run (of kind KINDS[seed % 5]) is left open at the end of the stream."""
    rng = np.random.default_rng(seed)
    m = round(0.25 * fs) - round(0.08 * fs)
    p_wave = np.exp(-0.5 * ((np.arange(m) - m / 2) / (m / 8)) ** 2)
    beats: list[Beat] = []
    t = int(rng.integers(0, 2 * fs))
    while True:
        last = len(beats) >= n
        kind = KINDS[seed % 5] if last else KINDS[int(rng.integers(len(KINDS)))]
        for i in range(int(rng.integers(20, 40)) if last else int(rng.integers(2, 40))):
            if kind == "sinus":
                label, rr = ("N" if rng.random() > 0.1 else "S"), rng.normal(0.8, 0.03)
            elif kind == "af":
                label, rr = ("N" if rng.random() > 0.05 else "S"), rng.uniform(0.35, 1.2)
            elif kind == "bigeminy":
                label, rr = "NV"[i % 2], (0.55 if i % 2 else 0.9)
            elif kind == "trigeminy":
                label, rr = "NNV"[i % 3], (0.55 if i % 3 == 2 else 0.85)
            elif kind == "vt":
                label, rr = "V", float(rng.choice([0.4, 0.5, 0.6, 0.62]))
            elif kind == "noisy":
                label, rr = str(rng.choice(["N", "withheld", "V", "S"], p=[0.4, 0.3, 0.2, 0.1])), 0.7
            else:
                label, rr = str(rng.choice(["N", "S", "V", "F", "Q", "withheld"])), rng.uniform(0.3, 1.5)
            if not last and rng.random() < 0.04:
                label = str(rng.choice(["N", "S", "V", "withheld"]))  # a misread beat
            if not last and rng.random() < 0.01:
                rr += rng.uniform(2.0, 4.0)  # beats lost to noise: a gap
            t += max(1, int(rr * fs))
            if label == "withheld" or rng.random() < 0.03:
                atrial = None
            elif kind in ("af", "ectopic"):
                atrial = 0.3 * rng.standard_normal(m)
            else:
                atrial = p_wave + 0.05 * rng.standard_normal(m)
            beats.append((t, label, atrial))
        if last:
            return beats, t + int(rng.integers(0, 3 * fs))


@pytest.mark.parametrize("config", list(CONFIGS))
def test_episodes_of_random_beat_sequences(driver: Path, config: str):
    counts: Counter = Counter()
    at_end: Counter = Counter()
    n_beats = 0
    for seed in range(6):
        fs = (250.0, 360.0, 257.3)[seed % 3]
        beats, end = _random_beats(seed, fs)
        eps = _compare(driver, fs, beats, end, config)
        n_beats += len(beats)
        counts.update(e[2] for e in eps)
        at_end.update(e[2] for e in eps if e[1] == end)
    print(f"random sequences, config {config}: {n_beats} beats, episodes {dict(counts)}, ended by finish "
          f"{dict(at_end)}")
    assert set(counts) == {"VT", "B", "T", "AFIB"}  # every rhythm opened and closed ...
    assert set(at_end) >= {"B", "T", "AFIB"}  # ... and was still open at the end of a stream


def test_hand_made_sequences(driver: Path):
    """The cases of tests/test_stream_beats.py, and B / T episodes that a V keeps open with offset_beats=2."""
    fs, rr = 360.0, 288
    for labels in ("NNNVNVNVNVNNNN", "NNNVNVNNNN", "NNVNNVNNVNNVNNNNN", "NVNVNVNVN", "NNVVVVN",
                   "NVNVNVNVNVVNVNVNVNNVNN", "NNVNNVNNVNNVVNNVNNVNNN", "NVNVNVNVSSVNVN",
                   "NVNVNVNVNVV", "NNVNNVNNVNNVNNVV"):  # (an open B / T that a V broke at the end: offset2)
        beats = [(rr * (k + 1), lab, None) for k, lab in enumerate(labels)]
        for config in CONFIGS:
            _compare(driver, fs, beats, 30 * rr, config)
    withheld = [*"NVNVNVNVN", "withheld", *"VNVN"]
    beats = [(rr * (k + 1), lab, None) for k, lab in enumerate(withheld)]
    for config in CONFIGS:
        _compare(driver, fs, beats, 20 * rr, config)
    assert _compare(driver, fs, [], 100, "default") == []
    # stretches of another length after each V (which empties the AF window): Python stacks only one window's
    rng = np.random.default_rng(11)
    beats, t, m = [], 0, 30
    for k in range(600):
        label = "V" if k % 25 == 24 else "N"
        m = 80 - m if label == "V" else m
        t += int(rng.uniform(0.4, 1.2) * 250)
        beats.append((t, label, 0.3 * rng.standard_normal(m)))
    eps = _compare(driver, 250.0, beats, t + 10, "default")
    assert "AFIB" in {e[2] for e in eps}


def test_open_rhythms_after_every_beat(driver: Path):
    """jefw_rhythm_open_rhythms (the live display) is RhythmTracker.open_rhythms after each beat."""
    for config in ("default", "other"):
        cfg, args = CONFIGS[config]
        beats, end = _random_beats(1, 250.0, n=1500)
        t, want = RhythmTracker(250.0, cfg), []
        for s, label, atrial in beats:
            want += [f"{on} {off} {r}" for on, off, r in t.push(s, label, atrial)]
            want.append(" ".join(["open", *t.open_rhythms]))
        want += [f"{on} {off} {r}" for on, off, r in t.finish(end)]
        done = _run(driver, ["250", *args, "show_open=1"], _stdin(beats, end))
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == want
        shown = Counter(r for line in want if line.startswith("open") for r in line.split()[1:])
        assert set(shown) == {"VT", "B", "T", "AFIB"}, shown


# -- the measures and the segment helper ---------------------------------------------------------------------
def test_rr_irregularity_is_the_same_double_and_p_likeness_within_blas_rounding(driver: Path):
    rng = np.random.default_rng(7)
    lines, want_irr, want_p = [], [], []
    for _ in range(300):
        n = int(rng.integers(0, 12))
        s = np.cumsum(rng.integers(1, 400, n)) + int(rng.integers(0, 10**9))
        lines.append(" ".join(["irr", str(n), *map(str, s.tolist())]))
        want_irr.append(rr_irregularity(s.tolist()))
        k, m = int(rng.integers(4, 10)), int(rng.choice([0, 1, 7, 8, 9, 42, 61, 128, 129, 300]))
        seg = rng.standard_normal((k, m)) * 10.0 ** rng.uniform(-3, 2)
        if rng.random() < 0.3:
            seg = seg + np.exp(-0.5 * ((np.arange(m) - m / 2) / 5.0) ** 2)
        if rng.random() < 0.03 and m:
            seg[int(rng.integers(k)), int(rng.integers(m))] = np.nan
        lines.append(" ".join(["plike", str(k), str(m), *map(repr, seg.ravel().tolist())]))
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            want_p.append(p_likeness(list(seg)))
    done = _run(driver, ["--measures"], "\n".join(lines) + "\n")
    assert done.returncode == 0, done.stderr
    got = [float(v) for v in done.stdout.split()]
    got_irr, got_p = got[0::2], got[1::2]
    assert got_irr == want_irr
    want, have = np.array(want_p), np.array(got_p)
    assert np.array_equal(np.isnan(want), np.isnan(have))
    ok = ~np.isnan(want)
    diff = np.abs(want[ok] - have[ok])
    print(f"p_likeness: {ok.sum()} windows, {int((diff == 0).sum())} the same double, max |C - Python| "
          f"{diff.max():.3g}")
    assert diff.max() <= 1e-12


def test_segment_helper_cuts_what_afconfig_segment_cuts(driver: Path):
    rng = np.random.default_rng(3)
    # Python's round() halves to even: 62.5 -> 62 (250 Hz), 12.5 -> 12 (50 Hz), 13.5 -> 14 (54 Hz); at 4 Hz the
    # stretch is empty
    for fs, window in ((250.0, (0.25, 0.08)), (360.0, (0.25, 0.08)), (50.0, (0.25, 0.05)), (54.0, (0.25, 0.08)),
                       (257.3, (0.3, 0.1)), (312.5, (0.25, 0.08)), (4.0, (0.25, 0.2))):
        cfg = AfConfig(p_window_s=window)
        lines, want = [], []
        for _ in range(200):
            start, n_lead = int(rng.integers(0, 1000)), int(rng.integers(0, 400))
            beat = start + int(rng.integers(-20, n_lead + 120))
            lines.append(f"{beat} {start} {n_lead}")
            seg = cfg.segment(np.arange(start, start + n_lead, dtype=np.float64), beat, fs, start)
            if seg is None or not len(seg):
                want.append("none" if seg is None else "empty")
            else:
                want.append(f"{len(seg)} {float(seg[0])!r} {float(seg[-1])!r}")
        done = _run(driver, ["--segment", repr(fs), repr(window[0]), repr(window[1])], "\n".join(lines) + "\n")
        assert done.returncode == 0, done.stderr
        assert [_segment_line(v) for v in done.stdout.splitlines()] == want, fs


def _segment_line(line: str) -> str:
    """The driver's `<n> <first> <last>` (%.17g) as Python writes it."""
    if line in ("none", "empty"):
        return line
    n, first, last = line.split()
    return f"{n} {float(first)!r} {float(last)!r}"


# -- errors --------------------------------------------------------------------------------------------------
def test_out_of_order_beats_and_unknown_labels_are_refused_as_in_python(driver: Path):
    cases = {
        "time order: 100 after 100": [(100, "N"), (100, "N")],
        "time order: 50 after 100": [(100, "V"), (50, "N")],
        "is not one of": [(100, "N"), (200, "X")],
    }
    for message, beats in cases.items():
        with pytest.raises(StreamError, match=message):
            _python(360.0, [(s, lab, None) for s, lab in beats], 1000, RhythmConfig())
        done = _run(driver, ["360"], _stdin([(s, lab, None) for s, lab in beats], 1000))
        assert done.returncode != 0 and message in done.stderr and done.stdout == "", done.stderr
    # a pre-QRS stretch of another length than the AF window's (Python's np.stack fails on it later)
    beats = [(100, "N", np.zeros(42)), (300, "N", np.zeros(41))]
    done = _run(driver, ["250"], _stdin(beats, 1000))
    assert done.returncode != 0 and "pre-QRS stretch of 41 samples" in done.stderr


def test_bad_configs_are_refused_with_pythons_messages(driver: Path):
    for rhythm, af, args in (({"offset_beats": 0}, {}, ["offset_beats=0"]),
                             ({"vt_min_beats": 1}, {}, ["vt_min_beats=1"]),
                             ({}, {"intervals": 2}, ["af_intervals=2"]),
                             ({}, {"max_gap_s": 0.0}, ["af_max_gap_s=0"]),
                             ({}, {"p_window_s": (0.08, 0.25)}, ["af_p_far_s=0.08", "af_p_near_s=0.25"])):
        with pytest.raises(ConfigError) as e:
            RhythmConfig(**rhythm, af=AfConfig(**af))
        done = _run(driver, ["250", *args], "end 0\n")
        assert done.returncode != 0 and str(e.value) in done.stderr, (done.stderr, str(e.value))
    done = _run(driver, ["0"], "end 0\n")
    assert done.returncode != 0 and "sampling rate 0 must be a positive number" in done.stderr
