"""The single description of ECG preprocessing, shared by training, export, bundle and streaming.

Everything a firmware team needs to reproduce the model input without Python is in `to_dict()`:
sampling rate, window and hop, lead order, the band-pass as explicit SOS sections, and the
per-lead normalisation constants. The filter is causal (`sosfilt` with carried state) everywhere,
so a streamed signal and an offline record go through exactly the same arithmetic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

import numpy as np
from scipy import signal

from ..data.errors import DataError

STANDARD_LEADS: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")

# Header spellings seen in WFDB databases, mapped to the canonical names above.
LEAD_ALIASES: dict[str, str] = {
    **{name.upper(): name for name in STANDARD_LEADS},
    "MLI": "I",
    "MLII": "II",
    "MLIII": "III",
    "D1": "I",
    "D2": "II",
    "D3": "III",
    "AVR": "aVR",
    "AVL": "aVL",
    "AVF": "aVF",
}

MIN_FS, MAX_FS = 100.0, 10_000.0

# Resampling, spelled out for firmware (the C header carries these): up/down = fs_out/fs_in as a fraction whose
# denominator is limited to RESAMPLE_MAX_DENOMINATOR; scipy's resample_poly FIR: 2 * half + 1 taps with
# half = RESAMPLE_HALF_LEN_PER_RATE * max(up, down), Kaiser window (beta RESAMPLE_KAISER_BETA), cut-off 1/max(up, down).
RESAMPLE_MAX_DENOMINATOR = 1000
RESAMPLE_HALF_LEN_PER_RATE = 10  # fixed inside scipy.signal.resample_poly
RESAMPLE_KAISER_BETA = 5.0  # resample_poly's default window ("kaiser", 5.0)


def canonical_lead(name: str) -> str | None:
    """Canonical lead name for a header spelling, or None if it is not a standard ECG lead."""
    return LEAD_ALIASES.get(name.strip().upper().replace(" ", ""))


def other_lead(leads: Sequence[str], first: str) -> str | None:
    """The first lead of `leads` (any header spelling) other than `first`, by canonical name; None when there is
    none. A monitor's second lead (the chest lead beside MLII) for quality windows and beat templates alike."""
    names = [canonical_lead(n) or n for n in leads]
    return next((n for n in names if n != first), None)


