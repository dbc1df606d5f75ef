"""Atrial fibrillation episodes from the beats of a stream: irregularly irregular RR intervals with no consistent
P wave before the QRS.

Why two signs: RR irregularity alone also fires on sinus arrhythmia, frequent ectopy and noise (tried here: on
MIT-BIH records with no AF, keeping false episodes rare that way needed a threshold above most PTB-XL AF records'
irregularity). Sinus rhythm, however irregular, keeps one P wave in front of every QRS; AF replaces it with
fibrillatory waves that differ from beat to beat. So a window of consecutive supraventricular beats counts as AF
when their RR intervals are irregular *and* the stretch before each QRS (250-80 ms) looks unlike the window's
median stretch. Ventricular beats break a window (their RR and their pre-QRS stretch say nothing about the atria);
a gap longer than `max_gap_s` (beats withheld for noise) does too. Hysteresis as for the other rhythms: an
episode opens after `onset_windows` AF windows in a row and closes after `offset_windows` windows that are not.
The thresholds were chosen on PTB-XL folds 1-8 AF records against MIT-BIH training and validation records
(`benchmarks/af.py`); the rhythm is reported as MIT-BIH annotates it, `AFIB`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from jepa_edge.config import ConfigError

AF_RHYTHM = "AFIB"
SUPRAVENTRICULAR = ("N", "S")  # beats whose RR intervals and pre-QRS stretches speak for the atria


@dataclass(frozen=True)
class AfConfig:
    intervals: int = 6  # RR intervals of consecutive non-ventricular beats judged together (one window)
    min_irregularity: float = 0.08  # RMS of successive RR differences / mean RR above this ...
    max_p_likeness: float = 0.6  # ... and median correlation of the pre-QRS stretches with their median below this
    p_window_s: tuple[float, float] = (0.25, 0.08)  # the pre-QRS stretch: from 250 ms to 80 ms before the R peak
    onset_windows: int = 2  # AF windows in a row that open an episode
    offset_windows: int = 4  # windows in a row that are not AF and close it
    max_gap_s: float = 2.0

    def __post_init__(self) -> None:
        far, near = self.p_window_s
        if self.intervals < 3 or self.onset_windows < 1 or self.offset_windows < 1:
            raise ConfigError("AF needs intervals >= 3, onset_windows >= 1 and offset_windows >= 1")
        if not far > near >= 0 or self.max_gap_s <= 0 or self.min_irregularity < 0:
            raise ConfigError(f"AF p_window_s {self.p_window_s} must be (far, near) before the R peak, far > near "
                              ">= 0; max_gap_s > 0; min_irregularity >= 0")

    def segment(self, lead: np.ndarray, beat: int, fs: float, start: int = 0) -> np.ndarray | None:
        """The pre-QRS stretch of a beat from `lead` (first sample at absolute index `start`); None near its start."""
        a = beat - int(round(self.p_window_s[0] * fs)) - start
        b = beat - int(round(self.p_window_s[1] * fs)) - start
        return None if a < 0 or b > len(lead) else np.asarray(lead[a:b], dtype=np.float64)


def rr_irregularity(samples: Sequence[int]) -> float:
    """RMS of successive RR differences over the mean RR (0 for a metronome; AF is typically above 0.15)."""
    rr = np.diff(np.asarray(samples, dtype=np.float64))
    return float(np.sqrt(np.mean(np.diff(rr) ** 2)) / rr.mean()) if len(rr) >= 2 else 0.0


def p_likeness(segments: Sequence[np.ndarray]) -> float:
    """Median correlation of each pre-QRS stretch with the stretches' median: near 1 when every beat has the same P
    wave, low when fibrillatory waves differ from beat to beat."""
    s = np.stack(segments)
    s = s - s.mean(axis=1, keepdims=True)
    t = np.median(s, axis=0)
    corr = s @ t / (np.linalg.norm(s, axis=1) * np.linalg.norm(t) + 1e-9)
    return float(np.median(corr))


class AfTracker:
    """Labelled beats with their pre-QRS stretches in, AF episodes (onset, offset) out."""

    def __init__(self, fs: float, config: AfConfig | None = None) -> None:
        self.fs = float(fs)
        self.config = config or AfConfig()
        self._window: deque[tuple[int, np.ndarray]] = deque(maxlen=self.config.intervals + 1)
        self._hits = self._misses = 0
        self._run_start: int | None = None  # first beat of the current run of AF windows
        self._last_af: int | None = None  # last beat of the last AF window
        self.onset: int | None = None  # the open episode's onset

    def push(self, sample: int, label: str, atrial: np.ndarray | None) -> tuple[int, int] | None:
        """One beat; returns an episode this beat closed."""
        c = self.config
        if self._window and sample - self._window[-1][0] > c.max_gap_s * self.fs:
            self._window.clear()
        if label not in SUPRAVENTRICULAR or atrial is None:
            self._window.clear()  # a ventricular, withheld or unclassed beat (or one with no stretch) breaks it
            return None
        self._window.append((sample, atrial))
        if len(self._window) <= c.intervals:
            return None
        beats = [b for b, _ in self._window]
        af = (rr_irregularity(beats) > c.min_irregularity
              and p_likeness([a for _, a in self._window]) < c.max_p_likeness)
        if af:
            if self._hits == 0:
                self._run_start = beats[0]
            self._hits, self._misses, self._last_af = self._hits + 1, 0, sample
            if self.onset is None and self._hits >= c.onset_windows:
                self.onset = self._run_start
            return None
        self._hits = 0
        if self.onset is not None:
            self._misses += 1
            if self._misses >= c.offset_windows:
                return self._close(self._last_af if self._last_af is not None else sample)
        return None

    def finish(self, end_sample: int) -> tuple[int, int] | None:
        closed = self._close(end_sample if self._misses == 0 else self._last_af or end_sample) \
            if self.onset is not None else None
        self._window.clear()
        self._hits = 0
        return closed

    def _close(self, offset: int) -> tuple[int, int]:
        onset, self.onset, self._misses = self.onset, None, 0
        assert onset is not None
        return int(onset), int(offset)


__all__ = ["AF_RHYTHM", "AfConfig", "AfTracker", "p_likeness", "rr_irregularity"]
