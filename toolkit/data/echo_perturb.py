"""Physics-informed echo perturbations (EchoJEPA's robustness study), for augmentation and parity checks.

- Depth attenuation: ultrasound loses a roughly constant number of dB per cm, so the gain is a linear
  ramp in dB along the distance from the probe (apex at the top centre): gain = 10^(-rate * 10 * d / 20),
  d = distance / image height. Presets follow EchoJEPA's rates 0.75, 1.5, 2.15 (-7.5 .. -21.5 dB at depth 1).
- Acoustic shadow: a static multiplier 1 - s * exp(-(x - c)^2 / (2 sigma^2)) across the lateral position
  x in [0, 1], centre c drawn once per video in [0.2, 0.8]; presets (s, sigma) 0.4/0.15, 0.6/0.20, 0.8/0.25.

Both work on uint8 or float frames (T, H, W) or (T, H, W, C) before normalisation and return the same dtype.
Severity is continuous; for a fixed shadow centre every pixel's multiplier falls monotonically with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.errors import DataError

DEPTH_PRESETS = {1: 0.75, 2: 1.5, 3: 2.15}
SHADOW_PRESETS = {1: (0.4, 0.15), 2: (0.6, 0.20), 3: (0.8, 0.25)}


def _as_float(frames: np.ndarray) -> tuple[np.ndarray, np.dtype]:
    arr = np.asarray(frames)
    if arr.ndim not in (3, 4) or arr.size == 0:
        raise DataError(f"expected frames (T, H, W) or (T, H, W, C), got shape {arr.shape}")
    return arr.astype(np.float64), arr.dtype


def _back(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype == np.uint8:
        return np.clip(np.round(x), 0, 255).astype(np.uint8)
    return x.astype(dtype)


def _expand(multiplier: np.ndarray, ndim: int) -> np.ndarray:
    """(H, W) multiplier broadcast over (T, H, W[, C])."""
    return multiplier[None, :, :, None] if ndim == 4 else multiplier[None]


def depth_gain(height: int, width: int, rate: float) -> np.ndarray:
    """(H, W) gain of a linear-in-dB attenuation ramp with distance from the probe apex."""
    if rate < 0:
        raise DataError(f"attenuation rate must be >= 0, got {rate}")
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    depth = np.hypot(yy, xx - (width - 1) / 2) / height
    return 10.0 ** (-rate * 10.0 * depth / 20.0)


def depth_attenuation(frames: np.ndarray, rate: float) -> np.ndarray:
    """Attenuate deeper tissue; `rate` 0 leaves the clip unchanged, 2.15 is EchoJEPA's strongest."""
    x, dtype = _as_float(frames)
    return _back(x * _expand(depth_gain(x.shape[1], x.shape[2], rate), x.ndim), dtype)


def shadow_multiplier(width: int, height: int, strength: float, sigma: float, centre: float) -> np.ndarray:
    """(H, W) static shadow: 1 - strength * Gaussian over the lateral position."""
    if not (0.0 <= strength <= 1.0):
        raise DataError(f"shadow strength must be in [0, 1], got {strength}")
    if sigma <= 0:
        raise DataError(f"shadow width sigma must be > 0, got {sigma}")
    x = np.linspace(0.0, 1.0, width)
    row = 1.0 - strength * np.exp(-((x - centre) ** 2) / (2 * sigma**2))
    return np.broadcast_to(row, (height, width)).copy()


def acoustic_shadow(frames: np.ndarray, strength: float, sigma: float = 0.2, centre: float | None = None,
                    rng: np.random.Generator | None = None) -> np.ndarray:
    """Darken a vertical band (behind a rib or calcification); centre in [0.2, 0.8] drawn once unless given."""
    x, dtype = _as_float(frames)
    if centre is None:
        centre = float((rng or np.random.default_rng()).uniform(0.2, 0.8))
    return _back(x * _expand(shadow_multiplier(x.shape[2], x.shape[1], strength, sigma, centre), x.ndim), dtype)


@dataclass(frozen=True)
class EchoPerturbation:
    """One named perturbation at a preset level (1-3) or a continuous severity, usable as an augmentation."""

    kind: str = "depth"  # "depth" or "shadow"
    level: int = 2

    def __post_init__(self) -> None:
        if self.kind not in ("depth", "shadow"):
            raise DataError(f"unknown perturbation {self.kind!r}; choose 'depth' or 'shadow'")
        if self.level not in DEPTH_PRESETS:
            raise DataError(f"perturbation level must be one of {sorted(DEPTH_PRESETS)}, got {self.level}")

    def __call__(self, frames: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        if self.kind == "depth":
            return depth_attenuation(frames, DEPTH_PRESETS[self.level])
        strength, sigma = SHADOW_PRESETS[self.level]
        return acoustic_shadow(frames, strength, sigma, rng=rng)

    def to_dict(self) -> dict:
        params = ({"rate": DEPTH_PRESETS[self.level]} if self.kind == "depth"
                  else dict(zip(("strength", "sigma"), SHADOW_PRESETS[self.level], strict=True)))
        return {"kind": self.kind, "level": self.level, **params}
