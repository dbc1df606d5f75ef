"""A labelled synthetic 12-lead set for machines without real data, written in PTB-XL layout.

neurokit2's multi-lead simulator gives sinus rhythm at a chosen rate; classes are the rate band
(normal, brady, tachy), with noise and baseline wander as nuisances, so the whole pipeline (pretrain,
probe, distill, quantize, parity) runs unchanged on it. It is NOT clinical data: every place that uses
it says so loudly.
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

SYNTHETIC_CLASSES = {"NORM": ("NORM", (60, 95)), "SBRAD": ("BRADY", (40, 55)), "STACH": ("TACHY", (105, 150))}
FS, SECONDS = 500, 10
MARKER = "synthetic.json"


def is_synthetic(folder: str | Path) -> bool:
    return (Path(folder) / MARKER).is_file()


def _base_beats(code: str, seeds: int, rng: np.random.Generator) -> list[np.ndarray]:
    import neurokit2 as nk

    lo, hi = SYNTHETIC_CLASSES[code][1]
    out = []
    for _ in range(seeds):
        rate = float(rng.uniform(lo, hi))
        df = nk.ecg_simulate(duration=SECONDS * 2, sampling_rate=FS, heart_rate=rate, noise=0.0,
                             method="multileads", random_state=int(rng.integers(1 << 31)))
        out.append(df[list(STANDARD_LEADS)].to_numpy().T)  # (12, 2*window), mV
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
    params = {"records": records, "seed": seed, "fs": FS, "classes": sorted(SYNTHETIC_CLASSES)}
    if is_synthetic(out) and json.loads((out / MARKER).read_text()).get("params") == params:
        return out
    rng = np.random.default_rng(seed)
    codes = list(SYNTHETIC_CLASSES)
    bases = {c: _base_beats(c, 3, rng) for c in codes}
    rows = []
    with atomic_dir(out) as tmp:
        folder = tmp / "records500" / "00000"
        folder.mkdir(parents=True)
        for i in range(records):
            code = codes[i % len(codes)]
            noisy = bool(rng.random() < 0.3)
            x = _augment(bases[code][int(rng.integers(len(bases[code])))], noisy, rng)
            name = f"{i + 1:05d}_hr"
            wfdb.wrsamp(name, fs=FS, units=["mV"] * 12, sig_name=list(STANDARD_LEADS), p_signal=x.T,
                        fmt=["16"] * 12, adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(folder))
            rows.append({"ecg_id": i + 1, "scp_codes": str({code: 100.0}), "strat_fold": i % 10 + 1,
                         "static_noise": "noisy" if noisy else "", "filename_lr": f"records500/00000/{name}",
                         "filename_hr": f"records500/00000/{name}"})
            if progress:
                progress(i + 1, records)
        pd.DataFrame(rows).to_csv(tmp / "ptbxl_database.csv", index=False)
        pd.DataFrame(
            [{"code": c, "description": f"synthetic {v[0].lower()} sinus rhythm", "diagnostic": 1.0,
              "diagnostic_class": v[0]} for c, v in SYNTHETIC_CLASSES.items()]
        ).to_csv(tmp / "scp_statements.csv", index=False)
        (tmp / MARKER).write_text(json.dumps({
            "warning": "SYNTHETIC ECGs from neurokit2's simulator, not clinical data",
            "params": params}, indent=2))
    return out
