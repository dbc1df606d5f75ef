"""The monitor judged as ANSI/AAMI EC57 judges one: replay MIT-BIH records through `MonitorStream` and score its
beats, episodes and quality flags against the reference annotations; compare two models' replays (stream parity).

Everything is scored at the record's own rate (360 Hz): beat positions from the model rate are mapped back. Beats
the stream withholds (noisy window) count as not detected as VEB / SVEB, so a withheld ectopic beat is a miss.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import wfdb

from jepa_edge.data.mitdb import read_mitdb
from jepa_edge.data.preprocess import canonical_lead
from jepa_edge.tasks.ec57 import (
    Counts,
    EpisodeScore,
    RunCounts,
    aami_class,
    beat_counts,
    episode_score,
    flag_score,
    match_beats,
    reference_window_flags,
    rhythm_episodes,
    run_counts,
)

from .beats import RHYTHMS
from .config import StreamConfig
from .monitor import BeatModel, BeatStream, MonitorConfig, MonitorStream


@dataclass
class RecordReplay:
    """One record streamed through the monitor, with its reference, at the record's rate."""

    name: str
    fs: float
    ref_samples: np.ndarray
    ref_classes: list[str]
    beats: np.ndarray  # detected beats (record rate)
    labels: list[str | None]  # N / S / V, "withheld", or None (no full window)
    episodes: dict[str, list[tuple[int, int]]]
    ref_episodes: dict[str, list[tuple[int, int]]]
    window_starts: np.ndarray  # record rate
    window_flagged: np.ndarray
    window_reference: np.ndarray  # `~` noisy or unreadable in either lead for >= half the window
    summary: dict[str, Any] = field(default_factory=dict)
    outputs: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # beat -> (logits, embedding)

    @property
    def real_time_factor(self) -> float:
        return float(self.summary.get("monitor_real_time_factor") or float("nan"))


def replay_record(path: str | Path, model: BeatModel, config: MonitorConfig | None = None,
                  stream_config: StreamConfig | None = None, chunk_s: float = 1.0, seconds: float | None = None,
                  keep_outputs: bool = False) -> RecordReplay:
    """Stream a MIT-BIH record (its first `seconds`, else all of it) chunk by chunk through quality windows and
    the beat model; collect the events (`keep_outputs`: and each labelled beat's fused logits and embedding)."""
    path = Path(path)
    header = wfdb.rdheader(str(path))
    leads = tuple(canonical_lead(n) or n for n in header.sig_name)
    rec, ann = read_mitdb(path, leads=leads)
    beat_stream = BeatStream(model, config, keep_outputs=keep_outputs)
    monitor = MonitorStream(None, beat_stream, stream_config)  # quality-only windows, as `jepa-edge stream` runs
    monitor.start(rec.fs, leads, source=path.name)
    end = rec.signal.shape[1] if seconds is None else min(rec.signal.shape[1], int(round(seconds * rec.fs)))
    x = rec.signal[:, :end].T
    step = max(1, int(round(chunk_s * rec.fs)))
    events: list[dict[str, Any]] = []
    for i in range(0, x.shape[0], step):
        events += monitor.push(x[i : i + step])
    events += monitor.finish()
    scale = rec.fs / model.pre.fs
    beat_ev = [e for e in events if e["type"] == "beat"]
    beats = np.asarray([int(round(e["sample"] * scale)) for e in beat_ev], dtype=np.int64)
    order = np.argsort(beats, kind="stable")
    episodes: dict[str, list[tuple[int, int]]] = {r: [] for r in RHYTHMS}
    for e in events:
        if e["type"] == "episode":
            episodes.setdefault(e["rhythm"], []).append((int(round(e["onset"] * scale)),
                                                         int(round(e["offset"] * scale))))
    win = [e for e in events if e["type"] == "window"]
    starts = np.asarray([int(round(e["t_start"] * rec.fs)) for e in win], dtype=np.int64)
    length = int(round(monitor.windows.pre.window_s * rec.fs))
    intervals = ann.noise_intervals(len(leads), end)
    reference = np.zeros(len(starts), dtype=bool)
    for lead_intervals in intervals:
        reference |= reference_window_flags(lead_intervals, starts, length, 0.5)
    keep = [i for i, s in enumerate(ann.symbols) if aami_class(s) is not None and ann.samples[i] < end]
    ref_eps = {r: [(a, min(b, end)) for a, b in eps if a < end]
               for r, eps in rhythm_episodes(ann.rhythm, rec.signal.shape[1]).items()}
    return RecordReplay(
        name=path.name, fs=rec.fs, ref_samples=ann.samples[keep],
        ref_classes=[aami_class(ann.symbols[i]) for i in keep],
        beats=beats[order], labels=[beat_ev[i].get("label") for i in order], episodes=episodes,
        ref_episodes={r: list(ref_eps.get(r, [])) for r in RHYTHMS}, window_starts=starts,
        window_flagged=np.asarray([e["quality"] != "ok" for e in win], dtype=bool), window_reference=reference,
        summary=events[-1],
        outputs={int(round(b * scale)): v for b, v in beat_stream.outputs.items()})


