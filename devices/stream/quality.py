"""Signal quality of one window: NaN, gaps, ADC saturation, flat line (lead off), noise (C: quality() in
jefw_stream.c). Flagged windows are reported and not classified."""

from __future__ import annotations

from typing import Any

import numpy as np

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
    # flat runs: peak-to-peak over blocks of flat_s/4, combined over 4 consecutive blocks (= flat_s);
    # every flat run of >= 1.25 * flat_s is caught, none shorter than flat_s is
    block = max(1, int(round(q.flat_s * pre.fs / 4)))
    blocks = n // block
    if blocks >= 4:
        b = raw[:, : blocks * block].reshape(raw.shape[0], blocks, block)
        bmax, bmin = b.max(axis=-1), b.min(axis=-1)
        run_max = np.maximum.reduce([bmax[:, k : blocks - 3 + k] for k in range(4)])
        run_min = np.minimum.reduce([bmin[:, k : blocks - 3 + k] for k in range(4)])
        flat = [pre.leads[i] for i in np.flatnonzero(((run_max - run_min) < q.flat_ptp_mv).any(axis=1))]
        if flat:
            out["flatline"] = {"leads": flat}
    hf = np.sqrt(np.mean(np.diff(raw, n=2, axis=-1) ** 2, axis=-1) / 6.0)
    std = band.std(axis=-1)
    noisy = [pre.leads[i] for i in np.flatnonzero((hf > q.noise_hf_mv) | (std > q.noise_band_std_mv))]
    if noisy:
        out["noise"] = {"leads": noisy, "hf_mv": [round(float(v), 4) for v in hf],
                        "band_std_mv": [round(float(v), 4) for v in std]}
    return out
