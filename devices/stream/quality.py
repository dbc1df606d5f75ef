"""Signal quality of one window: NaN, gaps, ADC saturation, flat line (lead off), noise (C: jefw_quality.c).
Flagged windows are reported and not classified.

Noise is judged per lead from five measures, each simple enough to compute identically in the C runner:
`hf` (white / EMG noise), `band_std` (gross motion), `lf_ratio` (baseline wander and motion: what the band-pass
removed, relative to what it kept), `ptp_ratio` (bursts: the largest 1 s peak-to-peak of the band-passed signal
over the median one) and `periodicity` (beats repeat: the best normalised autocorrelation of the band-passed
signal at a heart-period lag). hf and band std keep their own limits; all five enter a linear artefact score
(weights on the logarithms, a limit) fitted on real MIT-BIH `~` annotations (benchmarks/quality_tune.py), not on
the simulator.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.ndimage import maximum_filter1d, minimum_filter1d

from jepa_edge.data.preprocess import EcgPreprocessing

from .base import FLAG_GAP, FLAG_NAN, FLAG_SATURATED
from .config import QualityConfig

MEASURES = ("hf_mv", "band_std_mv", "lf_ratio", "ptp_ratio", "periodicity")
LOG_EPS = 1e-4  # added before the logarithms of the artefact score (C: JEFW_QUALITY_LOG_EPS)


def _periodicity(band: np.ndarray, fs: float, q: QualityConfig) -> np.ndarray:
    """Max over lags in [period_min_s, period_max_s] of the normalised autocorrelation of the mean-removed,
    decimated band-passed signal: sum a*b / sqrt(sum a^2 * sum b^2) over the overlap. 1.0 when not judged."""
    step = max(1, int(round(fs / q.periodicity_fs)))
    d = band[..., ::step]
    d = d - d.mean(axis=-1, keepdims=True)
    m = d.shape[-1]
    fsd = fs / step
    lo, hi = max(1, int(q.period_min_s * fsd)), min(int(q.period_max_s * fsd), m - 2)
    if lo > hi:
        return np.ones(d.shape[:-1])
    nfft = 1 << int(np.ceil(np.log2(2 * m)))
    spec = np.fft.rfft(d, nfft, axis=-1)
    lags = np.arange(lo, hi + 1)
    num = np.fft.irfft(spec * np.conj(spec), nfft, axis=-1)[..., lags]  # sum_i d[i] d[i + lag]
    energy = np.concatenate([np.zeros((*d.shape[:-1], 1)), np.cumsum(d * d, axis=-1)], axis=-1)
    den = energy[..., m - lags] * (energy[..., m : m + 1] - energy[..., lags])
    r = np.divide(num, np.sqrt(np.maximum(den, 0.0)), out=np.zeros_like(num), where=den > 0)
    return np.where(energy[..., m] > 0, r.max(axis=-1), 1.0)


def lead_measures(raw: np.ndarray, band: np.ndarray, fs: float, q: QualityConfig) -> dict[str, np.ndarray]:
    """The noise measures of each lead of windows (..., samples): resampled mV `raw`, band-passed mV `band`.
    Works on any leading shape, so the tuning replay and the stream share this one definition."""
    raw = np.asarray(raw, dtype=np.float64)
    band = np.asarray(band, dtype=np.float64)
    n = raw.shape[-1]
    hf = np.sqrt(np.mean(np.diff(raw, n=2, axis=-1) ** 2, axis=-1) / 6.0)
    std = band.std(axis=-1)
    lf = (raw - band).std(axis=-1)
    lf_ratio = np.divide(lf, std, out=np.zeros_like(lf), where=std > 0)
    seg = max(1, int(round(q.segment_s * fs)))
    k = n // seg
    if k >= 2:
        parts = band[..., : k * seg].reshape(*band.shape[:-1], k, seg)
        ptp = parts.max(axis=-1) - parts.min(axis=-1)
        med = np.median(ptp, axis=-1)
        ptp_ratio = np.divide(ptp.max(axis=-1), med, out=np.zeros_like(med), where=med > 0)
    else:
        ptp_ratio = np.zeros(band.shape[:-1])
    return {"hf_mv": hf, "band_std_mv": std, "lf_ratio": lf_ratio, "ptp_ratio": ptp_ratio,
            "periodicity": _periodicity(band, fs, q)}


def score_inputs(measures: dict[str, np.ndarray]) -> np.ndarray:
    """(..., 5): the log measures and the periodicity the artefact score weighs (MEASURES order)."""
    return np.stack([*(np.log(measures[k] + LOG_EPS) for k in MEASURES[:4]), measures["periodicity"]], axis=-1)


def artefact_score(measures: dict[str, np.ndarray], q: QualityConfig) -> np.ndarray:
    """A lead's artefact score: the weighted sum of its score inputs, summed left to right as in C."""
    x = score_inputs(measures)
    total = np.zeros(x.shape[:-1])
    for i, w in enumerate(q.artefact_weights):
        total = total + w * x[..., i]
    return total


def noisy_leads(measures: dict[str, np.ndarray], q: QualityConfig) -> np.ndarray:
    """True where a lead is noisy: white noise (hf), gross motion (band std) or artefact score above its limit."""
    m = measures
    return ((m["hf_mv"] > q.noise_hf_mv) | (m["band_std_mv"] > q.noise_band_std_mv)
            | (artefact_score(m, q) > q.artefact_max))


def window_quality(raw: np.ndarray, band: np.ndarray, flags: np.ndarray, pre: EcgPreprocessing,
                   q: QualityConfig) -> dict[str, Any]:
    """Flags for one window of (leads, samples) resampled mV (`raw`), band-passed mV (`band`) and per-sample
    `flags`: nan, gap, saturation, flatline (lead-off), noise (with the noisy leads and every lead's measures).
    Empty dict = good."""
    out: dict[str, Any] = {}
    n = flags.shape[0]
    for bit, name in ((FLAG_NAN, "nan"), (FLAG_GAP, "gap")):
        count = int(np.count_nonzero(flags & bit))
        if count:
            out[name] = {"samples": count}
    sat = int(np.count_nonzero(flags & FLAG_SATURATED))
    if sat > q.saturation_max_fraction * n:
        out["saturation"] = {"samples": sat}
    # flat runs, exactly: some `flat_s` of consecutive samples whose peak-to-peak is below flat_ptp_mv (sliding
    # max/min, O(n)); every flat run of >= flat_s is caught and none shorter is
    w = max(1, int(round(q.flat_s * pre.fs)))
    if n >= w:
        lo, hi = w // 2, n - (w - 1 - w // 2)  # positions whose centred window lies inside the window
        run_ptp = (maximum_filter1d(raw, w, axis=-1)[:, lo:hi] - minimum_filter1d(raw, w, axis=-1)[:, lo:hi])
        flat = [pre.leads[i] for i in np.flatnonzero((run_ptp < q.flat_ptp_mv).any(axis=1))]
        if flat:
            out["flatline"] = {"leads": flat}
    measures = lead_measures(raw, band, pre.fs, q)
    noisy = [pre.leads[i] for i in np.flatnonzero(noisy_leads(measures, q))]
    if noisy:
        detail = {**measures, "artefact": artefact_score(measures, q)}
        out["noise"] = {"leads": noisy, **{k: [round(float(v), 4) for v in vals] for k, vals in detail.items()}}
    return out
