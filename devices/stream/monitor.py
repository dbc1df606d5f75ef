"""The arrhythmia-monitor stream: beat events and rhythm episodes next to the windowed quality checks.

  source samples -> window stream (`StreamClassifier`: quality flags per 10 s window, window scores if it has an
                    engine)
                 -> the beat model's lead -> `PolyphaseResampler` -> `StreamingQrs` (settled R peaks)
                                          -> causal band-pass + normalisation (`pre`, as in training) -> history
  each settled beat, once `pre.window` of signal around it exists -> beat engine (batched) -> N / S / V
  a beat inside a window the quality check flagged is withheld (reported, not labelled) -> `RhythmTracker`

The beat model's window is cut around the beat exactly as `tasks.beats.BeatContext` cuts it from a whole record
offline, so the stream and the training data agree sample for sample.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from jepa_edge.data.preprocess import EcgPreprocessing, canonical_lead, other_lead
from jepa_edge.tasks.beats import BeatContext, BeatDataError, RrFusion, rr_features, template_preprocessing
from jepa_edge.tasks.outputs import TaskOutput

from .base import OutputEngine, StreamError
from .beats import QrsConfig, RhythmConfig, RhythmTracker, StreamingQrs
from .classifier import StreamClassifier, run_source
from .config import StreamConfig
from .resampler import PolyphaseResampler
from .sources import StreamSource

WITHHELD = "withheld"


@dataclass(frozen=True)
class MonitorConfig:
    qrs: QrsConfig = field(default_factory=QrsConfig)
    rhythm: RhythmConfig = field(default_factory=RhythmConfig)
    max_batch: int = 32  # beat windows per engine call: within the batch profile jetson engines are built with
    history_s: float = 20.0  # normalised beat-lead signal kept (>= the beat window plus the detector's delay)


class _NoMorphology:
    """An engine that says nothing about a beat's shape: zero logits, a zero-width embedding."""

    def __init__(self, classes: int) -> None:
        self.classes = classes

    def outputs(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return {"logits": np.zeros((len(x), self.classes), np.float32), "embedding": np.zeros((len(x), 1), np.float32)}


@dataclass
class BeatModel:
    """A beat engine with what reading it needs: its preprocessing, where the beat sits, its classes."""

    engine: OutputEngine
    pre: EcgPreprocessing
    context: BeatContext
    output: TaskOutput
    name: str = "beats"
    fusion: RrFusion | None = None  # RR-interval late fusion (meta.json `rr_fusion`); None: the engine's logits

    @classmethod
    def from_meta(cls, engine: OutputEngine, meta: dict[str, Any], name: str) -> BeatModel:
        if (meta.get("modality") or "") != "ecg-beat":
            raise StreamError(f"{name}: not a beat model (modality {meta.get('modality')!r}, expected 'ecg-beat'; "
                              "make one with `jepa-edge beats probe` and distil it)")
        output = TaskOutput.from_meta(meta)
        if output.kind != "multiclass":
            raise StreamError(f"{name}: a beat model has a one-of-N output, got {output.kind}")
        try:
            fusion = RrFusion.from_dict(meta["rr_fusion"]) if meta.get("rr_fusion") else None
        except (BeatDataError, KeyError, TypeError, ValueError) as e:
            raise StreamError(f"{name}: its rr_fusion cannot be read ({e})") from None
        return cls(engine, EcgPreprocessing.from_dict(meta["preprocessing"]), BeatContext(**meta.get("beat", {})),
                   output, name, fusion)

    @classmethod
    def rule_based(cls, fusion: RrFusion, like: BeatModel) -> BeatModel:
        """A baseline with no learned morphology streamed exactly as `like` (same preprocessing, beat position,
        classes): an engine with no opinion (zero logits), so only `fusion`'s RR (and template) terms decide."""
        name = "rr+template" if fusion.template is not None else "rr-only"
        return cls(_NoMorphology(len(like.output.names)), like.pre, like.context, like.output, name, fusion)

    @classmethod
    def open(cls, path: str | Path, backend: str | None = None, engine_path: str | Path | None = None,
             public_key: Any = None, require_signature: bool = False) -> BeatModel:
        """A beat bundle (manifest.json), or a beat classifier folder run by `backend` or from `engine_path`."""
        from jepa_edge.models.checkpoint import read_meta, resolve_model_dir
        from jepa_edge.runtimes import open_engine

        path = Path(path)
        if (path / "manifest.json").is_file():
            from jepa_edge.bundle import open_bundle

            bundle = open_bundle(path, public_key=public_key, require_signature=require_signature)
            meta = {**(bundle.manifest.get("model") or {}), "preprocessing": bundle.manifest["preprocessing"],
                    "output": bundle.output.to_dict()}
            return cls.from_meta(bundle.engine(backend=backend), meta, str(path))
        model_dir = resolve_model_dir(path)
        engine = (open_engine(engine_path) if engine_path is not None
                  else open_engine(model_dir, backend=backend or "torch"))
        return cls.from_meta(engine, read_meta(model_dir), str(engine_path or model_dir))


def is_beat_model(path: str | Path) -> bool:
    """Whether a bundle (manifest.json) or model folder (meta.json) holds a beat model, read without verifying
    anything: opening it (`BeatModel.open`) checks the bundle under the trust policy."""
    import json

    path = Path(path)
    for name, key in (("manifest.json", "model"), ("meta.json", None)):
        if (path / name).is_file():
            try:
                meta = json.loads((path / name).read_text())
                meta = (meta.get(key) or {}) if key else meta
                return isinstance(meta, dict) and meta.get("modality") == "ecg-beat"
            except (OSError, ValueError, AttributeError):
                return False
    return False


class BeatStream:
    """Chunks of the stream in, beat and episode events out; every beat is labelled, withheld or reported
    lost (too close to the end for a window)."""

    def __init__(self, model: BeatModel, config: MonitorConfig | None = None, keep_outputs: bool = False) -> None:
        self.model = model
        self.config = config or MonitorConfig()
        self.before, self.after = model.context.offsets(model.pre)
        self.keep_outputs = keep_outputs  # parity: keep each labelled beat's (fused logits, embedding)

    def start(self, fs: float, leads: Iterable[str], source: str = "stream") -> None:
        pre = self.model.pre
        names = [canonical_lead(n) or n for n in leads]
        missing = [lead for lead in pre.leads if lead not in names]
        if missing:
            raise StreamError(f"{source}: the beat model needs lead(s) {list(pre.leads)}; the stream has {names}")
        fusion = self.model.fusion
        self.compared: EcgPreprocessing | None = None  # the template's leads (`template_preprocessing`)
        rows = list(pre.leads)
        if fusion is not None and fusion.template is not None:
            try:
                self.compared = template_preprocessing(pre, names, fusion.template)
            except BeatDataError as e:
                raise StreamError(f"{source}: {e}") from None
            rows += [lead for lead in self.compared.leads if lead not in rows]
        self.columns = [names.index(lead) for lead in rows]  # model leads first, then any the template alone reads
        self._compared_rows = [rows.index(lead) for lead in self.compared.leads] if self.compared is not None else []
        self.resampler = PolyphaseResampler(float(fs), pre.fs, len(rows))
        self.qrs = StreamingQrs(pre.fs, self.config.qrs)
        self.rhythm = RhythmTracker(pre.fs, self.config.rhythm)
        self._state: np.ndarray | None = None
        keep = max(int(self.config.history_s * pre.fs), 2 * pre.window)
        self._hist = np.zeros((pre.num_leads, 0), dtype=np.float32)
        self._compared_hist = np.zeros((len(self.compared.leads) if self.compared else 0, 0), dtype=np.float32)
        self._keep = keep
        self._hist_start = 0  # absolute model-rate index of self._hist[:, 0]
        self.model_samples = 0
        self._pending: list[int] = []  # settled beats waiting for their window (and their quality verdict)
        self._recent: list[int] = []  # the last detected beats (RR features need the history and the next beat)
        self._segments: dict[int, np.ndarray | None] = {}  # QRS of the recent beats, for the template features
        self._atrial: dict[int, np.ndarray | None] = {}  # the stretch before each recent beat's QRS, for AF
        self._verdicts: list[tuple[int, bool]] = []  # window end (model rate, exclusive), flagged
        self._quality_upto = 0  # model-rate index up to which window quality is known
        self.use_quality = False
        self.counts = {"beats": 0, "labelled": 0, WITHHELD: 0, "no_window": 0}
        self.class_counts = dict.fromkeys(self.model.output.names, 0)
        self.episode_counts: dict[str, int] = {}
        self.engine_time = 0.0
        self.source = source
        self.outputs: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    # -- quality from the window stream ---------------------------------------------------------------
    def quality(self, window_events: Iterable[dict[str, Any]]) -> None:
        """Take the window stream's verdicts. A beat is withheld when the first window that covers it (the one
        ending soonest after it: the verdict a live monitor has first) was flagged; the rule does not depend on
        how the stream was chunked."""
        self.use_quality = True
        fs = self.model.pre.fs
        for ev in window_events:
            if ev.get("type") == "window":
                self._verdicts.append((int(round(ev["t_end"] * fs)), ev["quality"] != "ok"))
                self._quality_upto = self._verdicts[-1][0]

    def _is_withheld(self, beat: int) -> bool:
        ends = [e for e, _ in self._verdicts]
        i = bisect.bisect_right(ends, beat)
        return i < len(self._verdicts) and self._verdicts[i][1]

    # -- samples ----------------------------------------------------------------------------------------
    def push(self, x: np.ndarray, final: bool = False) -> list[dict[str, Any]]:
        """(samples, stream leads) in mV; returns the beat and episode events this completes."""
        pre = self.model.pre
        sel = np.asarray(x, dtype=np.float64)[:, self.columns].T
        sel = np.where(np.isfinite(sel), sel, 0.0)
        y, _ = self.resampler.push(sel, np.zeros(sel.shape[1], dtype=np.uint8))
        if final:
            tail, _ = self.resampler.flush()
            y = np.concatenate([y, tail], axis=1)
        beats: np.ndarray = np.zeros(0, dtype=np.int64)
        if y.shape[1]:
            if self._state is None:
                self._state = pre.initial_state(y[:, 0])
            band, self._state = pre.filter(y, self._state)
            self._hist = np.concatenate([self._hist, pre.normalise(band[: pre.num_leads])], axis=1)
            if self.compared is not None:
                compared = self.compared.normalise(band[self._compared_rows])
                self._compared_hist = np.concatenate([self._compared_hist, compared], axis=1)
            self.model_samples += y.shape[1]
            beats = self.qrs.push(y[0])
        if final:
            beats = np.concatenate([beats, self.qrs.finish()])
        self._pending += [int(b) for b in beats]
        self._recent += [int(b) for b in beats]
        self._cache_segments(final)
        events = self._label(final)
        drop = self._hist.shape[1] - self._keep
        if drop > 0:
            oldest = min([self.model_samples - self._keep, *(b - self.before for b in self._pending)])
            drop = max(0, min(drop, oldest - self._hist_start))
            self._hist = self._hist[:, drop:]
            self._compared_hist = self._compared_hist[:, drop:]
            self._hist_start += drop
        floor = min([self.model_samples - self._keep, *self._pending])
        del self._verdicts[:bisect.bisect_right([e for e, _ in self._verdicts], floor)]
        history = self._history()
        first = min([len(self._recent), *(self._recent.index(b) for b in self._pending[:1])])
        del self._recent[: max(0, first - history - 1)]
        for cache in (self._segments, self._atrial):
            for b in [b for b in cache if not self._recent or b < self._recent[0]]:
                del cache[b]
        return events

    def _history(self) -> int:
        """Beats before a beat that its fusion features look at."""
        fusion = self.model.fusion
        if fusion is None:
            return 0
        return max(fusion.history, fusion.template.beats if fusion.template else 0)

    def _cache_segments(self, final: bool) -> None:
        """Keep each beat's pre-QRS stretch (AF) and its QRS once the signal after it has come (a beat too near
        either end of the stream has none, as offline), so neither depends on what the history buffer still holds."""
        fs, af = self.model.pre.fs, self.config.rhythm.af
        for b in self._recent:  # the stretch before a beat (AF) is there as soon as the beat is
            if b not in self._atrial:
                self._atrial[b] = af.segment(self._hist[0], b, fs, self._hist_start)
        fusion = self.model.fusion
        if fusion is None or fusion.template is None:
            return
        half = fusion.template.half(fs)
        for b in self._recent:
            if b not in self._segments and (b + half <= self.model_samples or final):
                self._segments[b] = fusion.template.segment(self._compared_hist, b, fs, self._hist_start)

    def _label(self, final: bool) -> list[dict[str, Any]]:
        fs = self.model.pre.fs
        ready, keep = [], []
        for b in self._pending:
            has_window = b + self.after <= self.model_samples
            quality_known = not self.use_quality or self._quality_upto > b or final
            next_known = self.model.fusion is None or b != self._recent[-1]
            if (has_window and quality_known and next_known) or final:
                ready.append(b)
            else:
                keep.append(b)
        self._pending = keep
        events: list[dict[str, Any]] = []
        todo = []
        for b in ready:
            self.counts["beats"] += 1
            if b - self.before < self._hist_start or b + self.after > self.model_samples:
                self.counts["no_window"] += 1
                events.append({"type": "beat", "sample": b, "t": round(b / fs, 4), "label": None,
                               "reason": "no full window (stream start or end)"})
                continue
            if self.use_quality and self._is_withheld(b):
                self.counts[WITHHELD] += 1
                events.append({"type": "beat", "sample": b, "t": round(b / fs, 4), "label": WITHHELD,
                               "reason": "noisy window"})
                continue
            todo.append(b)
            events.append({"type": "beat", "sample": b, "t": round(b / fs, 4)})
        labelled = {}
        for i in range(0, len(todo), self.config.max_batch):
            batch = todo[i : i + self.config.max_batch]
            x = np.stack([self._hist[:, b - self.before - self._hist_start : b + self.after - self._hist_start]
                          for b in batch])
            tick = time.perf_counter()
            outputs = self.model.engine.outputs(x)
            self.engine_time += time.perf_counter() - tick
            logits = outputs["logits"]
            if self.model.fusion is not None:
                logits = self.model.fusion(logits, np.stack([self._fusion_features(b) for b in batch]))
            if self.keep_outputs:
                for b, lg, emb in zip(batch, logits, outputs["embedding"], strict=True):
                    self.outputs[b] = (np.asarray(lg, dtype=np.float64), np.asarray(emb, dtype=np.float64))
            probs = self.model.output.probabilities(logits)
            for b, p in zip(batch, probs, strict=True):
                labelled[b] = p
        out = []
        for ev in events:
            if "label" not in ev:
                p = labelled[ev["sample"]]
                label = self.model.output.names[int(np.argmax(p))]
                ev.update({"label": label, "p": [round(float(v), 4) for v in p]})
                self.counts["labelled"] += 1
                self.class_counts[label] += 1
            out.append(ev)
            if ev["label"] is not None:
                out += [self._episode(e) for e in self.rhythm.push(ev["sample"], ev["label"],
                                                                   self._atrial.get(ev["sample"]))]
        return out

    def _fusion_features(self, beat: int) -> np.ndarray:
        """RR (and template) features of a beat from the detected beats around it, as `rr_features` and
        `template_features` compute them offline."""
        fusion = self.model.fusion
        assert fusion is not None
        i = self._recent.index(beat)
        nxt = self._recent[i + 1] if i + 1 < len(self._recent) else None
        # the spread reads the `history` RR intervals before the pre-RR: one beat more than the local mean
        rr = rr_features(np.asarray(self._recent[max(0, i - fusion.history - 1) : i + 1]), fusion.history, nxt,
                         spread=fusion.spread)[-1]
        if fusion.template is None:
            return rr
        previous = [self._segments.get(b) for b in self._recent[max(0, i - fusion.template.beats) : i]]
        return np.concatenate([rr, fusion.template.features(self._segments.get(beat), previous)])

    def _episode(self, episode: tuple[int, int, str]) -> dict[str, Any]:
        fs = self.model.pre.fs
        onset, offset, rhythm = episode
        self.episode_counts[rhythm] = self.episode_counts.get(rhythm, 0) + 1
        return {"type": "episode", "rhythm": rhythm, "onset": int(onset), "offset": int(offset),
                "t_onset": round(onset / fs, 4), "t_offset": round(offset / fs, 4)}

    def finish(self, x: np.ndarray | None = None) -> list[dict[str, Any]]:
        events = self.push(x if x is not None else np.zeros((0, max(self.columns) + 1)), final=True)
        return events + [self._episode(e) for e in self.rhythm.finish(self.model_samples)]

    def summary(self) -> dict[str, Any]:
        return {"beats": dict(self.counts), "classes": dict(self.class_counts),
                "episodes": dict(sorted(self.episode_counts.items())), "engine_s": round(self.engine_time, 4),
                "model": self.model.name, "fs_model": self.model.pre.fs, "leads": list(self.model.pre.leads),
                "template_leads": list(self.compared.leads) if self.compared is not None else [],
                "beat": asdict(self.model.context), "config": asdict(self.config)}


def quality_preprocessing(stream_leads: Sequence[str], first: str = "II") -> EcgPreprocessing:
    """The quality windows a monitor without a window classifier checks: `first` (the beat model's lead), then
    one other lead of the stream if it has one, at the rate, window and hop the quality limits were fitted for
    (devices/stream/quality_eval.py, on MIT-BIH MLII + chest lead)."""
    names = [canonical_lead(n) or n for n in stream_leads]
    if first not in names:
        raise StreamError(f"the stream has leads {names}; the beat model reads {first}")
    other = other_lead(names, first)
    return EcgPreprocessing(leads=(first, other) if other else (first,))


class MonitorStream:
    """A window stream (quality, and window scores when it has an engine) and a beat stream fed the same chunks.

    `windows=None`: a quality-only window stream over the beat model's lead and one other stream lead, made
    when the stream starts (`quality_preprocessing`), with `stream_config`'s quality limits."""

    def __init__(self, windows: StreamClassifier | None, beats: BeatStream,
                 stream_config: StreamConfig | None = None) -> None:
        self._own_windows = windows is None
        self.windows = windows
        self.beats = beats
        self.stream_config = stream_config

    @classmethod
    def open(cls, beats: str | Path, windows: str | Path | None = None, backend: str | None = None,
             public_key: Any = None, require_signature: bool = False,
             config: MonitorConfig | None = None, stream_config: StreamConfig | None = None) -> MonitorStream:
        """A monitor from a beat bundle or model folder, next to a window classifier (bundle or folder) or, with
        `windows=None`, next to quality-only windows. Both open under the same trust policy."""
        beat_model = BeatModel.open(beats, backend=backend, public_key=public_key,
                                    require_signature=require_signature)
        options = {"backend": backend} if backend else {}
        window_stream = (StreamClassifier.open(windows, config=stream_config, public_key=public_key,
                                               require_signature=require_signature, **options)
                         if windows is not None else None)
        return cls(window_stream, BeatStream(beat_model, config), stream_config)

    def start(self, fs: float, leads: Iterable[str], rails_mv: np.ndarray | None = None,
              source: str = "stream") -> None:
        leads = list(leads)
        if self._own_windows:
            self.windows = StreamClassifier.quality_only(
                quality_preprocessing(leads, self.beats.model.pre.leads[0]), self.stream_config)
        self.windows.start(fs, leads, rails_mv=rails_mv, source=source)
        self.beats.start(fs, leads, source=source)
        self.busy = 0.0
        self.fs = float(fs)

    @property
    def samples_in(self) -> int:
        return self.windows.samples_in

    def push(self, chunk: np.ndarray) -> list[dict[str, Any]]:
        if isinstance(chunk, tuple):
            raise StreamError(f"{self.beats.source}: the monitor takes untimed chunks (samples only); timestamped "
                              "chunks with gaps would put the beat and window streams on different clocks")
        tick = time.perf_counter()
        win = self.windows.push(chunk)
        self.beats.quality(win)
        out = win + self.beats.push(np.asarray(chunk))
        self.busy += time.perf_counter() - tick
        return out

    def finish(self) -> list[dict[str, Any]]:
        tick = time.perf_counter()
        win = self.windows.finish()
        self.beats.quality(win)
        out = win[:-1] + self.beats.finish()
        self.busy += time.perf_counter() - tick
        signal_s = self.samples_in / self.fs
        summary = {**win[-1], "beats": self.beats.summary(),
                   "monitor_processing_s": round(self.busy, 4),
                   "monitor_real_time_factor": round(signal_s / self.busy, 1) if self.busy > 0 else None}
        return [*out, summary]

    def run(self, source: StreamSource, out: IO[str] | None = None,
            on_event: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Stream a whole source; write each event as one JSON line to `out`; return the summary."""
        return run_source(self, source, out, on_event)


__all__ = ["WITHHELD", "BeatModel", "BeatStream", "MonitorConfig", "MonitorStream", "is_beat_model",
           "quality_preprocessing"]
