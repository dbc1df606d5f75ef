"""Arrhythmia-monitor scoring in the manner of ANSI/AAMI EC57: beat-by-beat and episode statistics.

A monitor is bought for these figures, not for window AUCs: VEB and SVEB sensitivity (Se) and positive
predictivity (+P) from beats matched within 150 ms, and episode / duration Se and +P for rhythms such as AF and
VT. Everything here works on sample indices of one record, so the same code scores the reference against the
teacher, the FP32 student or the INT8 engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

# AAMI beat classes from MIT-BIH annotation symbols (EC57 / ANSI-AAMI EC38 mapping).
AAMI_CLASS: dict[str, str] = {
    **dict.fromkeys("NLRej", "N"),
    **dict.fromkeys("AaJS", "S"),
    **dict.fromkeys("VE", "V"),
    "F": "F",
    **dict.fromkeys("/fQ", "Q"),
}
BEAT_MATCH_S = 0.150  # EC57: a detected beat matches a reference beat within 150 ms
EC57_LEARNING_S = 300.0  # EC57 leaves the first 5 minutes of each record out of beat statistics


def aami_class(symbol: str) -> str | None:
    """AAMI class (N, S, V, F, Q) of a beat annotation symbol; None for non-beat annotations (rhythm, noise)."""
    return AAMI_CLASS.get(symbol)


def _share(hits: int, others: int) -> float:
    """hits / (hits + others), NaN when both are 0 (nothing to score)."""
    return hits / (hits + others) if hits + others else float("nan")


@dataclass(frozen=True)
class Counts:
    """True positives, false negatives and false positives of one class (beats or episodes)."""

    tp: int = 0
    fn: int = 0
    fp: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fn + other.fn, self.fp + other.fp)

    @property
    def se(self) -> float:
        """Sensitivity TP / (TP + FN); NaN when the reference holds none."""
        return _share(self.tp, self.fn)

    @property
    def ppv(self) -> float:
        """Positive predictivity TP / (TP + FP); NaN when nothing was detected."""
        return _share(self.tp, self.fp)

    def to_dict(self) -> dict[str, float | int]:
        return {"tp": self.tp, "fn": self.fn, "fp": self.fp, "se": self.se, "ppv": self.ppv}


def match_beats(ref: np.ndarray, test: np.ndarray, fs: float, window_s: float = BEAT_MATCH_S) -> np.ndarray:
    """For each reference beat the index of its matched test beat, or -1.

    One-to-one, in time order, nearest first: each test beat matches at most one reference beat, the closest
    unmatched one within `window_s` (the EC57 rule; ties go to the earlier beat).
    """
    ref = np.asarray(ref, dtype=np.int64)
    test = np.asarray(test, dtype=np.int64)
    if np.any(np.diff(ref) < 0) or np.any(np.diff(test) < 0):
        raise ValueError("beat sample indices must be sorted")
    tol = window_s * fs
    out = np.full(ref.shape[0], -1, dtype=np.int64)
    # candidate pairs within the window, taken greedily by distance
    pairs: list[tuple[float, int, int]] = []
    lo = 0
    for i, r in enumerate(ref):
        while lo < test.shape[0] and test[lo] < r - tol:
            lo += 1
        j = lo
        while j < test.shape[0] and test[j] <= r + tol:
            pairs.append((abs(float(test[j] - r)), i, j))
            j += 1
    used = np.zeros(test.shape[0], dtype=bool)
    for _, i, j in sorted(pairs):
        if out[i] < 0 and not used[j]:
            out[i] = j
            used[j] = True
    return out


def beat_counts(ref_samples: np.ndarray, ref_classes: Sequence[str], test_samples: np.ndarray,
                test_classes: Sequence[str], fs: float, target: str, start_s: float = EC57_LEARNING_S,
                window_s: float = BEAT_MATCH_S) -> Counts:
    """EC57 counts for one beat class (`target` 'V' for VEB, 'S' for SVEB) on one record.

    Reference Q beats and, for VEB, reference fusion (F) beats are left out (EC57 does not score them);
    an unmatched detection of `target` is a false positive; a missed reference `target` beat a false negative.
    Only beats from `start_s` on count.
    """
    ref_samples = np.asarray(ref_samples)
    test_samples = np.asarray(test_samples)
    if len(ref_classes) != ref_samples.shape[0] or len(test_classes) != test_samples.shape[0]:
        raise ValueError("one class per beat is required for reference and test")
    match = match_beats(ref_samples, test_samples, fs, window_s)
    start = start_s * fs
    excluded = {"Q", "F"} if target == "V" else {"Q"}
    tp = fn = fp = 0
    matched_test = np.zeros(test_samples.shape[0], dtype=bool)
    for i, (s, rc) in enumerate(zip(ref_samples, ref_classes, strict=True)):
        j = int(match[i])
        if j >= 0:
            matched_test[j] = True
        if s < start or rc in excluded:
            continue
        detected = j >= 0 and test_classes[j] == target
        if rc == target:
            tp, fn = tp + detected, fn + (not detected)
        elif detected:
            fp += 1
    for j, (s, tc) in enumerate(zip(test_samples, test_classes, strict=True)):
        if not matched_test[j] and s >= start and tc == target:
            fp += 1
    return Counts(tp, fn, fp)


# EC57 run-by-run statistics: runs of consecutive ectopic beats by length, lengths counted up to RUN_CAP
RUN_CAP = 6
RUN_KINDS: dict[str, int] = {"couplet": 2, "short run": 3, "long run": RUN_CAP}  # shortest length of each kind
RUN_CONTINUES: dict[str, frozenset[str]] = {"V": frozenset("VF"), "S": frozenset("S")}  # beats that extend a run


def run_kind(length: int) -> str | None:
    """couplet (2), short run (3-5), long run (6 and more), or None for a single beat."""
    return "long run" if length >= RUN_CAP else "short run" if length >= 3 else "couplet" if length == 2 else None


@dataclass(frozen=True)
class RunCounts:
    """One run kind on one record: reference runs found (`tp_se`) or missed (`fn`), detected runs that the
    reference confirms (`tp_ppv`) or not (`fp`). Se and +P have their own true positives, as in EC57."""

    tp_se: int = 0
    fn: int = 0
    tp_ppv: int = 0
    fp: int = 0

    def __add__(self, other: RunCounts) -> RunCounts:
        return RunCounts(self.tp_se + other.tp_se, self.fn + other.fn, self.tp_ppv + other.tp_ppv,
                         self.fp + other.fp)

    se = property(lambda self: _share(self.tp_se, self.fn))
    ppv = property(lambda self: _share(self.tp_ppv, self.fp))

    def to_dict(self) -> dict[str, float | int]:
        return {"tp_se": self.tp_se, "fn": self.fn, "tp_ppv": self.tp_ppv, "fp": self.fp, "se": self.se,
                "ppv": self.ppv}


def ectopic_runs(samples: np.ndarray, classes: Sequence[str], target: str = "V") -> list[tuple[int, int, int]]:
    """(first sample, last sample, length up to RUN_CAP) of every run of `target` beats (VE runs: V and fusion
    beats; SVE runs: S). Any other beat, including a withheld or unclassed one, ends a run."""
    grow = RUN_CONTINUES[target]
    runs: list[tuple[int, int, int]] = []
    first = last = -1
    length = 0
    for s, c in zip(np.asarray(samples).tolist(), classes, strict=True):
        if c in grow:
            if not length:
                first = s
            last, length = s, min(length + 1, RUN_CAP)
        elif length:
            runs.append((first, last, length))
            length = 0
    if length:
        runs.append((first, last, length))
    return runs


def longest_run(samples: np.ndarray, classes: Sequence[str], t0: float, t1: float, target: str = "V") -> int:
    """The longest run of `target` beats among the beats in [t0, t1], up to RUN_CAP."""
    samples = np.asarray(samples)
    lo, hi = np.searchsorted(samples, t0, "left"), np.searchsorted(samples, t1, "right")
    return max((n for _, _, n in ectopic_runs(samples[lo:hi], classes[lo:hi], target)), default=0)


def run_counts(ref_samples: np.ndarray, ref_classes: Sequence[str], test_samples: np.ndarray,
               test_classes: Sequence[str], fs: float, target: str = "V", start_s: float = EC57_LEARNING_S,
               window_s: float = BEAT_MATCH_S) -> dict[str, RunCounts]:
    """EC57 run-by-run counts per run kind on one record. A reference run counts as found when the test beats
    within its span (widened by `window_s` each side) hold a run at least as long as its kind's shortest (a
    couplet needs >= 2 test ectopic beats in a row there, a short run >= 3, a long run >= 6); a detected run is
    confirmed the same way by the reference. Runs starting before `start_s` (the learning period) are left out."""
    if target not in RUN_CONTINUES:
        raise ValueError(f"run target must be one of {sorted(RUN_CONTINUES)}, got {target!r}")
    ref_samples, test_samples = np.asarray(ref_samples), np.asarray(test_samples)
    if len(ref_classes) != ref_samples.shape[0] or len(test_classes) != test_samples.shape[0]:
        raise ValueError("one class per beat is required for reference and test")
    tol, start = window_s * fs, start_s * fs
    counts = {kind: [0, 0, 0, 0] for kind in RUN_KINDS}  # tp_se, fn, tp_ppv, fp
    for runs, other, other_classes, hit, miss in (
            (ectopic_runs(ref_samples, ref_classes, target), test_samples, test_classes, 0, 1),
            (ectopic_runs(test_samples, test_classes, target), ref_samples, ref_classes, 2, 3)):
        for first, last, length in runs:
            kind = run_kind(length)
            if kind is None or first < start:
                continue
            found = longest_run(other, other_classes, first - tol, last + tol, target) >= RUN_KINDS[kind]
            counts[kind][hit if found else miss] += 1
    return {kind: RunCounts(*c) for kind, c in counts.items()}


Episode = tuple[int, int]  # [onset, offset) in samples


def _overlap(a: Episode, b: Episode) -> int:
    return max(0, min(a[1], b[1]) - max(a[0], b[0]))


@dataclass(frozen=True)
class EpisodeScore:
    """Episode Se / +P and duration Se / +P of one rhythm, summable over records (gross statistics).

    Episode Se counts reference episodes that some detected episode overlaps; episode +P counts detected
    episodes that overlap some reference episode (the two can differ when one long detection spans two
    reference episodes, so they are kept apart rather than forced into one TP count).
    """

    ref_episodes: int = 0
    ref_detected: int = 0
    test_episodes: int = 0
    test_true: int = 0
    ref_duration: int = 0
    test_duration: int = 0
    overlap: int = 0

    @property
    def se(self) -> float:
        return self.ref_detected / self.ref_episodes if self.ref_episodes else float("nan")

    @property
    def ppv(self) -> float:
        return self.test_true / self.test_episodes if self.test_episodes else float("nan")

    @property
    def duration_se(self) -> float:
        return self.overlap / self.ref_duration if self.ref_duration else float("nan")

    @property
    def duration_ppv(self) -> float:
        return self.overlap / self.test_duration if self.test_duration else float("nan")

    def __add__(self, other: EpisodeScore) -> EpisodeScore:
        return EpisodeScore(*(a + b for a, b in zip(self._fields(), other._fields(), strict=True)))

    def _fields(self) -> tuple[int, ...]:
        return (self.ref_episodes, self.ref_detected, self.test_episodes, self.test_true, self.ref_duration,
                self.test_duration, self.overlap)

    def to_dict(self) -> dict[str, float | int]:
        return {"ref_episodes": self.ref_episodes, "test_episodes": self.test_episodes, "episode_se": self.se,
                "episode_ppv": self.ppv, "duration_se": self.duration_se, "duration_ppv": self.duration_ppv,
                "ref_duration": self.ref_duration, "test_duration": self.test_duration, "overlap": self.overlap}


def _merged(episodes: Iterable[Episode]) -> list[Episode]:
    out: list[Episode] = []
    for on, off in sorted((int(a), int(b)) for a, b in episodes):
        if off <= on:
            raise ValueError(f"episode [{on}, {off}) ends before it starts")
        if out and on <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], off))
        else:
            out.append((on, off))
    return out


def episode_score(ref: Iterable[Episode], test: Iterable[Episode]) -> EpisodeScore:
    """Score detected rhythm episodes against reference episodes of the same rhythm on one record.

    A reference episode is detected when any detected episode overlaps it; a detected episode is a true positive
    when it overlaps any reference episode. Duration figures use the summed overlap (EC57's duration Se / +P).
    """
    r, t = _merged(ref), _merged(test)
    tp_ref = sum(any(_overlap(a, b) for b in t) for a in r)
    tp_test = sum(any(_overlap(b, a) for a in r) for b in t)
    overlap = sum(_overlap(a, b) for a in r for b in t)
    return EpisodeScore(len(r), tp_ref, len(t), tp_test, sum(b - a for a, b in r), sum(b - a for a, b in t),
                        overlap)


def rhythm_episodes(changes: Sequence[tuple[int, str]], end: int) -> dict[str, list[Episode]]:
    """Episodes per rhythm label from MIT-BIH style rhythm-change annotations [(sample, label), ...]."""
    out: dict[str, list[Episode]] = {}
    ordered = sorted(changes)
    for k, (start, label) in enumerate(ordered):
        stop = ordered[k + 1][0] if k + 1 < len(ordered) else end
        if stop > start:
            out.setdefault(label, []).append((int(start), int(stop)))
    return {label: _merged(eps) for label, eps in out.items()}


@dataclass(frozen=True)
class FlagScore:
    """Signal-quality flags against reference quality annotations, per window: sensitivity and specificity."""

    tp: int = 0
    fn: int = 0
    fp: int = 0
    tn: int = 0

    @property
    def se(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def sp(self) -> float:
        return self.tn / (self.tn + self.fp) if self.tn + self.fp else float("nan")

    def __add__(self, other: FlagScore) -> FlagScore:
        return FlagScore(self.tp + other.tp, self.fn + other.fn, self.fp + other.fp, self.tn + other.tn)

    def to_dict(self) -> dict[str, float | int]:
        return {"tp": self.tp, "fn": self.fn, "fp": self.fp, "tn": self.tn, "se": self.se, "sp": self.sp}


def reference_window_flags(intervals: Sequence[tuple[int, int, str]], starts: np.ndarray, length: int,
                           min_fraction: float = 0.5) -> np.ndarray:
    """True for each window [start, start + length) that reference intervals cover for >= `min_fraction`."""
    starts = np.asarray(starts, dtype=np.int64)
    covered = np.zeros(starts.shape[0], dtype=np.int64)
    for on, off, _ in intervals:
        covered += np.clip(np.minimum(starts + length, off) - np.maximum(starts, on), 0, None)
    return covered >= min_fraction * length


def flag_score(reference: np.ndarray, flagged: np.ndarray) -> FlagScore:
    """Counts of flagged windows against reference-noisy windows (boolean arrays of the same length)."""
    ref = np.asarray(reference, dtype=bool)
    got = np.asarray(flagged, dtype=bool)
    if ref.shape != got.shape:
        raise ValueError(f"reference {ref.shape} and flags {got.shape} differ")
    return FlagScore(int((ref & got).sum()), int((ref & ~got).sum()), int((~ref & got).sum()),
                     int((~ref & ~got).sum()))
