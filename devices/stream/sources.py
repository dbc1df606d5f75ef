"""Where samples come from: a WFDB record replay, int16 frames from a byte stream (stdin), any Python iterable.
(C: the runner reads the int16 frame format from stdin, jefw_stream.c.)"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from jepa_edge.data.preprocess import canonical_lead

from .base import StreamError


@dataclass
class StreamSource:
    """A stream description plus its chunks: (samples, leads) arrays in mV, optionally (t0_seconds, array)."""

    name: str
    fs: float
    leads: tuple[str, ...]
    chunks: Iterable[np.ndarray | tuple[float, np.ndarray]]
    rails_mv: np.ndarray | None = None  # (leads, 2) ADC rails in mV: samples at a rail count as saturated
    total_samples: int | None = None  # known length (a record), to check the accounting end to end


def record_source(path: str | Path, chunk: int = 360, realtime: bool = False,
                  start: int = 0, stop: int | None = None) -> StreamSource:
    """Replay a WFDB record in chunks, as fast as possible or paced at its sampling rate."""
    from jepa_edge.data.ecg import check_record, decode_record

    base, rec = check_record(path)  # the same checks and messages as read_record (missing, truncated, mismatched)
    if chunk < 1:
        raise StreamError(f"{base}: chunk size must be >= 1 sample, got {chunk}")
    digital = decode_record(base, rec, physical=False, start=start, stop=stop)
    gain = np.asarray(rec.adc_gain, dtype=np.float64)
    baseline = np.asarray(rec.baseline, dtype=np.float64)
    bad_gain = gain == 0
    gain = np.where(bad_gain, 200.0, gain)  # WFDB: gain 0 means "uncalibrated", 200 adu/mV by convention
    mv = (digital - baseline) / gain
    res = np.asarray([r if r else 12 for r in rec.adc_res], dtype=np.float64)
    zero = np.asarray(rec.adc_zero, dtype=np.float64)
    lo = (zero - 2 ** (res - 1) - baseline) / gain
    hi = (zero + 2 ** (res - 1) - 1 - baseline) / gain
    names = tuple(canonical_lead(n) or n for n in rec.sig_name)
    fs = float(rec.fs)

    def chunks() -> Iterator[np.ndarray]:
        t_start = time.perf_counter()
        for s in range(0, mv.shape[0], chunk):
            if realtime:
                delay = t_start + s / fs - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            yield mv[s : s + chunk]

    return StreamSource(name=str(base), fs=fs, leads=names, chunks=chunks(),
                        rails_mv=np.stack([lo, hi], axis=1), total_samples=int(mv.shape[0]))


def int16_source(stream: IO[bytes], fs: float, leads: Iterable[str], gain: float = 200.0,
                 baseline: float = 0.0, chunk: int = 360, name: str = "stdin") -> StreamSource:
    """Raw little-endian int16 frames (lead-interleaved) from a binary stream, converted to mV with `gain`."""
    lead_names = tuple(canonical_lead(n) or n for n in leads)
    if not lead_names:
        raise StreamError(f"{name}: give the lead order of the int16 frames (e.g. --leads II,V1)")
    if gain <= 0:
        raise StreamError(f"{name}: gain must be positive (ADC units per mV), got {gain}")
    n_leads = len(lead_names)
    frame_bytes = 2 * n_leads
    rails = np.tile(np.array([(-32768 - baseline) / gain, (32767 - baseline) / gain]), (n_leads, 1))

    def chunks() -> Iterator[np.ndarray]:
        leftover = b""
        while True:
            data = stream.read(chunk * frame_bytes)
            if not data:
                break
            data = leftover + data
            usable = len(data) - len(data) % frame_bytes
            leftover = data[usable:]
            if usable:
                frames = np.frombuffer(data[:usable], dtype="<i2").reshape(-1, n_leads)
                yield (frames.astype(np.float64) - baseline) / gain
        if leftover:
            raise StreamError(f"{name}: stream ended inside a frame ({len(leftover)} stray bytes; "
                              f"frames are {frame_bytes} bytes = {n_leads} leads x int16)")

    return StreamSource(name=name, fs=float(fs), leads=lead_names, chunks=chunks(), rails_mv=rails)


def iterator_source(chunks: Iterable[np.ndarray | tuple[float, np.ndarray]], fs: float, leads: Iterable[str],
                    name: str = "iterator", rails_mv: np.ndarray | None = None) -> StreamSource:
    """Any Python iterable of (samples, leads) mV arrays, or (t0_seconds, array) pairs for gap detection."""
    return StreamSource(name=name, fs=float(fs), leads=tuple(canonical_lead(n) or n for n in leads),
                        chunks=chunks, rails_mv=rails_mv)

