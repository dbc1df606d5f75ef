"""Beat events and rhythm episodes of a stream: settled R peaks from one lead, then rhythms from labelled beats.

Why streaming and "settled": a monitor gets the lead in chunks of any size and must report each beat once, never
taking it back. `StreamingQrs` runs a maintained detector (neurokit2's cleaning + `ecg_findpeaks`, not a
hand-written one) on a buffer of the last `lookback_s` seconds every `hop_s` of new signal. The runs happen at
fixed absolute sample positions (multiples of the hop), so the peaks depend on the signal only, never on how it
was chunked; a peak is emitted only once it is at least `settle_s` old (the detector's thresholds have seen its
whole neighbourhood, so a later run would not move or drop it) and a refractory period after the last one.

Why hysteresis: `RhythmTracker` turns beat labels (from the beat classifier, or the reference) into episodes of
ventricular tachycardia (VT), bigeminy (B), trigeminy (T) and, with each beat's pre-QRS stretch, atrial
fibrillation (AFIB, `af.AfTracker`), in MIT-BIH's aux-note conventions (`(VT`, `(B`, `(T`, `(AFIB`), so they score
with `ec57.episode_score` against `ec57.rhythm_episodes` of the reference. An episode opens
only after a pattern has repeated (`*_onset_*`) and closes only after `offset_beats` beats broke it, so one
misread beat neither raises nor ends an alarm. Beats withheld for signal quality neither start nor extend one.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from jepa_edge.config import ConfigError

from .af import AF_RHYTHM, AfConfig, AfTracker
from .base import StreamError

BEAT_LABELS = ("N", "S", "V", "F", "Q", "withheld")
RHYTHMS = ("VT", "B", "T", AF_RHYTHM)
RhythmEpisode = tuple[int, int, str]  # (onset sample, offset sample, rhythm), [onset, offset)


@dataclass(frozen=True)
class QrsConfig:
    """R-peak detection on one lead. The defaults were checked on MIT-BIH MLII (tests/test_stream_beats.py).

    `clean_method` "pantompkins1985" (a 5-15 Hz band-pass) rather than neurokit's own 0.5 Hz high-pass: with the
    latter the detector takes the tall T waves of record 113 for beats (+P 0.63); the QRS band keeps them out
    (+P 0.999) and changes no other clean record by more than a beat or two.
    """

    clean_method: str = "pantompkins1985"  # nk.ecg_clean method
    peak_method: str = "neurokit"  # nk.ecg_findpeaks method
    lookback_s: float = 8.0  # signal the detector sees per run
    hop_s: float = 2.0  # one run per this much new signal
    settle_s: float = 1.5  # peaks this close to either end of a run's buffer wait for a later run
    refractory_s: float = 0.3  # no two peaks closer (neurokit's own minimum delay)
    min_segment_s: float = 1.0  # finite stretches (between NaN) shorter than this are not searched

    def __post_init__(self) -> None:
        if min(self.hop_s, self.settle_s, self.refractory_s, self.min_segment_s) <= 0:
            raise ConfigError("hop_s, settle_s, refractory_s and min_segment_s must be > 0")
        if self.lookback_s - 2 * self.settle_s < self.hop_s:
            raise ConfigError(f"lookback_s {self.lookback_s} must be >= hop_s + 2 * settle_s "
                              f"({self.hop_s + 2 * self.settle_s}) so the settled regions of the runs meet")


class StreamingQrs:
    """Settled R peaks of one lead, from chunks of any size: `push` returns the new ones, `finish` the rest.

    Peaks are absolute sample indices counted from the first sample pushed (int64, sorted). NaN samples (lead
    off) are never searched: the detector runs on each finite stretch of the buffer separately.
    """

    def __init__(self, fs: float, config: QrsConfig | None = None) -> None:
        if not np.isfinite(fs) or fs <= 0:
            raise ConfigError(f"sampling rate {fs} must be a positive number")
        self.fs = float(fs)
        self.config = config or QrsConfig()
        c = self.config
        self._look = round(c.lookback_s * fs)
        self._hop = round(c.hop_s * fs)
        self._settle = round(c.settle_s * fs)
        self._refractory = round(c.refractory_s * fs)
        self._min_segment = max(round(c.min_segment_s * fs), 2)
        self._buf = np.empty(0, dtype=np.float64)  # samples [self._buf_start, self._buf_start + len(self._buf))
        self._buf_start = 0
        self._pending: list[np.ndarray] = []
        self._n = 0  # samples pushed so far
        self._next_run = self._hop  # absolute end of the next detector run
        self._last: int | None = None  # last emitted peak
        self._finished = False

    @property
    def samples_seen(self) -> int:
        """Samples pushed so far (the absolute index of the next sample)."""
        return self._n

    def push(self, x: np.ndarray) -> np.ndarray:
        """Take the next samples of the lead (mV); return the R peaks that are now settled."""
        if self._finished:
            raise StreamError("StreamingQrs.push after finish(): start a new detector for a new stream")
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 1:
            raise StreamError(f"StreamingQrs takes one lead as a 1-D chunk, got shape {x.shape}")
        self._pending.append(x)
        self._n += x.shape[0]
        out: list[np.ndarray] = []
        while self._n >= self._next_run:
            out.append(self._run(self._next_run, final=False))
            self._next_run += self._hop
        return np.concatenate(out) if out else np.empty(0, dtype=np.int64)

    def finish(self) -> np.ndarray:
        """End of stream: the peaks not yet emitted, up to the last sample."""
        if self._finished:
            return np.empty(0, dtype=np.int64)
        self._finished = True
        if self._n == 0:
            return np.empty(0, dtype=np.int64)
        return self._run(self._n, final=True)  # also when the last run ended here: its tail was not settled

    def _run(self, end: int, final: bool) -> np.ndarray:
        """Detect on [end - lookback, end) and accept the peaks of its settled region."""
        start = max(0, end - self._look)
        if self._pending:
            self._buf = np.concatenate([self._buf, *self._pending])
            self._pending = []
        drop = start - self._buf_start
        if drop > 0:  # runs only move forward: older samples are never needed again
            self._buf = self._buf[drop:]
            self._buf_start = start
        seg = self._buf[start - self._buf_start:end - self._buf_start]
        peaks = self._detect(seg) + start
        lo = start + self._settle if start > 0 else 0
        hi = end if final else end - self._settle
        accepted = []
        for p in peaks[(peaks >= lo) & (peaks < hi)]:
            if self._last is None or p - self._last >= self._refractory:
                accepted.append(p)
                self._last = int(p)
        return np.asarray(accepted, dtype=np.int64)

    def _detect(self, seg: np.ndarray) -> np.ndarray:
        """neurokit2 peaks of each finite stretch of `seg` (indices into `seg`)."""
        import neurokit2 as nk

        finite = np.isfinite(seg)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], finite.astype(np.int8), [0]])))
        found: list[np.ndarray] = []
        for a, b in zip(edges[::2], edges[1::2], strict=True):
            y = seg[a:b]
            if b - a < self._min_segment or np.ptp(y) == 0:
                continue  # too short to search, or a flat (disconnected) lead
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # neurokit warns on short stretches; they give no peaks then
                clean = nk.ecg_clean(y, sampling_rate=self.fs, method=self.config.clean_method)
                info = nk.ecg_findpeaks(clean, sampling_rate=self.fs, method=self.config.peak_method)
            found.append(np.asarray(info["ECG_R_Peaks"], dtype=np.int64) + a)
        return np.sort(np.concatenate(found)) if found else np.empty(0, dtype=np.int64)


@dataclass(frozen=True)
class RhythmConfig:
    """Rhythm episodes from labelled beats (MIT-BIH aux-note conventions)."""

    vt_min_beats: int = 3  # VT: a run of at least this many consecutive V beats ...
    vt_min_rate_bpm: float = 100.0  # ... each within 60 / rate seconds of the previous V
    bigeminy_onset_pairs: int = 3  # B opens once N V alternated for this many V (each after exactly one N)
    trigeminy_onset_cycles: int = 3  # T opens once N N V repeated for this many V (each after exactly two N)
    offset_beats: int = 1  # an open B / T closes after this many consecutive beats that break its pattern
    normal_labels: tuple[str, ...] = ("N", "S")  # beats that fill the non-ventricular slots of B and T
    af: AfConfig = field(default_factory=AfConfig)  # atrial fibrillation (devices/stream/af.py)

    def __post_init__(self) -> None:
        if self.vt_min_beats < 2 or self.bigeminy_onset_pairs < 2 or self.trigeminy_onset_cycles < 2:
            raise ConfigError("vt_min_beats, bigeminy_onset_pairs and trigeminy_onset_cycles must be >= 2")
        if self.offset_beats < 1 or self.vt_min_rate_bpm <= 0:
            raise ConfigError("offset_beats must be >= 1 and vt_min_rate_bpm > 0")


@dataclass
class _Pattern:
    """One repeating pattern: `period - 1` normal beats then a V (2: bigeminy, 3: trigeminy)."""

    rhythm: str
    period: int
    onset_cycles: int
    start: int | None = None  # onset sample of the current run (half-way from the beat before its first V)
    last_v: int | None = None  # the run's last V
    after_v: int | None = None  # the beat after `last_v`, once it came
    normals: int = 0  # normal beats since `last_v`
    cycles: int = 0  # V beats in the run, each after exactly period - 1 normals (the first V counts 1)
    misses: int = 0  # consecutive beats that broke the pattern while an episode is open
    open: bool = False

    def reset(self) -> None:
        self.start = self.last_v = self.after_v = None
        self.normals = self.cycles = self.misses = 0
        self.open = False

    def offset(self, fallback: int) -> int:
        """Half-way between the last V and the beat after it (`fallback` when that beat has not come)."""
        assert self.last_v is not None
        return (self.last_v + (self.after_v if self.after_v is not None else fallback)) // 2


class RhythmTracker:
    """Beats in (`push(sample, label)`, in time order), closed rhythm episodes out.

    Episode bounds: VT from its first to its last V (the run itself); AFIB from the first beat of its first AF
    window to the last beat of its last (devices/stream/af.py). B and T as MIT-BIH's annotators set them
    (their `(B` / `(T` episodes begin and end with a V: VNVNV, VNNVNNV): from half-way between the first V and
    the beat before it to half-way between the last V and the beat after it; an episode still in its pattern at
    the end of the stream ends there.
    """

    def __init__(self, fs: float, config: RhythmConfig | None = None) -> None:
        if not np.isfinite(fs) or fs <= 0:
            raise ConfigError(f"sampling rate {fs} must be a positive number")
        self.fs = float(fs)
        self.config = config or RhythmConfig()
        c = self.config
        self._max_vt_rr = 60.0 / c.vt_min_rate_bpm * self.fs
        self._patterns = [_Pattern("B", 2, c.bigeminy_onset_pairs), _Pattern("T", 3, c.trigeminy_onset_cycles)]
        self._af = AfTracker(self.fs, c.af)
        self._prev: int | None = None  # previous beat's sample
        self._vt: list[int] = []  # samples of the current run of V beats
        self._out: list[RhythmEpisode] = []

    @property
    def open_rhythms(self) -> list[str]:
        """Rhythms whose episode is open now (for a live display; they are emitted once closed)."""
        vt = ["VT"] if len(self._vt) >= self.config.vt_min_beats else []
        af = [AF_RHYTHM] if self._af.onset is not None else []
        return vt + [p.rhythm for p in self._patterns if p.open] + af

    def push(self, sample: int, label: str, atrial: np.ndarray | None = None) -> list[RhythmEpisode]:
        """One labelled beat (`atrial`: its pre-QRS stretch, `AfConfig.segment`; AF is judged only on beats that
        have one); returns the episodes this beat closed."""
        if label not in BEAT_LABELS:
            raise StreamError(f"beat label {label!r} is not one of {BEAT_LABELS}")
        sample = int(sample)
        if self._prev is not None and sample <= self._prev:
            raise StreamError(f"beats must come in time order: {sample} after {self._prev}")
        self._out = []
        self._push_vt(sample, label)
        for p in self._patterns:
            self._push_pattern(p, sample, label)
        af = self._af.push(sample, label, atrial)
        if af is not None:
            self._emit(*af, AF_RHYTHM)
        self._prev = sample
        return self._out

    def finish(self, end_sample: int) -> list[RhythmEpisode]:
        """End of stream at `end_sample`: close the open episodes."""
        self._out = []
        self._close_vt()
        for p in self._patterns:
            if p.open:
                self._emit(p.start or 0, end_sample if p.misses == 0 else p.offset(end_sample), p.rhythm)
            p.reset()
        af = self._af.finish(end_sample)
        if af is not None:
            self._emit(*af, AF_RHYTHM)
        return self._out

    def _emit(self, onset: int, offset: int, rhythm: str) -> None:
        self._out.append((int(onset), int(offset), rhythm))

    def _push_vt(self, sample: int, label: str) -> None:
        if label == "V" and (not self._vt or sample - self._vt[-1] <= self._max_vt_rr):
            self._vt.append(sample)
            return
        self._close_vt()
        if label == "V":  # a slow V ends the run and may start the next
            self._vt = [sample]

    def _close_vt(self) -> None:
        if len(self._vt) >= self.config.vt_min_beats:
            self._emit(self._vt[0], self._vt[-1], "VT")
        self._vt = []

    def _push_pattern(self, p: _Pattern, sample: int, label: str) -> None:
        if p.last_v is not None and p.after_v is None:
            p.after_v = sample
        fits_v = label == "V" and p.last_v is not None and p.normals == p.period - 1
        fits_n = label in self.config.normal_labels and p.last_v is not None and p.normals < p.period - 1
        if fits_v or fits_n:
            if fits_v:
                p.last_v, p.after_v, p.normals, p.cycles = sample, None, 0, p.cycles + 1
            else:
                p.normals += 1
            p.misses = 0
            if not p.open and p.cycles >= p.onset_cycles and p.normals == p.period - 1:
                p.open = True  # the pattern repeated onset_cycles times, trailing normals included
            return
        # this beat breaks the pattern
        if p.open:
            p.misses += 1
            if p.misses < self.config.offset_beats:
                if label == "V":  # count the spacing anew from this V; the episode stays open
                    p.last_v, p.after_v, p.normals = sample, None, 0
                return
            self._emit(p.start or 0, p.offset(sample), p.rhythm)
        p.reset()
        if label == "V":  # a V may start the next run
            prev = self._prev if self._prev is not None else sample
            p.start, p.last_v, p.cycles = (prev + sample) // 2, sample, 1
