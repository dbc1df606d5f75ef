"""Streaming R-peak detection (`StreamingQrs`) on real MIT-BIH MLII: Se / +P per record and CPU real-time factor.

Each record (30 min at 360 Hz) is pushed in 1 s chunks on one thread; peaks are matched to the reference AAMI
beats within 150 ms (`ec57.match_beats`). Se and +P get Wilson 95% intervals over beats (beats within a record are
not independent, so read them as a lower bound on the uncertainty). Real-time factor = seconds of ECG / CPU
seconds of the detector (process time, OMP_NUM_THREADS=1).

    OMP_NUM_THREADS=1 JEPA_EDGE_DATA=../shared/data .venv/bin/python benchmarks/qrs.py 100 103 113 117 123 105 106
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from jepa_edge.data.mitdb import read_mitdb
from jepa_edge.devices.stream.beats import QrsConfig, StreamingQrs
from jepa_edge.tasks.ec57 import aami_class, match_beats
from jepa_edge.tasks.metrics import wilson_interval


def run(record: Path, chunk_s: float, config: QrsConfig) -> dict[str, object]:
    rec, ann = read_mitdb(record, leads=("II",))
    x, fs = rec.signal[0], rec.fs
    ref = np.array([s for s, sym in zip(ann.samples, ann.symbols, strict=True) if aami_class(sym) is not None])
    chunk = max(1, round(chunk_s * fs))
    t0 = time.process_time()
    qrs = StreamingQrs(fs, config)
    peaks = np.concatenate([*(qrs.push(x[i:i + chunk]) for i in range(0, x.shape[0], chunk)), qrs.finish()])
    cpu = time.process_time() - t0
    match = match_beats(ref, peaks, fs)
    tp = int((match >= 0).sum())
    lag_ms = (peaks[match[match >= 0]] - ref[match >= 0]) / fs * 1000
    return {"record": record.name, "ref_beats": int(ref.shape[0]), "peaks": int(peaks.shape[0]),
            "se": tp / ref.shape[0], "se_ci": wilson_interval(tp, ref.shape[0]), "ppv": tp / max(peaks.shape[0], 1),
            "ppv_ci": wilson_interval(tp, peaks.shape[0]), "median_lag_ms": float(np.median(lag_ms)),
            "ecg_s": x.shape[0] / fs, "cpu_s": cpu, "rtf": x.shape[0] / fs / cpu}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("records", nargs="+", help="MIT-BIH record names, e.g. 100 105")
    ap.add_argument("--chunk-s", type=float, default=1.0)
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    args = ap.parse_args()
    root = Path(os.environ.get("JEPA_EDGE_DATA", "../shared/data")) / "mitdb"
    rows = [run(root / r, args.chunk_s, QrsConfig()) for r in args.records]
    for r in rows:
        print(f"{r['record']}: Se {r['se']:.4f} [{r['se_ci'][0]:.4f}, {r['se_ci'][1]:.4f}]  "
              f"+P {r['ppv']:.4f} [{r['ppv_ci'][0]:.4f}, {r['ppv_ci'][1]:.4f}]  beats {r['ref_beats']}  "
              f"peaks {r['peaks']}  lag {r['median_lag_ms']:+.1f} ms  CPU {r['cpu_s']:.2f} s for "
              f"{r['ecg_s']:.0f} s  RTF {r['rtf']:.0f}")
    cpu = sum(r["cpu_s"] for r in rows)
    ecg = sum(r["ecg_s"] for r in rows)
    print(f"all: CPU {cpu:.2f} s for {ecg:.0f} s of ECG, RTF {ecg / cpu:.0f} (one thread)")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
