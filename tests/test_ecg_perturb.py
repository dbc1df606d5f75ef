"""ECG perturbations on real PTB-XL records: each one does what its name and unit say, seeded, input untouched."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from jepa_edge.data.ecg_perturb import (
    KINDS,
    PerturbationError,
    baseline_wander,
    gaussian_noise,
    lead_off,
    perturb,
    powerline,
)


@pytest.fixture(scope="module")
def records(ptbxl_dir):
    """Three real 12-lead records, raw mV at 500 Hz."""
    from jepa_edge.data.ptbxl import PtbXl

    ecg = PtbXl(ptbxl_dir).load("superdiagnostic", split="test", limit=3)
    return ecg.signals.astype(np.float64), ecg.fs


def _band_power(x: np.ndarray, fs: float, lo: float, hi: float) -> float:
    f, p = signal.welch(x, fs=fs, nperseg=min(x.shape[-1], 4096), axis=-1)
    return float(p[..., (f >= lo) & (f <= hi)].sum())


@pytest.mark.parametrize("snr_db", [20.0, 6.0, 0.0])
def test_noise_reaches_requested_snr_on_every_lead(records, snr_db):
    x, _ = records
    y = gaussian_noise(x, snr_db, seed=1)
    noise = y - x
    measured = 10 * np.log10(np.var(x, axis=-1) / np.var(noise, axis=-1))
    np.testing.assert_allclose(measured, snr_db, atol=0.05)
    assert abs(float(noise.mean())) < 0.05 * float(noise.std())


def test_same_seed_same_output_other_seed_differs_and_input_untouched(records):
    x, fs = records
    before = x.copy()
    for kind, sev in [("noise", 10.0), ("baseline-wander", 0.5), ("powerline-50", 0.2)]:
        a = perturb(x, fs, kind, sev, seed=3)
        b = perturb(x, fs, kind, sev, seed=3)
        c = perturb(x, fs, kind, sev, seed=4)
        np.testing.assert_array_equal(a, b)
        assert not np.allclose(a, c)
    np.testing.assert_array_equal(x, before)


def test_baseline_wander_is_slow_and_of_set_amplitude(records):
    x, fs = records
    y = baseline_wander(x, fs, amplitude_mv=0.8, seed=0)
    drift = y - x
    assert np.abs(drift).max() == pytest.approx(0.8, rel=1e-6)
    # all its energy below 1 Hz, none in the QRS band
    assert _band_power(drift, fs, 0.0, 1.0) > 0.99 * _band_power(drift, fs, 0.0, fs / 2)


@pytest.mark.parametrize("mains", [50.0, 60.0])
def test_powerline_puts_a_line_at_mains_frequency(records, mains):
    x, fs = records
    hum = powerline(x, fs, amplitude_mv=0.3, mains_hz=mains, seed=0) - x
    f, p = signal.welch(hum[0, 1], fs=fs, nperseg=2000)
    assert f[np.argmax(p)] == pytest.approx(mains, abs=0.5)
    assert 0.3 * 0.8 - 1e-9 <= np.abs(hum[0, 1]).max() <= 0.3 * 1.2 + 1e-9
    # every lead of one record shares the phase (common-mode pick-up)
    corr = np.corrcoef(hum[0])
    assert corr.min() > 0.999


def test_lead_off_flattens_exactly_one_lead(records):
    x, fs = records
    y = lead_off(x, "V2")
    v2 = 7
    assert np.all(y[:, v2] == 0.0)
    np.testing.assert_array_equal(np.delete(y, v2, axis=1), np.delete(x, v2, axis=1))
    np.testing.assert_array_equal(perturb(x, fs, "lead-off", 7), y)
    np.testing.assert_array_equal(perturb(x, fs, "lead-off", "V2"), y)


def test_single_record_shape_is_accepted(records):
    x, fs = records
    for kind in KINDS:
        sev = "II" if kind == "lead-off" else 0.2 if kind != "noise" else 10.0
        assert perturb(x[0], fs, kind, sev).shape == x[0].shape


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda x, fs: gaussian_noise(x[0, 0], 10.0), "expected (leads, samples)"),
        (lambda x, fs: gaussian_noise(np.where(x > 1e9, 0, np.nan), 10.0), "NaN or Inf"),
        (lambda x, fs: powerline(x, fs, mains_hz=300.0), "mains frequency 300.0 Hz"),
        (lambda x, fs: powerline(x, -1.0), "sampling rate"),
        (lambda x, fs: baseline_wander(x, fs, band_hz=(0.5, 0.1)), "band (0.5, 0.1)"),
        (lambda x, fs: lead_off(x, "V7"), "lead 'V7' not among"),
        (lambda x, fs: lead_off(x, 12), "lead index 12 outside"),
        (lambda x, fs: perturb(x, fs, "muscle", 1.0), "unknown perturbation 'muscle'"),
    ],
)
def test_bad_requests_name_the_problem(records, call, message):
    x, fs = records
    with pytest.raises(PerturbationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(x, fs)
