"""Signal quality of one window: NaN, gaps, ADC saturation, flat line (lead off), noise (C: quality() in
jefw_stream.c). Flagged windows are reported and not classified."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.ndimage import maximum_filter1d, minimum_filter1d

from jepa_edge.data.preprocess import EcgPreprocessing

from .base import FLAG_GAP, FLAG_NAN, FLAG_SATURATED
from .config import QualityConfig


def window_quality(raw: np.ndarray, band: np.ndarray, flags: np.ndarray, pre: EcgPreprocessing,
                   q: QualityConfig) -> dict[str, Any]:
    """Flags for one window of (leads, samples) resampled mV (`raw`), band-passed mV (`band`) and per-sample
    `flags`: nan, gap, saturation, flatline (lead-off), noise. Empty dict = good."""
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
    hf = np.sqrt(np.mean(np.diff(raw, n=2, axis=-1) ** 2, axis=-1) / 6.0)
    std = band.std(axis=-1)
    noisy = [pre.leads[i] for i in np.flatnonzero((hf > q.noise_hf_mv) | (std > q.noise_band_std_mv))]
    if noisy:
        out["noise"] = {"leads": noisy, "hf_mv": [round(float(v), 4) for v in hf],
                        "band_std_mv": [round(float(v), 4) for v in std]}
    return out