def detection_counts(r: RecordReplay, start_s: float = 0.0) -> Counts:
    """QRS detection: reference beats matched by any detected beat within 150 ms."""
    match = match_beats(r.ref_samples, r.beats, r.fs)
    keep = r.ref_samples >= start_s * r.fs
    tp = int(((match >= 0) & keep).sum())
    matched = np.zeros(len(r.beats), dtype=bool)
    matched[match[match >= 0]] = True
    fp = int((~matched & (r.beats >= start_s * r.fs)).sum())
    return Counts(tp, int(keep.sum()) - tp, fp)


def _scored_labels(r: RecordReplay) -> list[str]:
    """The stream's beat labels as EC57 scores them: a withheld or unlabelled beat is '-', never an ectopic class."""
    return [lab if lab in ("N", "S", "V") else "-" for lab in r.labels]


def ectopic_counts(r: RecordReplay, target: str) -> Counts:
    """EC57 VEB (`target` 'V') or SVEB ('S') counts; a withheld or unlabelled beat is never `target`."""
    return beat_counts(r.ref_samples, r.ref_classes, r.beats, _scored_labels(r), r.fs, target)


def ectopic_run_counts(r: RecordReplay, target: str = "V") -> dict[str, RunCounts]:
    """EC57 run-by-run counts (couplets, short and long runs of VEB, or of SVEB); a withheld beat ends a run."""
    return run_counts(r.ref_samples, r.ref_classes, r.beats, _scored_labels(r), r.fs, target)


def episode_scores(r: RecordReplay, rhythm: str) -> EpisodeScore:
    return episode_score(r.ref_episodes.get(rhythm, []), r.episodes.get(rhythm, []))


def quality_counts(r: RecordReplay) -> Any:
    return flag_score(r.window_reference, r.window_flagged)


def gross(items: Iterable[Any]) -> Any:
    items = list(items)
    total = items[0]
    for it in items[1:]:
        total = total + it
    return total


def beat_agreement(a: RecordReplay, b: RecordReplay) -> dict[str, Any]:
    """Label agreement of two replays of one record over the beats both labelled (same detector, same positions),
    with the VEB and SVEB calls compared separately."""
    pos_b = {int(s): lab for s, lab in zip(b.beats, b.labels, strict=True)}
    pairs = [(la, pos_b[int(s)]) for s, la in zip(a.beats, a.labels, strict=True) if int(s) in pos_b]
    both = [(x, y) for x, y in pairs if x in ("N", "S", "V") and y in ("N", "S", "V")]
    out: dict[str, Any] = {"beats": len(both), "unpaired": len(a.beats) + len(b.beats) - 2 * len(pairs),
                           "agreement": float(np.mean([x == y for x, y in both])) if both else float("nan")}
    for c in ("V", "S"):
        called = [(x == c, y == c) for x, y in both if x == c or y == c]
        out[f"{c}_either"] = len(called)
        out[f"{c}_agreement"] = float(np.mean([x == y for x, y in called])) if called else float("nan")
    return out


def gross_beat_agreement(per: Iterable[dict[str, Any]]) -> tuple[float | None, int]:
    """Per-record `beat_agreement` results pooled: (agreement over every beat both labelled, those beats)."""
    per = list(per)
    beats = sum(p["beats"] for p in per)
    return (sum(p["agreement"] * p["beats"] for p in per if p["beats"]) / beats if beats else None), beats


def episode_agreement(a: RecordReplay, b: RecordReplay) -> dict[str, EpisodeScore]:
    """Episodes of `b` scored against `a`'s as if `a` were the reference."""
    return {r: episode_score(a.episodes.get(r, []), b.episodes.get(r, [])) for r in RHYTHMS}


__all__ = ["RHYTHMS", "RecordReplay", "beat_agreement", "detection_counts", "ectopic_counts", "episode_agreement",
           "episode_scores", "gross_beat_agreement", "gross", "quality_counts", "replay_record"]
