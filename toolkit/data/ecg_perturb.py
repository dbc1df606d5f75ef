"""Seeded ECG perturbations on raw millivolt signals, for robustness sweeps in the parity report.

Every function takes a raw signal shaped (leads, samples) or (records, leads, samples) at `fs` Hz, in mV,
before preprocessing, and returns a new float64 array of the same shape (the input is never modified).
They model what a bedside recording actually suffers: sensor/muscle noise at a set SNR, respiratory
baseline wander, mains interference, and an electrode that came off. Randomness comes only from `seed`,
so a sweep gives the same numbers on every run and every machine.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import JepaEdgeError
from .preprocess import STANDARD_LEADS


class PerturbationError(JepaEdgeError):
    """A perturbation asked for something the signal cannot take (bad shape, frequency, lead, severity)."""


def _signal(x: np.ndarray, name: str) -> np.ndarray:
    arr = np.array(x, dtype=np.float64, copy=True)
    if arr.ndim not in (2, 3) or arr.shape[-1] < 2 or arr.shape[-2] < 1:
        raise PerturbationError(f"{name}: expected (leads, samples) or (records, leads, samples), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise PerturbationError(f"{name}: the signal contains NaN or Inf")
    return arr


def _fs(fs: float, name: str) -> float:
    if not (np.isfinite(fs) and fs > 0):
        raise PerturbationError(f"{name}: sampling rate must be a positive number, got {fs}")
    return float(fs)


def gaussian_noise(x: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """Add white Gaussian noise so each lead's SNR (mean-removed signal power / noise power) is `snr_db`.

    Flat leads (zero power) stay flat: there is no signal to measure an SNR against.
    """
    out = _signal(x, "gaussian_noise")
    if not np.isfinite(snr_db):
        raise PerturbationError(f"gaussian_noise: snr_db must be finite, got {snr_db}")
    rng = np.random.default_rng(seed)
    power = np.var(out, axis=-1, keepdims=True)
    noise_std = np.sqrt(power / 10.0 ** (snr_db / 10.0))
    noise = rng.standard_normal(out.shape)
    # scale the realised noise to exactly the requested power, so the SNR is what the report says
    noise /= np.maximum(noise.std(axis=-1, keepdims=True), 1e-12)
    return out + noise * noise_std


def baseline_wander(x: np.ndarray, fs: float, amplitude_mv: float = 0.5,
                    band_hz: tuple[float, float] = (0.05, 0.5), components: int = 3, seed: int = 0) -> np.ndarray:
    """Add respiration-like drift: a sum of `components` slow sinusoids in `band_hz`, peak |drift| = amplitude.

    Each record draws its frequencies and phases; each lead gets its own gain in [0.5, 1] (electrodes move
    differently, the most affected lead has gain 1) so the drift is not a common-mode offset every lead shares.
    """
    out = _signal(x, "baseline_wander")
    fs = _fs(fs, "baseline_wander")
    lo, hi = band_hz
    if not (0 < lo < hi < fs / 2):
        raise PerturbationError(f"baseline_wander: band {band_hz} Hz must satisfy 0 < low < high < fs/2 ({fs / 2:g})")
    if amplitude_mv < 0 or components < 1:
        raise PerturbationError(f"baseline_wander: amplitude {amplitude_mv} mV must be >= 0 and components >= 1")
    rng = np.random.default_rng(seed)
    t = np.arange(out.shape[-1]) / fs
    batch = out.reshape(-1, out.shape[-2], out.shape[-1])
    for rec in batch:
        freqs = rng.uniform(lo, hi, components)
        phases = rng.uniform(0, 2 * np.pi, components)
        weights = rng.uniform(0.5, 1.0, components)
        drift = (weights[:, None] * np.sin(2 * np.pi * freqs[:, None] * t + phases[:, None])).sum(axis=0)
        drift *= amplitude_mv / max(np.abs(drift).max(), 1e-12)
        gains = rng.uniform(0.5, 1.0, rec.shape[0])
        gains /= gains.max()  # the most affected lead drifts by exactly `amplitude_mv`
        rec += gains[:, None] * drift[None, :]
    return batch.reshape(out.shape)


def powerline(x: np.ndarray, fs: float, amplitude_mv: float = 0.1, mains_hz: float = 50.0, harmonics: int = 1,
              seed: int = 0) -> np.ndarray:
    """Add mains interference: a `mains_hz` sinusoid of peak `amplitude_mv` (plus weaker odd harmonics).

    Mains pick-up is mostly common-mode, so every lead of a record shares the phase; per-lead gains in
    [0.8, 1.2] model unequal electrode impedances. Harmonic k (3, 5, ...) has amplitude / k.
    """
    out = _signal(x, "powerline")
    fs = _fs(fs, "powerline")
    if not (0 < mains_hz < fs / 2):
        raise PerturbationError(f"powerline: mains frequency {mains_hz} Hz must lie in (0, fs/2 = {fs / 2:g}) Hz")
    if amplitude_mv < 0 or harmonics < 1:
        raise PerturbationError(f"powerline: amplitude {amplitude_mv} mV must be >= 0 and harmonics >= 1")
    rng = np.random.default_rng(seed)
    t = np.arange(out.shape[-1]) / fs
    batch = out.reshape(-1, out.shape[-2], out.shape[-1])
    orders = [k for k in range(1, 2 * harmonics, 2) if k * mains_hz < fs / 2]
    for rec in batch:
        phase = rng.uniform(0, 2 * np.pi)
        hum = sum(np.sin(2 * np.pi * k * mains_hz * t + k * phase) / k for k in orders)
        gains = rng.uniform(0.8, 1.2, rec.shape[0])
        rec += amplitude_mv * gains[:, None] * hum[None, :]
    return batch.reshape(out.shape)


def lead_off(x: np.ndarray, lead: int | str, leads: Sequence[str] = STANDARD_LEADS,
             level_mv: float = 0.0) -> np.ndarray:
    """Flatten one lead to a constant (an electrode off: the amplifier reads a flat line at `level_mv`)."""
    out = _signal(x, "lead_off")
    if isinstance(lead, str):
        if lead not in leads:
            raise PerturbationError(f"lead_off: lead {lead!r} not among the signal's leads {list(leads)}")
        if len(leads) != out.shape[-2]:
            raise PerturbationError(f"lead_off: {len(leads)} lead names for a signal with {out.shape[-2]} leads")
        index = list(leads).index(lead)
    else:
        index = int(lead)
        if not (0 <= index < out.shape[-2]):
            raise PerturbationError(f"lead_off: lead index {index} outside 0..{out.shape[-2] - 1}")
    out[..., index, :] = level_mv
    return out


KINDS: tuple[str, ...] = ("noise", "baseline-wander", "powerline-50", "powerline-60", "lead-off")


def perturb(x: np.ndarray, fs: float, kind: str, severity: float | str, seed: int = 0,
            leads: Sequence[str] = STANDARD_LEADS) -> np.ndarray:
    """One entry point for sweeps: `kind` from KINDS, `severity` in that kind's own unit.

    noise: SNR in dB (lower is harsher); baseline-wander and powerline-50/60: amplitude in mV;
    lead-off: the lead (name or index) that is flattened.
    """
    if kind == "noise":
        return gaussian_noise(x, float(severity), seed=seed)
    if kind == "baseline-wander":
        return baseline_wander(x, fs, amplitude_mv=float(severity), seed=seed)
    if kind in ("powerline-50", "powerline-60"):
        return powerline(x, fs, amplitude_mv=float(severity), mains_hz=float(kind.rsplit("-", 1)[1]), seed=seed)
    if kind == "lead-off":
        lead = severity if isinstance(severity, str) and not severity.lstrip("-").isdigit() else int(severity)
        return lead_off(x, lead, leads=leads)
    raise PerturbationError(f"unknown perturbation {kind!r}; choose from {list(KINDS)}")
