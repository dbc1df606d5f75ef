"""A labelled synthetic 12-lead set for machines without real data, written in PTB-XL layout.

neurokit2's multi-lead ECGSYN simulator (McSharry et al.) draws sinus rhythm at slow, normal and fast rates
(45-120 bpm); the three classes differ in beat morphology, as PTB-XL's superclasses do: normal beats (NORM),
a widened QRS (WIDE_QRS, a conduction-delay caricature) and inverted T waves (T_INV, an ST/T-change
caricature). The names are deliberately not PTB-XL's: nothing here may pass for a diagnosis. Rate,
amplitude, baseline wander and noise are nuisances shared by every class. (Classes by rate band were tried
first: NORM then sits between BRADY and TACHY on one axis, which a linear probe on mean-pooled tokens cannot
cut one-vs-rest, and the demo's INT8 parity hinged on scores a rounding step apart.) Records are crops of
a few simulated subjects per class, shared across folds: the set checks the pipeline, not generalisation.
NOT clinical data: every place that uses it says so loudly.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import wfdb

from ..io import atomic_dir
from .preprocess import STANDARD_LEADS

# scp code (= its diagnostic class) -> (description, ECGSYN overrides of the P Q R S T extrema). ECGSYN's
# defaults are ti=(-70, -15, 0, 15, 100) degrees, ai=(1.2, -5, 30, -7.5, 0.75), bi=(0.25, 0.1, 0.1, 0.1, 0.4).
SYNTHETIC_CLASSES: dict[str, tuple[str, dict[str, tuple[float, ...]]]] = {
    "NORM": ("synthetic normal sinus beats", {}),
    "WIDE_QRS": ("synthetic widened QRS (conduction-delay caricature)",
                 {"ti": (-70, -25, 0, 25, 100), "bi": (0.25, 0.22, 0.22, 0.22, 0.4)}),
    "T_INV": ("synthetic inverted T waves (ST/T-change caricature)", {"ai": (1.2, -5, 30, -7.5, -0.75)}),
}
RATE_BPM = (45.0, 120.0)  # sinus brady- to tachycardia, the same band for every class
BASES_PER_CLASS = 4
FS, SECONDS = 500, 10
MARKER = "synthetic.json"


def is_synthetic(folder: str | Path) -> bool:
    return (Path(folder) / MARKER).is_file()


def _base_beats(code: str, seeds: int, rng: np.random.Generator) -> list[tuple[float, np.ndarray]]:
    """`seeds` simulated subjects of one class, their rates spread over RATE_BPM (one per stratum, jittered
    inside its middle half), so every class spans slow to fast rhythm and rate carries no label information."""
    import neurokit2 as nk

    lo, hi = RATE_BPM
    morphology = SYNTHETIC_CLASSES[code][1]
    out = []
    for k in range(seeds):
        rate = float(lo + (k + rng.uniform(0.25, 0.75)) * (hi - lo) / seeds)
        df = nk.ecg_simulate(duration=SECONDS * 2, sampling_rate=FS, heart_rate=rate, noise=0.0,
                             method="multileads", random_state=int(rng.integers(1 << 31)), **morphology)
        out.append((rate, df[list(STANDARD_LEADS)].to_numpy().T))  # (12, 2*window), mV
    return out


def _augment(base: np.ndarray, noisy: bool, rng: np.random.Generator) -> np.ndarray:
    start = int(rng.integers(0, base.shape[1] - FS * SECONDS))
    x = base[:, start : start + FS * SECONDS] * rng.uniform(0.8, 1.2, size=(base.shape[0], 1))
    t = np.arange(x.shape[1]) / FS
    x = x + 0.1 * np.sin(2 * np.pi * rng.uniform(0.1, 0.4) * t + rng.uniform(0, 2 * np.pi))  # baseline wander
    if noisy:
        x = x + rng.normal(0, 0.05, size=x.shape)
    return x + rng.normal(0, 0.005, size=x.shape)


def make_synthetic_ptbxl(
    out: str | Path, records: int = 240, seed: int = 0, progress: Callable[[int, int], None] | None = None
) -> Path:
    """Write (or reuse) a synthetic PTB-XL-layout folder of `records` 10 s 12-lead records at 500 Hz."""
    out = Path(out)
    params = {"records": records, "seed": seed, "fs": FS, "classes": sorted(SYNTHETIC_CLASSES),
              "rate_bpm": list(RATE_BPM), "bases_per_class": BASES_PER_CLASS}
    if is_synthetic(out) and json.loads((out / MARKER).read_text()).get("params") == params:
        return out
    rng = np.random.default_rng(seed)
    codes = list(SYNTHETIC_CLASSES)
    bases = {c: _base_beats(c, BASES_PER_CLASS, rng) for c in codes}
    rows = []
    with atomic_dir(out) as tmp:
        folder = tmp / "records500" / "00000"
        folder.mkdir(parents=True)
        for i in range(records):
            code = codes[i % len(codes)]
            noisy = bool(rng.random() < 0.3)
            rate, base = bases[code][(i // len(codes)) % BASES_PER_CLASS]  # every subject of a class in turn
            x = _augment(base, noisy, rng)
            name = f"{i + 1:05d}_hr"
            wfdb.wrsamp(name, fs=FS, units=["mV"] * 12, sig_name=list(STANDARD_LEADS), p_signal=x.T,
                        fmt=["16"] * 12, adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(folder))
            rows.append({"ecg_id": i + 1, "scp_codes": str({code: 100.0}), "strat_fold": i % 10 + 1,
                         "static_noise": "noisy" if noisy else "", "heart_rate_bpm": round(rate, 1),
                         "filename_lr": f"records500/00000/{name}", "filename_hr": f"records500/00000/{name}"})
            if progress:
                progress(i + 1, records)
        pd.DataFrame(rows).to_csv(tmp / "ptbxl_database.csv", index=False)
        pd.DataFrame(
            [{"code": c, "description": v[0], "diagnostic": 1.0, "diagnostic_class": c}
             for c, v in SYNTHETIC_CLASSES.items()]
        ).to_csv(tmp / "scp_statements.csv", index=False)
        (tmp / MARKER).write_text(json.dumps({
            "warning": "SYNTHETIC ECGs from neurokit2's simulator, not clinical data",
            "params": params}, indent=2))
    return out
