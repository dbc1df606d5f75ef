"""Batch-1 latency of teacher vs student across runtimes, one fresh process per configuration, in one run.

Configurations (each at 1 and 2 threads): teacher FP32 torch (vit-b, random weights: latency does not depend on
them), student FP32 torch, ORT FP32, ORT INT8 (the Q/DQ model from onnxruntime quantize_static), OpenVINO FP32
(INFERENCE_PRECISION_HINT=f32) and OpenVINO INT8 (NNCF). Prints the ratios the issue sets goals for and the
student's MACs against this CPU's INT8 (VNNI) peak; writes everything to JSON.

    JEPA_EDGE_DATA=../shared/data .venv/bin/python benchmarks/latency.py --out latency.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GOALS = {"teacher_fp32_torch / student_int8_openvino": 100.0, "openvino_fp32 / openvino_int8": 2.0,
         "onnxruntime_int8 / openvino_int8": 1.3}
ROOFLINE_GOAL = 4.0


def _classifier(size: str, out: Path, classes: int = 5) -> Path:
    import torch

    from jepa_edge.data.preprocess import EcgPreprocessing
    from jepa_edge.models.checkpoint import encoder_spec, save_model
    from jepa_edge.models.ecg import EcgEncoder, EcgEncoderSpec
    from jepa_edge.models.heads import Classifier, LinearHead

    torch.manual_seed(0)
    enc = EcgEncoder(EcgEncoderSpec(size=size))
    model = Classifier(enc, LinearHead(enc.dim, classes)).eval()
    return save_model(out, model, {"kind": "classifier", "encoder": encoder_spec(enc),
                                   "head": {"kind": "linear", "dim": enc.dim, "num_outputs": classes},
                                   "labels": [f"c{i}" for i in range(classes)], "thresholds": [0.5] * classes,
                                   "task": "latency", "preprocessing": EcgPreprocessing().to_dict()})


def _student_macs(student_dir: Path) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from jepa_edge.models.checkpoint import load_classifier

    model, meta = load_classifier(student_dir)
    x = torch.zeros(1, meta["encoder"]["leads"], meta["encoder"]["samples"])
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(x)
    return counter.get_total_flops() // 2


def prepare(work: Path, teacher: str, student: str, windows: int) -> dict[str, str]:
    """Model folders and exported/quantized files for every configuration."""
    from jepa_edge.quantize import quantize_openvino, quantize_qdq
    from jepa_edge.runtimes.export import export_classifier_onnx, export_openvino

    teacher_dir = _classifier(teacher, work / "teacher")
    student_dir = _classifier(student, work / "student")
    try:
        from jepa_edge.data.preprocess import EcgPreprocessing
        from jepa_edge.quantize import build_calibration_set

        calib = build_calibration_set(EcgPreprocessing(), None, windows=windows).windows
        source = "PTB-XL train folds"
    except Exception as exc:  # no data folder: calibrate on noise (latency only; say so in the JSON)
        calib = np.random.default_rng(0).standard_normal((windows, 12, 5000)).astype(np.float32)
        source = f"random normal (no PTB-XL: {exc})"
    onnx_fp32 = export_classifier_onnx(student_dir, work / "student.onnx")
    qdq = quantize_qdq(onnx_fp32, work / "student.qdq.onnx", calib).path
    xml_fp32 = export_openvino(onnx_fp32, work / "student_fp32.xml")
    xml_int8 = quantize_openvino(xml_fp32, work / "student_int8.xml", calib)
    return {"teacher_fp32_torch": str(teacher_dir), "student_fp32_torch": str(student_dir),
            "onnxruntime_fp32": str(onnx_fp32), "onnxruntime_int8": str(qdq), "openvino_fp32": str(xml_fp32),
            "openvino_int8": str(xml_int8), "_calibration": source}


def worker(path: str, threads: int, seconds: float, min_iters: int) -> dict:
    """Run in a fresh process: load, warm up, time batch-1 calls."""
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    import torch

    torch.set_num_threads(threads)
    from jepa_edge.runtimes import open_engine

    engine = open_engine(path, threads=threads)
    x = np.random.default_rng(0).standard_normal((1, 12, 5000)).astype(np.float32)
    for _ in range(3):
        engine(x)
    times = []
    start = time.perf_counter()
    while len(times) < min_iters or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        engine(x)
        times.append((time.perf_counter() - t0) * 1e3)
        if len(times) >= 10_000:
            break
    return {"median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90)),
            "iterations": len(times), "info": engine.info()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--teacher", default="vit-b")
    ap.add_argument("--student", default="vit-tiny")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--seconds", type=float, default=3.0, help="timing budget per configuration")
    ap.add_argument("--calibration-windows", type=int, default=64)
    ap.add_argument("--out", default="latency.json")
    ap.add_argument("--worker", nargs=2, metavar=("PATH", "THREADS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.seconds, 5)))
        return

    from jepa_edge.devices.isa import detect_isa

    isa = detect_isa()
    threads = [int(t) for t in args.threads.split(",")]
    with tempfile.TemporaryDirectory(prefix="jepa-latency-") as tmp:
        paths = prepare(Path(tmp), args.teacher, args.student, args.calibration_windows)
        calibration = paths.pop("_calibration")
        macs = _student_macs(Path(paths["student_fp32_torch"]))
        results: dict[str, dict[str, dict]] = {}
        for n in threads:
            results[str(n)] = {}
            for name, path in paths.items():
                proc = subprocess.run([sys.executable, __file__, "--worker", path, str(n), "--seconds",
                                       str(args.seconds)], capture_output=True, text=True, check=False)
                if proc.returncode != 0:
                    results[str(n)][name] = {"error": proc.stderr.strip().splitlines()[-1:]}
                    continue
                results[str(n)][name] = json.loads(proc.stdout.strip().splitlines()[-1])
                print(f"threads {n}  {name:20s} {results[str(n)][name]['median_ms']:9.2f} ms", flush=True)

    def ratio(table: dict, a: str, b: str) -> float | None:
        if "median_ms" not in table.get(a, {}) or "median_ms" not in table.get(b, {}):
            return None
        return table[a]["median_ms"] / table[b]["median_ms"]

    summary = {}
    for n, table in results.items():
        peak = isa.int8_peak_gmacs(cores=int(n))
        roofline_ms = macs / (peak * 1e9) * 1e3 if peak else None
        ov8 = table.get("openvino_int8", {}).get("median_ms")
        summary[n] = {
            "teacher_fp32_torch / student_int8_openvino": ratio(table, "teacher_fp32_torch", "openvino_int8"),
            "teacher_fp32_torch / student_fp32_torch": ratio(table, "teacher_fp32_torch", "student_fp32_torch"),
            "openvino_fp32 / openvino_int8": ratio(table, "openvino_fp32", "openvino_int8"),
            "onnxruntime_int8 / openvino_int8": ratio(table, "onnxruntime_int8", "openvino_int8"),
            "onnxruntime_fp32 / onnxruntime_int8": ratio(table, "onnxruntime_fp32", "onnxruntime_int8"),
            "student_int8_peak_gmacs": peak, "roofline_ms": roofline_ms,
            "openvino_int8 / roofline": (ov8 / roofline_ms) if ov8 and roofline_ms else None,
        }
    print(f"\nstudent {args.student}: {macs / 1e6:.1f} M MACs per 10 s window; CPU {isa.model_name}, "
          f"INT8 path {isa.int8_path}, clock {isa.mhz} MHz")
    for n, s in summary.items():
        print(f"-- {n} thread(s)")
        for key, value in s.items():
            goal = GOALS.get(key)
            if key == "openvino_int8 / roofline":
                goal_txt = f"(goal <= {ROOFLINE_GOAL:g}x)"
            else:
                goal_txt = f"(goal >= {goal:g}x)" if goal else ""
            shown = "n/a" if value is None else f"{value:.2f}"
            print(f"   {key:45s} {shown:>10s} {goal_txt}")
    out = {"machine": {"platform": platform.platform(), "python": sys.version.split()[0], "isa": isa.to_dict()},
           "teacher": args.teacher, "student": args.student, "student_macs": macs, "batch": 1,
           "calibration": calibration, "goals": {**GOALS, "openvino_int8 / roofline (max)": ROOFLINE_GOAL},
           "results": results, "summary": summary,
           "note": "one process per configuration; all numbers from this single run"}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