def resample(x: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Polyphase resampling along the last axis (zero-phase Kaiser FIR, scipy's resample_poly)."""
    if fs_in == fs_out:
        return np.asarray(x, dtype=np.float64)
    ratio = Fraction(fs_out / fs_in).limit_denominator(RESAMPLE_MAX_DENOMINATOR)
    return signal.resample_poly(x, ratio.numerator, ratio.denominator, axis=-1,
                                window=("kaiser", RESAMPLE_KAISER_BETA))


@dataclass(frozen=True)
class EcgPreprocessing:
    """Resample -> causal band-pass -> per-lead z-score -> clip; windows of `window_s`, hop `hop_s`."""

    fs: int = 500
    window_s: float = 10.0
    hop_s: float = 1.0
    leads: tuple[str, ...] = STANDARD_LEADS
    bandpass_hz: tuple[float, float] = (0.5, 40.0)
    filter_order: int = 2
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    clip: float = 5.0
    _sos_cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (MIN_FS <= self.fs <= MAX_FS):
            raise DataError(f"model sampling rate {self.fs} Hz outside supported {MIN_FS:g}-{MAX_FS:g} Hz")
        lo, hi = self.bandpass_hz
        if not (0 < lo < hi < self.fs / 2):
            raise DataError(f"band-pass {self.bandpass_hz} Hz must satisfy 0 < low < high < fs/2")
        unknown = [name for name in self.leads if name not in STANDARD_LEADS]
        if unknown:
            raise DataError(f"unknown lead name(s) {unknown}; expected a subset of {STANDARD_LEADS}")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is not None and len(value) != len(self.leads):
                raise DataError(f"{name} has {len(value)} entries for {len(self.leads)} leads")
        if self.std is not None and min(self.std) <= 0:
            raise DataError("normalisation std must be positive for every lead")

    # -- sizes -------------------------------------------------------------------------------
    @property
    def window(self) -> int:
        return int(round(self.window_s * self.fs))

    @property
    def hop(self) -> int:
        return int(round(self.hop_s * self.fs))

    @property
    def num_leads(self) -> int:
        return len(self.leads)

    # -- filter ------------------------------------------------------------------------------
    @property
    def sos(self) -> np.ndarray:
        """Band-pass second-order sections, shape (sections, 6), float64."""
        if "sos" not in self._sos_cache:
            self._sos_cache["sos"] = signal.butter(
                self.filter_order, self.bandpass_hz, btype="bandpass", fs=self.fs, output="sos"
            )
        return self._sos_cache["sos"]

    def initial_state(self, first_sample: np.ndarray) -> np.ndarray:
        """Filter state as if the signal had been constant at `first_sample` forever (no start-up step)."""
        zi = signal.sosfilt_zi(self.sos)  # (sections, 2)
        return zi[:, None, :] * np.asarray(first_sample, dtype=np.float64)[None, :, None]

    def filter(self, x: np.ndarray, state: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Causal band-pass of (leads, samples); returns the filtered signal and the state to carry on."""
        x = np.asarray(x, dtype=np.float64)
        if state is None:
            state = self.initial_state(x[:, 0])
        y, state = signal.sosfilt(self.sos, x, axis=-1, zi=state)
        return y, state

    # -- normalisation -----------------------------------------------------------------------
    def normalise(self, x: np.ndarray) -> np.ndarray:
        """Per-lead z-score and clip; identity scaling when the constants have not been fitted."""
        x = np.asarray(x, dtype=np.float64)
        if self.mean is not None:
            x = x - np.asarray(self.mean)[:, None]
        if self.std is not None:
            x = x / np.asarray(self.std)[:, None]
        return np.clip(x, -self.clip, self.clip).astype(np.float32)

    def fit(self, filtered: np.ndarray) -> EcgPreprocessing:
        """A copy with per-lead mean/std fitted on filtered training signals of shape (n, leads, samples)."""
        arr = np.asarray(filtered, dtype=np.float64)
        if arr.ndim != 3 or arr.shape[1] != self.num_leads:
            raise DataError(f"fit expects (records, {self.num_leads}, samples), got {arr.shape}")
        mean = arr.mean(axis=(0, 2))
        std = arr.std(axis=(0, 2))
        std = np.where(std < 1e-6, 1.0, std)
        return replace(self, mean=tuple(float(v) for v in mean), std=tuple(float(v) for v in std), _sos_cache={})

    # -- whole records -----------------------------------------------------------------------
    def filter_record(self, x: np.ndarray, fs_in: float) -> np.ndarray:
        """Resample a (leads, samples) record to `fs` and band-pass it causally from its first sample."""
        if fs_in != self.fs:
            x = resample(x, fs_in, self.fs)
        return self.filter(x)[0]

    def __call__(self, x: np.ndarray, fs_in: float | None = None) -> np.ndarray:
        """Offline preprocessing of one whole record (leads in `self.leads` order) -> float32."""
        return self.normalise(self.filter_record(x, fs_in if fs_in is not None else self.fs))

    def windows(self, x: np.ndarray, hop: int | None = None) -> np.ndarray:
        """Cut a preprocessed (leads, samples) array into (n, leads, window) windows at `hop`."""
        hop = hop or self.hop
        if x.shape[-1] < self.window:
            raise DataError(f"signal of {x.shape[-1]} samples is shorter than one window ({self.window})")
        starts = range(0, x.shape[-1] - self.window + 1, hop)
        return np.stack([x[:, s : s + self.window] for s in starts])

    # -- serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Everything firmware needs, with the SOS coefficients spelled out."""
        return {
            "kind": "ecg",
            "fs": self.fs,
            "window_s": self.window_s,
            "hop_s": self.hop_s,
            "window": self.window,
            "hop": self.hop,
            "leads": list(self.leads),
            "bandpass_hz": list(self.bandpass_hz),
            "filter_order": self.filter_order,
            "filter": "butterworth band-pass, causal direct-form-II-transposed biquads (scipy.signal.sosfilt)",
            "filter_initial_state": "steady state for the first sample (scipy.signal.sosfilt_zi * x0)",
            "sos": self.sos.tolist(),
            "mean": list(self.mean) if self.mean is not None else None,
            "std": list(self.std) if self.std is not None else None,
            "clip": self.clip,
            "layout": "(batch, leads, samples) float32, millivolts before normalisation",
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EcgPreprocessing:
        pre = cls(
            fs=int(d["fs"]),
            window_s=float(d["window_s"]),
            hop_s=float(d["hop_s"]),
            leads=tuple(d["leads"]),
            bandpass_hz=tuple(d["bandpass_hz"]),
            filter_order=int(d["filter_order"]),
            mean=tuple(d["mean"]) if d.get("mean") is not None else None,
            std=tuple(d["std"]) if d.get("std") is not None else None,
            clip=float(d["clip"]),
        )
        if "sos" in d and not np.allclose(np.asarray(d["sos"]), pre.sos, rtol=1e-10, atol=1e-12):
            raise DataError("stored SOS coefficients do not match the described band-pass filter")
        return pre
