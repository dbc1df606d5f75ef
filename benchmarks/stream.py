"""Streaming classification on one core: real-time factor and per-hop latency, filtering included.

Replays real MIT-BIH records (360 Hz, 2 leads) through `StreamClassifier` in 1 s chunks (one hop each), 10 s
windows, 1 s hop, on one thread (torch.set_num_threads(1), engine threads 1). Configurations, measured in one run:
  - int8-ort: the 2-lead vit-tiny student as Q/DQ INT8 ONNX on onnxruntime (calibrated on MIT-BIH windows),
  - int8-openvino: the same student as NNCF INT8 IR on OpenVINO,
  - fp32: the same student, FP32 ONNX on onnxruntime,
  - dsp-only: a zero-cost engine, i.e. everything but inference (resample, filter, ring, quality, events).
Without --student the student is a seeded 2-lead vit-tiny classifier (speed does not depend on the weights);
`--patch 125` gives it 40 tokens per 10 s instead of 200 (distillation's "fewer tokens" option).
Real-time factor = seconds of ECG / seconds of processing. Goal: RTF >= 2000 for INT8 (the faster INT8 engine
is compared with it; FP32 only if no INT8 engine could be built, and then printed as such).

    JEPA_EDGE_DATA=../shared/data .venv/bin/python benchmarks/stream.py --out benchmarks/results/stream.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GOAL_RTF = 2000.0


class NullEngine:
    """Returns zeros: measures the streaming runtime without inference."""

    def __init__(self, classes: int) -> None:
        self.classes = classes

    def outputs(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return {"logits": np.zeros((len(x), self.classes), np.float32),
                "embedding": np.zeros((len(x), 1), np.float32)}

    def info(self) -> dict:
        return {"backend": "none", "precision": "n/a", "threads": 0}


def _student(out: Path, patch: int = 25) -> Path:
    import torch

    from jepa_edge.data.preprocess import EcgPreprocessing
    from jepa_edge.models.checkpoint import save_model
    from jepa_edge.models.ecg import EcgEncoder, EcgEncoderSpec
    from jepa_edge.models.heads import Classifier, LinearHead

    torch.manual_seed(0)
    enc = EcgEncoder(EcgEncoderSpec("vit-tiny", leads=2, patch=patch))
    model = Classifier(enc, LinearHead(enc.dim, 5)).eval()
    meta = {"kind": "classifier", "encoder": enc.spec.to_dict(), "head": {"kind": "linear", "dim": enc.dim,
                                                                         "num_outputs": 5},
            "labels": ["NORM", "MI", "STTC", "CD", "HYP"], "thresholds": [0.5] * 5, "task": "multilabel",
            "preprocessing": EcgPreprocessing(leads=("II", "V1")).to_dict()}
    return save_model(out, model, meta)


def _calibration(pre, records: list[Path], n: int = 64) -> np.ndarray:
    from jepa_edge.data.ecg import read_record

    wins = []
    for path in records:
        rec = read_record(path, leads=pre.leads)
        x = pre(rec.signal[:, : int(rec.fs * 120)], rec.fs)
        wins.append(pre.windows(x, hop=pre.window // 2))
    allw = np.concatenate(wins)
    return allw[np.linspace(0, len(allw) - 1, min(n, len(allw))).astype(int)]


def _replay(clf, record: Path, seconds: float | None) -> dict:
    import wfdb

    from jepa_edge.devices.stream import record_source

    fs = float(wfdb.rdheader(str(record)).fs)
    stop = int(seconds * fs) if seconds else None
    return clf.run(record_source(record, chunk=int(round(fs * clf.pre.hop_s)), stop=stop))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--student", type=Path, help="a 2-lead classifier model folder (default: seeded vit-tiny)")
    ap.add_argument("--patch", type=int, default=25,
                    help="samples per token of the seeded student (25: 200 tokens per 10 s; 125: 40 tokens)")
    ap.add_argument("--records", default="101,106,119", help="MIT-BIH records (need MLII and V1)")
    ap.add_argument("--seconds", type=float, default=600.0, help="seconds replayed per record (0 = whole record)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/stream.json"))
    args = ap.parse_args()

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from jepa_edge.data.paths import data_root
    from jepa_edge.devices.stream import StreamClassifier
    from jepa_edge.models.checkpoint import read_meta
    from jepa_edge.runtimes import open_engine
    from jepa_edge.runtimes.export import export_classifier_onnx

    mitdb = Path(data_root()) / "mitdb"
    records = [mitdb / r for r in args.records.split(",")]
    missing = [str(r) for r in records if not r.with_suffix(".hea").is_file()]
    if missing:
        sys.exit(f"MIT-BIH records not found: {missing} (set JEPA_EDGE_DATA to ../shared/data)")

    with tempfile.TemporaryDirectory(prefix="jepa-stream-bench-") as tmp:
        tmp = Path(tmp)
        student = args.student or _student(tmp / "student", args.patch)
        clf0 = StreamClassifier.from_model_dir(student)
        pre, labels = clf0.pre, clf0.labels
        meta = read_meta(student)
        thresholds = meta.get("thresholds")
        tokens = meta["encoder"]["samples"] // meta["encoder"]["patch"]
        fp32 = export_classifier_onnx(student, tmp / "student.onnx")
        engines: dict[str, object] = {}
        notes: list[str] = []
        calib = _calibration(pre, records)
        try:
            from jepa_edge.quantize.qdq import quantize_qdq

            qdq = quantize_qdq(fp32, tmp / "student.qdq.onnx", calib).path
            engines["int8-ort"] = open_engine(qdq, threads=1)
        except Exception as exc:  # reported, and FP32 stands in if no INT8 engine exists
            notes.append(f"ORT Q/DQ INT8 unavailable ({type(exc).__name__}: {exc})")
        try:
            from jepa_edge.quantize.openvino_int8 import quantize_openvino
            from jepa_edge.runtimes.export import export_openvino

            ir = export_openvino(fp32, tmp / "student.xml")
            ov_int8 = quantize_openvino(ir, tmp / "student.int8.xml", calib)
            engines["int8-openvino"] = open_engine(ov_int8, threads=1)
        except Exception as exc:
            notes.append(f"OpenVINO INT8 unavailable ({type(exc).__name__}: {exc})")
        engines["fp32"] = open_engine(fp32, threads=1)
        for note in notes:
            print(note, flush=True)
        engines["dsp-only"] = NullEngine(len(labels))

        results: dict[str, dict] = {}
        for name, engine in engines.items():
            clf = StreamClassifier(engine, pre, labels, thresholds)
            _replay(clf, records[0], 30)  # warm-up (session init, caches)
            signal_s = busy = engine_s = 0.0
            lat: list[float] = []
            ok = True
            for rec in records:
                s = _replay(clf, rec, args.seconds or None)
                signal_s += s["signal_s"]
                busy += clf.busy_time
                engine_s += clf.engine_time
                lat += clf.latencies
                ok &= s["accounting"]["ok"]
            lat_ms = np.asarray(lat) * 1e3
            results[name] = {
                "engine": engine.info(), "signal_s": round(signal_s, 1), "processing_s": round(busy, 3),
                "engine_s": round(engine_s, 3), "real_time_factor": round(signal_s / busy, 1),
                "hop_latency_ms": {"p50": round(float(np.percentile(lat_ms, 50)), 3),
                                   "p99": round(float(np.percentile(lat_ms, 99)), 3)},
                "hops": len(lat), "accounting_ok": ok,
            }
            r = results[name]
            print(f"{name:13s} RTF {r['real_time_factor']:9.1f}  hop latency p50 {r['hop_latency_ms']['p50']:7.3f} ms"
                  f"  p99 {r['hop_latency_ms']['p99']:7.3f} ms  (engine {100 * engine_s / busy:4.1f}% of time, "
                  f"{len(lat)} hops, accounting {'ok' if ok else 'MISMATCH'})", flush=True)

    int8 = [k for k in results if k.startswith("int8")]
    main_cfg = max(int8, key=lambda k: results[k]["real_time_factor"]) if int8 else "fp32"
    if not int8:
        print("no INT8 engine: the FP32 student is measured against the goal instead")
    ratios = {f"{main_cfg} RTF / goal {GOAL_RTF:g}": round(results[main_cfg]["real_time_factor"] / GOAL_RTF, 3)}
    for k in int8:
        ratios[f"fp32 time / {k} time"] = round(results["fp32"]["processing_s"] / results[k]["processing_s"], 3)
    ratios[f"dsp-only time / {main_cfg} time"] = round(
        results["dsp-only"]["processing_s"] / results[main_cfg]["processing_s"], 3)
    for k, v in ratios.items():
        print(f"{k}: {v}")
    report = {"benchmark": "stream", "goal_rtf": GOAL_RTF, "measured": main_cfg, "notes": notes, "command": sys.argv,
              "tokens_per_window": tokens,
              "window_s": pre.window_s, "hop_s": pre.hop_s, "fs_model": pre.fs, "leads": list(pre.leads),
              "records": [r.name for r in records], "seconds_per_record": args.seconds, "threads": 1,
              "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "python": platform.python_version()},
              "results": results, "ratios": ratios, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
