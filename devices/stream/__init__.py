"""Streaming ECG classification on the device: chunks in, windowed classifications and quality flags out.

The arithmetic is the training preprocessing (`EcgPreprocessing`), made incremental:

  source samples (any chunk size, source rate)                                    sources.py
    -> non-finite samples held at the last good value and flagged                  classifier.py
    -> `PolyphaseResampler` (causal; equals `resample_poly`, i.e. `preprocess.resample`, sample for sample)
                                                                                   resampler.py
    -> `pre.filter(x, state)` with the state carried from chunk to chunk (the same causal SOS band-pass)
    -> `pre.normalise` -> ring buffer -> one window every hop                      ring.py
    -> signal-quality checks                                                       quality.py
    -> engine (batched over the windows a chunk completes) -> scores -> decisions with hysteresis -> JSONL events
                                                                                   classifier.py, config.py
  beat events: one lead -> settled R peaks (neurokit2 on a lookback buffer) -> labelled beats -> rhythm
  episodes (VT, bigeminy, trigeminy) with hysteresis                   beats.py (no C part yet)
  the monitor: window stream (quality) + beat stream (beat model on a window around each beat; beats of
  flagged windows withheld) fed the same chunks                         monitor.py; EC57 scoring: monitor_eval.py

Nothing here changes the numbers a model sees: streamed windows equal `pre(record, fs).windows()` offline.
The C firmware runner (devices/firmware/src) has one part for each of these files but beats.py and monitor.py.
"""

from __future__ import annotations

from .base import EVENT_VERSION, FLAG_GAP, FLAG_NAN, FLAG_SATURATED, OutputEngine, StreamError
from .beats import QrsConfig, RhythmConfig, RhythmTracker, StreamingQrs
from .classifier import StreamClassifier, write_events
from .config import QualityConfig, StreamConfig
from .quality import window_quality
from .resampler import PolyphaseResampler, resample_ratio
from .ring import Ring
from .sources import StreamSource, int16_source, iterator_source, record_source

__all__ = [
    "EVENT_VERSION",
    "FLAG_GAP",
    "FLAG_NAN",
    "FLAG_SATURATED",
    "OutputEngine",
    "PolyphaseResampler",
    "QrsConfig",
    "QualityConfig",
    "RhythmConfig",
    "RhythmTracker",
    "Ring",
    "StreamClassifier",
    "StreamConfig",
    "StreamError",
    "StreamSource",
    "StreamingQrs",
    "int16_source",
    "iterator_source",
    "record_source",
    "resample_ratio",
    "window_quality",
    "write_events",
]
