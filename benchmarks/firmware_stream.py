"""The C firmware runner's streaming loop against the Python streamer: real-time factor on the same bundle and record.

One cart-cpu bundle (a seeded 2-lead II/V1 vit-tiny classifier, NNCF INT8 IR calibrated on real PTB-XL records by
`build_bundle`), one MIT-BIH record replayed as the int16 frames an ADC gives (MLII, V1 at 360 Hz). Both sides get
the same bytes, the same IR on OpenVINO with the same thread count, one window per engine call:
  - c:      `jepa_edge_runner stream BUNDLE --fs 360 --leads MLII,V1 ... < frames` (devices/firmware),
  - python: `StreamClassifier.from_bundle(BUNDLE).run(int16_source(frames))` (devices/stream).
Real-time factor = seconds of ECG / seconds of processing (stdin reads and model compilation excluded on both
sides). The windows are also compared (count, flags, decisions, largest score difference), so the speed is that of
streams that agree.

    JEPA_EDGE_DATA=../shared/data .venv/bin/python benchmarks/firmware_stream.py
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _student(out: Path) -> Path:
    import torch

    from jepa_edge.data.preprocess import EcgPreprocessing
    from jepa_edge.models.checkpoint import save_model
    from jepa_edge.models.ecg import EcgEncoder, EcgEncoderSpec
    from jepa_edge.models.heads import Classifier, LinearHead

    torch.manual_seed(0)
    enc = EcgEncoder(EcgEncoderSpec("vit-tiny", leads=2))
    model = Classifier(enc, LinearHead(enc.dim, 5)).eval()
    meta = {"kind": "classifier", "encoder": enc.spec.to_dict(),
            "head": {"kind": "linear", "dim": enc.dim, "num_outputs": 5},
            "labels": ["NORM", "MI", "STTC", "CD", "HYP"], "thresholds": [0.5] * 5, "task": "multilabel",
            "preprocessing": EcgPreprocessing(leads=("II", "V1")).to_dict()}
    return save_model(out, model, meta)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, help="an existing 2-lead (II, V1) cart-cpu bundle (default: build one)")
    ap.add_argument("--record", default="101", help="MIT-BIH record (needs MLII and V1)")
    ap.add_argument("--seconds", type=float, default=600.0, help="seconds replayed (0 = the whole record)")
    ap.add_argument("--threads", type=int, default=1, help="OpenVINO inference threads on both sides")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/firmware_stream.json"))
    args = ap.parse_args()

    import wfdb

    from jepa_edge.data.paths import data_root
    from jepa_edge.devices.build import build_bundle
    from jepa_edge.devices.firmware import build_firmware
    from jepa_edge.devices.stream import StreamClassifier, int16_source

    root = Path(data_root())
    record = root / "mitdb" / args.record
    if not record.with_suffix(".hea").is_file():
        sys.exit(f"MIT-BIH record {record} not found (set JEPA_EDGE_DATA to ../shared/data)")
    with tempfile.TemporaryDirectory(prefix="jepa-fw-bench-") as tmp_name:
        tmp = Path(tmp_name)
        bundle = args.bundle or build_bundle(_student(tmp / "student"), "cart-cpu", tmp / "bundle", data=root,
                                             calibration_windows=48)
        runner = build_firmware(bundle, tmp / "build").runner
        rec = wfdb.rdrecord(str(record), physical=False,
                            sampto=int(args.seconds * 360) if args.seconds else None)
        frames = np.ascontiguousarray(rec.d_signal.astype("<i2")).tobytes()
        gain, baseline = float(rec.adc_gain[0]), float(rec.baseline[0])

        proc = subprocess.run([str(runner), "stream", str(bundle), "--fs", "360", "--leads", "MLII,V1", "--gain",
                               str(gain), "--baseline", str(baseline), "--threads", str(args.threads)],
                              input=frames, capture_output=True, check=False)
        if proc.returncode != 0:
            sys.exit(f"C runner failed (exit {proc.returncode}): {proc.stderr.decode()[-2000:]}")
        c_events = [json.loads(line) for line in proc.stdout.decode().splitlines()]
        clf = StreamClassifier.from_bundle(bundle, threads=args.threads)
        sink = io.StringIO()
        clf.run(int16_source(io.BytesIO(frames), 360, ["MLII", "V1"], gain=gain, baseline=baseline), sink)
        py_events = [json.loads(line) for line in sink.getvalue().splitlines()]

    c_sum, py_sum = c_events[-1], py_events[-1]
    cw = [e for e in c_events if e["type"] == "window"]
    pw = [e for e in py_events if e["type"] == "window"]
    same = len(cw) == len(pw) and all(a[k] == b[k] for a, b in zip(cw, pw, strict=True)
                                      for k in ("index", "flags", "decisions"))
    diffs = [abs(a["scores"][k] - b["scores"][k]) for a, b in zip(cw, pw, strict=False) if a["scores"] and b["scores"]
             for k in a["scores"]]
    results = {}
    for name, s in (("c", c_sum), ("python", py_sum)):
        results[name] = {"signal_s": s["signal_s"], "processing_s": s["processing_s"], "engine_s": s["engine_s"],
                         "real_time_factor": s["real_time_factor"], "latency_ms": s["latency_ms"],
                         "windows": s["accounting"]["windows"], "classified": s["classified"], "engine": s["engine"]}
        r = results[name]
        share = 100 * r["engine_s"] / r["processing_s"]
        print(f"{name:7s} RTF {r['real_time_factor']:9.1f}  ({r['signal_s']:.0f} s of ECG in "
              f"{r['processing_s']:.3f} s, engine {share:.1f}% of it; {r['windows']} windows, "
              f"hop latency p50 {r['latency_ms']['p50']:.2f} ms)", flush=True)
    ratio = round(py_sum["processing_s"] / c_sum["processing_s"], 3)
    dsp = round((py_sum["processing_s"] - py_sum["engine_s"]) / max(c_sum["processing_s"] - c_sum["engine_s"], 1e-9), 1)
    print(f"python time / C time: {ratio} (RTF C / RTF Python); outside the engine: {dsp}")
    print(f"windows agree (index, flags, decisions): {same}; largest score difference {max(diffs, default=0.0):.2e}")
    report = {"benchmark": "firmware_stream", "record": args.record, "seconds": args.seconds,
              "threads": args.threads, "command": sys.argv, "results": results,
              "ratios": {"python time / C time": ratio, "python non-engine time / C non-engine time": dsp},
              "windows_agree": same, "max_score_diff": max(diffs, default=0.0),
              "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "python": platform.python_version()},
              "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
