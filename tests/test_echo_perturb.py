"""Physics-informed perturbations (EchoJEPA robustness study): monotone in severity, identity at zero, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from jepa_edge.data.echo_perturb import (
    DEPTH_PRESETS,
    SHADOW_PRESETS,
    EchoPerturbation,
    acoustic_shadow,
    depth_attenuation,
)
from jepa_edge.data.synthetic_echo import SyntheticEchoConfig, synthesize_echo


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return synthesize_echo(0, SyntheticEchoConfig(size=64, seconds=1.0, fps_choices=(25.0,))).frames


def _change(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(float) - b.astype(float)).mean())


def test_depth_attenuation_monotone(frames: np.ndarray) -> None:
    np.testing.assert_array_equal(depth_attenuation(frames, 0.0), frames)
    rates = [0.0, *DEPTH_PRESETS.values(), 3.0]
    outs = [depth_attenuation(frames, r).astype(float) for r in rates]
    changes = [_change(o, frames) for o in outs]
    assert all(b > a for a, b in zip(changes, changes[1:], strict=False))
    for weaker, stronger in zip(outs, outs[1:], strict=False):  # pixelwise: never brighter with more severity
        assert (stronger <= weaker + 1).all()
    deep, shallow = outs[-1][:, -8:].mean() / max(frames[:, -8:].mean(), 1), outs[-1][:, 4:12].mean() / max(
        frames[:, 4:12].mean(), 1)
    assert deep < shallow  # the far field loses more than the near field
    floats = depth_attenuation(frames.astype(np.float32) / 255, 1.5)
    assert floats.dtype == np.float32 and floats.max() <= 1.0


def test_acoustic_shadow_monotone_and_static(frames: np.ndarray) -> None:
    strengths = [0.0, *(s for s, _ in SHADOW_PRESETS.values()), 1.0]
    changes = [_change(acoustic_shadow(frames, s, 0.2, centre=0.5), frames) for s in strengths]
    assert changes[0] == 0.0 and all(b > a for a, b in zip(changes, changes[1:], strict=False))
    changes_sigma = [_change(acoustic_shadow(frames, 0.6, sig, centre=0.5), frames) for sig in (0.05, 0.15, 0.3)]
    assert changes_sigma == sorted(changes_sigma)
    shadowed = acoustic_shadow(frames.astype(float), 0.8, 0.1, centre=0.3)
    ratio = shadowed / np.maximum(frames.astype(float), 1e-9)
    col = int(0.3 * (frames.shape[2] - 1))
    assert ratio[:, :, col][frames[:, :, col] > 0].max() < 0.25  # darkest at the centre, same in every frame
    rng_a, rng_b = np.random.default_rng(1), np.random.default_rng(1)
    np.testing.assert_array_equal(acoustic_shadow(frames, 0.6, rng=rng_a), acoustic_shadow(frames, 0.6, rng=rng_b))


def test_presets_and_bad_parameters(frames: np.ndarray) -> None:
    levels = [_change(EchoPerturbation("shadow", lv)(frames, np.random.default_rng(3)), frames) for lv in (1, 2, 3)]
    assert levels == sorted(levels)
    assert EchoPerturbation("depth", 3).to_dict() == {"kind": "depth", "level": 3, "rate": 2.15}
    with pytest.raises(ValueError, match="unknown perturbation"):
        EchoPerturbation("blur", 1)
    with pytest.raises(ValueError, match="level must be one of"):
        EchoPerturbation("depth", 7)
    with pytest.raises(ValueError, match="rate must be >= 0"):
        depth_attenuation(frames, -1)
    with pytest.raises(ValueError, match="strength must be in"):
        acoustic_shadow(frames, 1.5)
    with pytest.raises(ValueError, match=r"expected frames \(T, H, W\)"):
        depth_attenuation(frames[0, 0], 1.0)
