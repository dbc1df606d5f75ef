"""`StreamClassifier`: chunks of any size in, JSONL-ready events out, state carried across chunks
(C: jefw_run_stream in jefw_stream.c)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

import numpy as np

from jepa_edge.config import ConfigError
from jepa_edge.data.preprocess import EcgPreprocessing, canonical_lead

from .base import EVENT_VERSION, FLAG_GAP, FLAG_NAN, FLAG_SATURATED, OutputEngine, StreamError
from .config import StreamConfig
from .quality import window_quality
from .resampler import PolyphaseResampler
from .ring import Ring
from .sources import StreamSource


def _scores(logits: np.ndarray, task: str) -> np.ndarray:
    """Probabilities: softmax for single-label tasks, sigmoid otherwise (multi-label, binary)."""
    logits = np.asarray(logits, dtype=np.float64)
    if "multiclass" in task or "single" in task:
        z = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return z / z.sum(axis=-1, keepdims=True)
    return 1.0 / (1.0 + np.exp(-logits))


class StreamClassifier:
    """Chunks of any size in, JSONL-ready events out; state (filters, ring, hysteresis) carried across chunks.

    Use `start(fs, leads)` (or `run(source)`), then `push(chunk)` as data arrives and `finish()` at the end.
    """

    def __init__(self, engine: OutputEngine | None, pre: EcgPreprocessing, labels: Iterable[str],
                 thresholds: Iterable[float] | None = None, task: str = "multilabel",
                 config: StreamConfig | None = None, name: str = "model") -> None:
        self.engine = engine
        self.pre = pre
        self.labels = [str(v) for v in labels]
        thr = [0.5] * len(self.labels) if thresholds is None else [float(t) for t in thresholds]
        if len(thr) != len(self.labels):
            raise ConfigError(f"{name}: {len(thr)} thresholds for {len(self.labels)} labels")
        self.thresholds = np.asarray(thr)
        self.task = task
        self.config = config or StreamConfig()
        self.name = name
        self._started = False

    # -- construction from artefacts -----------------------------------------------------------------
    @classmethod
    def quality_only(cls, pre: EcgPreprocessing, config: StreamConfig | None = None) -> StreamClassifier:
        """Windows checked for quality and reported, nothing classified: what a beat monitor without a window
        classifier runs to know which beats to withhold (`pre` sets the leads, rate, window and hop checked)."""
        return cls(None, pre, [], [], config=config, name="quality-only")

    @classmethod
    def from_bundle(cls, path: str | Path, config: StreamConfig | None = None, role: str | None = None,
                    backend: str | None = None, public_key: Any = None, require_signature: bool = False,
                    **engine_options: Any) -> StreamClassifier:
        """A streamer over a verified bundle: its engine, preprocessing, labels and thresholds."""
        from jepa_edge.bundle import open_bundle

        bundle = open_bundle(path, public_key=public_key, require_signature=require_signature)
        if bundle.modality != "ecg" or bundle.output.kind != "multilabel":
            raise StreamError(f"{path}: a {bundle.modality} bundle with a {bundle.output.kind} output; streaming "
                              "classifies ECG windows (for echo clips use `jepa-edge echo infer`)")
        model = bundle.manifest.get("model") or {}
        engine = bundle.engine(role=role, backend=backend, **engine_options)
        return cls(engine, bundle.preprocessing, bundle.labels, bundle.thresholds.tolist(),
                   task=str(model.get("task") or "multilabel"), config=config, name=str(path))

    @classmethod
    def from_model_dir(cls, path: str | Path, config: StreamConfig | None = None, backend: str = "torch",
                       engine_path: str | Path | None = None, **engine_options: Any) -> StreamClassifier:
        """A streamer over a classifier model folder (torch), or over an exported file of it (`engine_path`)."""
        from jepa_edge.models.checkpoint import read_meta, resolve_model_dir
        from jepa_edge.runtimes import open_engine

        model_dir = resolve_model_dir(path)
        meta = read_meta(model_dir)
        if meta.get("kind") != "classifier" or "preprocessing" not in meta:
            raise StreamError(f"{model_dir}: not a classifier with a preprocessing description")
        if meta["preprocessing"].get("kind", "ecg") != "ecg":
            raise StreamError(f"{model_dir}: an {meta['preprocessing'].get('kind')} model; streaming classifies ECG "
                              "windows (for echo clips use `jepa-edge echo infer`)")
        engine = (open_engine(engine_path, **engine_options) if engine_path is not None
                  else open_engine(model_dir, backend=backend, **engine_options))
        return cls(engine, EcgPreprocessing.from_dict(meta["preprocessing"]), meta.get("labels") or [],
                   meta.get("thresholds"), task=str(meta.get("task") or "multilabel"), config=config,
                   name=str(model_dir))

    @classmethod
    def open(cls, path: str | Path, config: StreamConfig | None = None, public_key: Any = None,
             require_signature: bool = False, **options: Any) -> StreamClassifier:
        """A bundle folder (manifest.json) or a classifier model folder (meta.json). A key or a required
        signature applies to bundles only: a model folder carries no signature, so it is refused then."""
        path = Path(path)
        if (path / "manifest.json").is_file():
            return cls.from_bundle(path, config=config, public_key=public_key, require_signature=require_signature,
                                   **options)
        if (path / "meta.json").is_file():
            if public_key is not None or require_signature:
                raise StreamError(f"{path}: a classifier model folder carries no signature; --public-key and "
                                  "--require-signature need a signed bundle (jepa-edge build --sign)")
            return cls.from_model_dir(path, config=config, **options)
        raise StreamError(f"{path}: neither a bundle (manifest.json) nor a classifier model folder (meta.json)")

    # -- stream lifecycle ------------------------------------------------------------------------------
    def start(self, fs: float, leads: Iterable[str], rails_mv: np.ndarray | None = None,
              source: str = "stream") -> None:
        """Reset all state for a new stream with sampling rate `fs` and these lead names (in column order)."""
        pre = self.pre
        stream_leads = [canonical_lead(n) or n for n in leads]
        missing = [lead for lead in pre.leads if lead not in stream_leads]
        if missing:
            raise StreamError(
                f"{source}: the model needs {pre.num_leads} leads {list(pre.leads)} but the stream has "
                f"{len(stream_leads)} {stream_leads} (missing {missing}); a {pre.num_leads}-lead model cannot run "
                f"on this stream: use a model trained for the stream's leads (e.g. a "
                f"{len(stream_leads)}-lead student)")
        if not fs or fs <= 0:
            raise StreamError(f"{source}: sampling rate must be positive, got {fs}")
        self.source = source
        self.fs_in = float(fs)
        self.stream_leads = stream_leads
        self._columns = np.asarray([stream_leads.index(lead) for lead in pre.leads])
        self._rails = None if rails_mv is None else np.asarray(rails_mv, dtype=np.float64)[self._columns]
        self.resampler = PolyphaseResampler(self.fs_in, pre.fs, pre.num_leads)
        self._filter_state: np.ndarray | None = None
        self._ring = Ring(pre.num_leads, pre.window)
        self._last_good = np.zeros(pre.num_leads)
        self._next_end = pre.window  # absolute model-rate index (exclusive) where the next window ends
        self._t_origin: float | None = None
        self._decision = np.zeros(len(self.labels), dtype=bool)
        self._run = np.zeros(len(self.labels), dtype=int)
        self.samples_in = 0  # source samples received through push()
        self.samples_filled = 0  # samples inserted for timestamp gaps
        self.model_samples = 0  # model-rate samples filtered into the ring
        self.windows = 0
        self.classified = 0
        self.flag_counts: dict[str, int] = {}
        self.flagged_windows = 0
        self.gaps: list[dict[str, Any]] = []
        self.latencies: list[float] = []
        self.engine_time = 0.0
        self.busy_time = 0.0
        self._on_since: dict[str, float] = {}
        self._on_seconds = dict.fromkeys(self.labels, 0.0)
        self._finished = False
        self._started = True

    def _check_chunk(self, chunk: Any) -> tuple[float | None, np.ndarray]:
        t0 = None
        if isinstance(chunk, tuple):
            if len(chunk) != 2:
                raise StreamError(f"{self.source}: a timestamped chunk is (t0_seconds, samples), "
                                  f"got {len(chunk)} items")
            t0, chunk = float(chunk[0]), chunk[1]
        arr = np.asarray(chunk)
        if arr.ndim == 1 and len(self.stream_leads) == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[1] != len(self.stream_leads):
            raise StreamError(f"{self.source}: chunk of shape {arr.shape} does not fit (samples, "
                              f"{len(self.stream_leads)} leads {self.stream_leads})")
        if not np.issubdtype(arr.dtype, np.number):
            raise StreamError(f"{self.source}: chunk has non-numeric dtype {arr.dtype}")
        return t0, arr

    def push(self, chunk: np.ndarray | tuple[float, np.ndarray]) -> list[dict[str, Any]]:
        """Feed (samples, stream leads) in mV, or (t0_seconds, samples); returns the events it completes."""
        if not self._started:
            raise StreamError(f"{self.name}: call start(fs, leads) (or run(source)) before push()")
        if self._finished:
            raise StreamError(f"{self.source}: stream already finished; start() a new one")
        tick = time.perf_counter()
        t0, arr = self._check_chunk(chunk)
        events: list[dict[str, Any]] = []
        n = arr.shape[0]
        if n == 0:
            return events
        x = np.asarray(arr, dtype=np.float64)[:, self._columns].T  # (leads, n)
        if t0 is not None:
            events += self._check_time(t0)
        flags = np.zeros(n, dtype=np.uint8)
        finite = np.isfinite(x)
        if not finite.all():
            flags[~finite.all(axis=0)] |= FLAG_NAN
            x = self._hold(x, finite)
        if x.shape[1]:
            self._last_good = x[:, -1].copy()
        flags |= self._saturation(x)
        self.samples_in += n
        y, yflags = self.resampler.push(x, flags)
        events += self._ingest(y, yflags, tick)
        self.busy_time += time.perf_counter() - tick
        return events

    def finish(self) -> list[dict[str, Any]]:
        """Flush the resampler tail (zeros after the end, as offline), emit the last windows and the summary."""
        if not self._started:
            raise StreamError(f"{self.name}: nothing to finish (no stream started)")
        tick = time.perf_counter()
        y, yflags = self.resampler.flush()
        events = self._ingest(y, yflags, tick)
        self.busy_time += time.perf_counter() - tick
        t_end = self.model_samples / self.pre.fs
        for label, since in self._on_since.items():
            self._on_seconds[label] += t_end - since
        self._on_since = {}
        self._finished = True
        events.append(self.summary())
        return events

    # -- sample-level steps ----------------------------------------------------------------------------
    def _hold(self, x: np.ndarray, finite: np.ndarray) -> np.ndarray:
        """Replace non-finite samples with the last finite value of their lead (NaN must never reach the filter)."""
        x = x.copy()
        for lead in np.flatnonzero(~finite.all(axis=1)):
            good = finite[lead]
            idx = np.where(good, np.arange(x.shape[1]), -1)
            np.maximum.accumulate(idx, out=idx)
            row = x[lead]
            x[lead] = np.where(idx >= 0, row[np.maximum(idx, 0)], self._last_good[lead])
        return x

    def _saturation(self, x: np.ndarray) -> np.ndarray:
        if self._rails is not None:
            lo, hi = self._rails[:, 0:1], self._rails[:, 1:2]
            sat = (x <= lo) | (x >= hi)
        elif self.config.quality.saturation_mv is not None:
            sat = np.abs(x) >= self.config.quality.saturation_mv
        else:
            return np.zeros(x.shape[1], dtype=np.uint8)
        return np.where(sat.any(axis=0), FLAG_SATURATED, 0).astype(np.uint8)

    def _check_time(self, t0: float) -> list[dict[str, Any]]:
        """Compare a chunk's timestamp with the samples seen so far; fill a gap with held, flagged samples."""
        if self._t_origin is None:
            self._t_origin = t0 - (self.samples_in + self.samples_filled) / self.fs_in
            return []
        expected = self._t_origin + (self.samples_in + self.samples_filled) / self.fs_in
        missing = (t0 - expected) * self.fs_in
        tol = self.config.quality.gap_tolerance_samples
        if missing > tol:
            n_gap = int(round(missing))
            if n_gap > self.config.quality.max_gap_s * self.fs_in:
                raise StreamError(f"{self.source}: timestamp gap of {n_gap / self.fs_in:.1f} s at t={expected:.3f} s "
                                  f"exceeds max_gap_s={self.config.quality.max_gap_s}; restart the stream")
            gap = {"type": "gap", "t": round(expected - self._t_origin, 6), "missing_samples": n_gap,
                   "missing_s": round(n_gap / self.fs_in, 6)}
            self.gaps.append(gap)
            self.samples_filled += n_gap
            fill = np.repeat(self._last_good[:, None], n_gap, axis=1)
            y, yflags = self.resampler.push(fill, np.full(n_gap, FLAG_GAP, dtype=np.uint8))
            return [gap, *self._ingest(y, yflags, time.perf_counter())]
        if missing < -tol:
            event = {"type": "clock", "t": round(expected - self._t_origin, 6),
                     "problem": f"timestamp {t0:.6f} s is {-missing:.1f} samples earlier than the samples received; "
                                "treated as contiguous"}
            self.gaps.append(event)
            return [event]
        return []

    def _ingest(self, y: np.ndarray, yflags: np.ndarray, tick: float) -> list[dict[str, Any]]:
        """Filter + normalise new model-rate samples into the ring, then cut, check and classify windows."""
        if y.shape[1] == 0:
            return []
        if self._filter_state is None:
            self._filter_state = self.pre.initial_state(y[:, 0])
        band, self._filter_state = self.pre.filter(y, self._filter_state)
        self._ring.append(y, band, self.pre.normalise(band), yflags)
        self.model_samples += y.shape[1]
        ready: list[tuple[int, dict[str, Any], np.ndarray | None]] = []
        while self._next_end <= self.model_samples:
            start = self._next_end - self.pre.window
            ready.append(self._window(start))
            self._next_end += self.pre.hop
        return self._classify(ready, tick)

    # -- window-level steps ----------------------------------------------------------------------------
    def _quality(self, raw: np.ndarray, band: np.ndarray, flags: np.ndarray) -> dict[str, Any]:
        """Flags for one window: nan, gap, saturation, flatline (lead-off), noise. Empty dict = good."""
        return window_quality(raw, band, flags, self.pre, self.config.quality)

    def _window(self, start: int) -> tuple[int, dict[str, Any], np.ndarray | None]:
        raw, band, norm, flags = self._ring.window(start, self.pre.window)
        quality = self._quality(raw, band, flags)
        fs = self.pre.fs
        event = {"type": "window", "index": self.windows, "t_start": round(start / fs, 6),
                 "t_end": round((start + self.pre.window) / fs, 6), "quality": "flagged" if quality else "ok",
                 "flags": sorted(quality), "flag_detail": quality}
        self.windows += 1
        self.flagged_windows += bool(quality)
        for name in quality:
            self.flag_counts[name] = self.flag_counts.get(name, 0) + 1
        return start, event, None if quality else norm.copy()

    def _classify(self, ready: list[tuple[int, dict[str, Any], np.ndarray | None]],
                  tick: float) -> list[dict[str, Any]]:
        if not ready:
            return []
        todo = [i for i, (_, _, x) in enumerate(ready) if x is not None] if self.engine is not None else []
        scores: dict[int, np.ndarray] = {}
        for b in range(0, len(todo), self.config.max_batch):
            batch = todo[b : b + self.config.max_batch]
            t = time.perf_counter()
            out = self.engine.outputs(np.stack([ready[i][2] for i in batch]))
            self.engine_time += time.perf_counter() - t
            if "logits" not in out:
                raise StreamError(f"{self.name}: engine returned outputs {sorted(out)}, expected 'logits'")
            probs = _scores(out["logits"], self.task)
            if probs.shape != (len(batch), len(self.labels)):
                raise StreamError(f"{self.name}: engine logits of shape {probs.shape} do not fit "
                                  f"{len(batch)} windows x {len(self.labels)} labels {self.labels}")
            for i, p in zip(batch, probs, strict=True):
                scores[i] = p
        events = []
        latency = time.perf_counter() - tick
        for i, (_, event, _) in enumerate(ready):
            if i in scores:
                self.classified += 1
                event.update(self._decide(scores[i], event["t_end"]))
            else:
                event.update({"scores": None, "above": None, "decisions": self._decided(), "onset": [], "offset": []})
            event["latency_ms"] = round(latency * 1e3, 3)
            events.append(event)
        self.latencies.append(latency)
        return events

    def _decided(self) -> list[str]:
        return [label for label, on in zip(self.labels, self._decision, strict=True) if on]

    def _decide(self, p: np.ndarray, t_end: float) -> dict[str, Any]:
        """Hysteresis: on after `on_windows` windows >= thr+h, off after `off_windows` windows < thr-h."""
        cfg = self.config
        high = p >= self.thresholds + cfg.hysteresis
        low = p < self.thresholds - cfg.hysteresis
        toward = np.where(self._decision, low, high)  # evidence for switching state
        self._run = np.where(toward, self._run + 1, 0)
        need = np.where(self._decision, cfg.off_windows, cfg.on_windows)
        switch = self._run >= need
        onset = [lab for lab, s, d in zip(self.labels, switch, self._decision, strict=True) if s and not d]
        offset = [lab for lab, s, d in zip(self.labels, switch, self._decision, strict=True) if s and d]
        self._decision = np.where(switch, ~self._decision, self._decision)
        self._run = np.where(switch, 0, self._run)
        for label in onset:
            self._on_since[label] = t_end
        for label in offset:
            self._on_seconds[label] += t_end - self._on_since.pop(label, t_end)
        return {"scores": {lab: round(float(v), 6) for lab, v in zip(self.labels, p, strict=True)},
                "above": [lab for lab, v, t in zip(self.labels, p, self.thresholds, strict=True) if v >= t],
                "decisions": self._decided(), "onset": onset, "offset": offset}

    # -- accounting --------------------------------------------------------------------------------
    def accounting(self) -> dict[str, Any]:
        """Samples in vs consumed, model samples vs resample_poly's length, windows vs what the samples allow."""
        r = self.resampler
        consumed = r.consumed - self.samples_filled
        expected_model = r.expected_output(r.consumed) if self._finished else None
        windows_possible = (0 if self.model_samples < self.pre.window
                            else 1 + (self.model_samples - self.pre.window) // self.pre.hop)
        covered = 0 if self.windows == 0 else (self.windows - 1) * self.pre.hop + self.pre.window
        checks = {
            "samples_in_equals_consumed": self.samples_in == consumed,
            "model_samples_equal_offline_length": expected_model is None or self.model_samples == expected_model,
            "model_samples_equal_filtered": r.produced == self.model_samples,
            "windows_equal_possible": self.windows == windows_possible,
        }
        return {
            "samples_in": self.samples_in,
            "samples_consumed": consumed,
            "samples_filled_for_gaps": self.samples_filled,
            "model_samples": self.model_samples,
            "model_samples_expected": expected_model,
            "windows": self.windows,
            "model_samples_in_windows": covered,
            "model_samples_after_last_window": self.model_samples - covered,
            "checks": checks,
            "ok": all(checks.values()),
        }

    def summary(self) -> dict[str, Any]:
        signal_s = (self.samples_in + self.samples_filled) / self.fs_in
        lat = np.asarray(self.latencies) * 1e3 if self.latencies else np.zeros(1)
        info = (self.engine.info() if hasattr(self.engine, "info") else {"engine": type(self.engine).__name__}
                if self.engine is not None else {"engine": None, "mode": "quality only"})
        return {
            "type": "summary",
            "version": EVENT_VERSION,
            "source": self.source,
            "model": self.name,
            "fs_in": self.fs_in,
            "fs_model": self.pre.fs,
            "leads": list(self.pre.leads),
            "window_s": self.pre.window_s,
            "hop_s": self.pre.hop_s,
            "resampler": {"up": self.resampler.up, "down": self.resampler.down,
                          "latency_input_samples": self.resampler.latency_samples},
            "accounting": self.accounting(),
            "classified": self.classified,
            "flagged": dict(sorted(self.flag_counts.items())),
            "flagged_windows": self.flagged_windows,  # not windows - classified: a quality-only stream classifies none
            "gaps": self.gaps,
            "decision_seconds": {k: round(v, 3) for k, v in self._on_seconds.items()},
            "signal_s": round(signal_s, 3),
            "processing_s": round(self.busy_time, 4),
            "engine_s": round(self.engine_time, 4),
            "real_time_factor": round(signal_s / self.busy_time, 1) if self.busy_time > 0 else None,
            "latency_ms": {"p50": round(float(np.percentile(lat, 50)), 3),
                           "p99": round(float(np.percentile(lat, 99)), 3), "max": round(float(lat.max()), 3)},
            "config": asdict(self.config),
            "engine": info,
        }

    # -- whole streams ---------------------------------------------------------------------------------
    def run(self, source: StreamSource, out: IO[str] | None = None,
            on_event: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Stream a whole source; write each event as one JSON line to `out`; return the summary."""
        return run_source(self, source, out, on_event)


def run_source(streamer: Any, source: StreamSource, out: IO[str] | None = None,
               on_event: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Stream a whole source through `streamer` (a `StreamClassifier` or a `MonitorStream`); write each event as
    one JSON line to `out`; return the summary, its sample accounting checked against what the source sent."""
    streamer.start(source.fs, source.leads, rails_mv=source.rails_mv, source=source.name)
    sent = 0

    def emit(events: list[dict[str, Any]]) -> None:
        for event in events:
            if out is not None:
                out.write(json.dumps(event, sort_keys=True) + "\n")
            if on_event is not None:
                on_event(event)

    for chunk in source.chunks:
        sent += len(chunk[1]) if isinstance(chunk, tuple) else len(chunk)
        emit(streamer.push(chunk))
    events = streamer.finish()
    summary = events[-1]
    acct = summary["accounting"]
    acct["source_samples_sent"] = sent
    acct["checks"]["source_sent_equals_in"] = sent == streamer.samples_in
    if source.total_samples is not None:
        acct["source_samples_total"] = source.total_samples
        acct["checks"]["source_total_equals_in"] = source.total_samples == streamer.samples_in
    acct["ok"] = all(acct["checks"].values())
    emit(events)
    return summary


def write_events(events: Iterable[dict[str, Any]], out: IO[str] = sys.stdout) -> None:
    for event in events:
        out.write(json.dumps(event, sort_keys=True) + "\n")

