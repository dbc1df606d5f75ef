"""Batching, decision smoothing and signal-quality limits of a stream (C: jefw_config.h holds the same defaults)."""

from __future__ import annotations

from dataclasses import dataclass, field

from jepa_edge.config import ConfigError


@dataclass(frozen=True)
class QualityConfig:
    """Per-window signal-quality limits. Flagged windows are reported and not classified.

    `noise_hf_mv` was set on MIT-BIH: clean records give a high-frequency noise level <= 0.021 mV per 10 s
    window; 0.1 mV of added white noise gives ~0.065 mV. The artefact score (wander, bursts, lost periodicity)
    was fitted on real artefact: the `~` annotations of MIT-BIH DS1 records (benchmarks/quality_tune.py).
    """

    flat_ptp_mv: float = 0.01  # a lead varying less than this over `flat_s` is off / flat
    flat_s: float = 1.0
    saturation_mv: float | None = None  # |x| >= this counts as saturated when the source gives no ADC rails
    saturation_max_fraction: float = 0.01  # more saturated samples than this fraction flags the window
    noise_hf_mv: float = 0.04  # RMS of the raw signal's second difference / sqrt(6): white-noise sigma in mV
    noise_band_std_mv: float = 3.0  # band-passed standard deviation above this: motion artefact
    # artefact score of a lead: artefact_weights . (log(hf_mv + LOG_EPS), log(band_std_mv + LOG_EPS),
    # log(lf_ratio + LOG_EPS), log(ptp_ratio + LOG_EPS), periodicity); above artefact_max the lead is noisy.
    # Fitted on MIT-BIH DS1 against the `~` annotations (benchmarks/quality_tune.py; results in the README).
    artefact_weights: tuple[float, float, float, float, float] = (2.0124, -0.2005, 1.408, 2.1638, -5.0267)
    artefact_max: float = -9.3
    segment_s: float = 1.0  # segment of the peak-to-peak ratio (largest / median segment peak-to-peak)
    periodicity_fs: float = 125.0  # the band-passed signal is decimated to about this rate for the autocorrelation
    period_min_s: float = 0.3  # lags searched for the heart period (200 .. 30 bpm)
    period_max_s: float = 2.0
    gap_tolerance_samples: float = 1.0  # timestamp jitter tolerated before a gap is declared
    max_gap_s: float = 3600.0  # a longer gap is refused (restart the stream instead)


@dataclass(frozen=True)
class StreamConfig:
    """Batching, decision smoothing and quality limits for a stream."""

    max_batch: int = 32  # windows per engine call (a fast replay completes many per chunk)
    hysteresis: float = 0.05  # a decision switches on above threshold+h and off below threshold-h ...
    on_windows: int = 2  # ... after this many consecutive classified windows agree
    off_windows: int = 2
    quality: QualityConfig = field(default_factory=QualityConfig)

    def __post_init__(self) -> None:
        if len(self.quality.artefact_weights) != 5:
            raise ConfigError(f"artefact_weights needs 5 weights, got {len(self.quality.artefact_weights)}")
        if self.max_batch < 1 or self.on_windows < 1 or self.off_windows < 1:
            raise ConfigError("max_batch, on_windows and off_windows must be >= 1")
        if not 0 <= self.hysteresis < 0.5:
            raise ConfigError(f"hysteresis {self.hysteresis} must be in [0, 0.5)")

