"""Batch-1 latency of teacher vs student across runtimes, one fresh process per configuration, in one run.

Configurations (each at 1 and 2 threads): teacher FP32 torch (vit-b, random weights: latency does not depend on
them), student FP32 torch, ORT FP32, ORT INT8 (the Q/DQ model from onnxruntime quantize_static), OpenVINO FP32
(INFERENCE_PRECISION_HINT=f32) and OpenVINO INT8 (NNCF). Prints the ratios the issue sets goals for and the
student's INT8 speed against this machine's MEASURED INT8 peak: a stack of eight 1024x1024 INT8 Linear layers on
256 tokens (2.1 G MACs, NNCF-quantized, OpenVINO, the same engine settings), timed here in its own process at the
same thread count. Peaks differ several-fold between machines of one pool (clock, turbo, FMA ports, neighbours),
so a ratio to a peak computed from a table (devices/isa.py: MACs/cycle x cores x /proc/cpuinfo clock) is printed
only as "computed", for comparison. Writes everything to JSON.

    JEPA_EDGE_DATA=../shared/data .venv/bin/python benchmarks/latency.py --out latency.json
    .venv/bin/python benchmarks/latency.py --peak-only --out peak.json    # only the measured INT8 peak
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
PEAK_LAYERS, PEAK_WIDTH, PEAK_TOKENS = 8, 1024, 256  # the MatMul stack that measures this machine's INT8 peak
PEAK_MACS = PEAK_LAYERS * PEAK_TOKENS * PEAK_WIDTH * PEAK_WIDTH


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


def prepare_peak(work: Path) -> str:
    """The INT8 MatMul stack as an OpenVINO IR quantized by NNCF (symmetric, per-channel weights: the VNNI/AMX
    path the student's Linear layers take)."""
    import nncf
    import openvino as ov
    import torch

    torch.manual_seed(0)
    stack = torch.nn.Sequential(*[torch.nn.Linear(PEAK_WIDTH, PEAK_WIDTH) for _ in range(PEAK_LAYERS)]).eval()
    example = torch.randn(1, PEAK_TOKENS, PEAK_WIDTH)
    model = ov.convert_model(stack, example_input=example)
    calib = [torch.randn(1, PEAK_TOKENS, PEAK_WIDTH).numpy() for _ in range(8)]
    int8 = nncf.quantize(model, nncf.Dataset(calib), preset=nncf.QuantizationPreset.PERFORMANCE, subset_size=8)
    path = work / "int8_peak_stack.xml"
    ov.save_model(int8, str(path))
    return str(path)


def peak_worker(path: str, threads: int, seconds: float, min_iters: int) -> dict:
    """Run in a fresh process: the MatMul stack with the engine's OpenVINO settings; measured GMAC/s."""
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(path), "CPU",
                                  {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads})
    request = compiled.create_infer_request()
    x = np.random.default_rng(0).standard_normal((1, PEAK_TOKENS, PEAK_WIDTH)).astype(np.float32)
    for _ in range(3):
        request.infer({0: x})
    times = []
    start = time.perf_counter()
    while len(times) < min_iters or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        request.infer({0: x})
        times.append(time.perf_counter() - t0)
    best, median = float(np.min(times)), float(np.median(times))
    return {"median_ms": median * 1e3, "best_ms": best * 1e3, "iterations": len(times), "macs": PEAK_MACS,
            "gmacs_median": PEAK_MACS / median / 1e9, "gmacs_best": PEAK_MACS / best / 1e9,
            "threads": int(compiled.get_property("INFERENCE_NUM_THREADS"))}


def measure_peak(work: Path, threads: list[int], seconds: float) -> dict[str, dict]:
    """The measured INT8 peak at each thread count, each in a fresh process (like every configuration)."""
    path = prepare_peak(work)
    peaks = {}
    for n in threads:
        proc = subprocess.run([sys.executable, __file__, "--peak-worker", path, str(n), "--seconds", str(seconds)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            peaks[str(n)] = {"error": proc.stderr.strip().splitlines()[-1:]}
            continue
        peaks[str(n)] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"threads {n}  INT8 MatMul stack {peaks[str(n)]['median_ms']:9.2f} ms = "
              f"{peaks[str(n)]['gmacs_median']:.0f} GMAC/s measured (best {peaks[str(n)]['gmacs_best']:.0f})",
              flush=True)
    return peaks


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
    ap.add_argument("--peak-only", action="store_true", help="measure only this machine's INT8 MatMul peak")
    ap.add_argument("--worker", nargs=2, metavar=("PATH", "THREADS"), help=argparse.SUPPRESS)
    ap.add_argument("--peak-worker", nargs=2, metavar=("PATH", "THREADS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.seconds, 5)))
        return
    if args.peak_worker:
        print(json.dumps(peak_worker(args.peak_worker[0], int(args.peak_worker[1]), args.seconds, 5)))
        return

    from jepa_edge.devices.isa import detect_isa

    isa = detect_isa()
    threads = [int(t) for t in args.threads.split(",")]
    machine = {"platform": platform.platform(), "python": sys.version.split()[0], "isa": isa.to_dict()}
    with tempfile.TemporaryDirectory(prefix="jepa-latency-") as tmp:
        peaks = measure_peak(Path(tmp), threads, args.seconds)
        if args.peak_only:
            for n in threads:
                computed = isa.int8_peak_gmacs(cores=n)
                print(f"-- {n} thread(s): computed (table) peak {computed or 0:.0f} GMAC/s")
            Path(args.out).write_text(json.dumps({"machine": machine, "measured_int8_peak": peaks}, indent=2) + "\n")
            print(f"wrote {args.out}")
            return
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
        computed_peak = isa.int8_peak_gmacs(cores=int(n))
        measured_peak = peaks.get(n, {}).get("gmacs_median")
        ov8 = table.get("openvino_int8", {}).get("median_ms")
        roofline_ms = macs / (measured_peak * 1e9) * 1e3 if measured_peak else None
        computed_ms = macs / (computed_peak * 1e9) * 1e3 if computed_peak else None
        summary[n] = {
            "teacher_fp32_torch / student_int8_openvino": ratio(table, "teacher_fp32_torch", "openvino_int8"),
            "teacher_fp32_torch / student_fp32_torch": ratio(table, "teacher_fp32_torch", "student_fp32_torch"),
            "openvino_fp32 / openvino_int8": ratio(table, "openvino_fp32", "openvino_int8"),
            "onnxruntime_int8 / openvino_int8": ratio(table, "onnxruntime_int8", "openvino_int8"),
            "onnxruntime_fp32 / onnxruntime_int8": ratio(table, "onnxruntime_fp32", "onnxruntime_int8"),
            "measured_int8_peak_gmacs": measured_peak,
            "student_int8_gmacs": macs / (ov8 * 1e6) if ov8 else None,
            "roofline_ms (measured peak)": roofline_ms,
            "openvino_int8 / roofline": (ov8 / roofline_ms) if ov8 and roofline_ms else None,
            "computed_int8_peak_gmacs (table)": computed_peak,
            "openvino_int8 / computed roofline (table)": (ov8 / computed_ms) if ov8 and computed_ms else None,
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
    out = {"machine": machine, "measured_int8_peak": peaks,
           "teacher": args.teacher, "student": args.student, "student_macs": macs, "batch": 1,
           "calibration": calibration, "goals": {**GOALS, "openvino_int8 / roofline (max)": ROOFLINE_GOAL},
           "results": results, "summary": summary,
           "note": "one process per configuration; all numbers from this single run; the roofline divides by the "
                   "INT8 peak measured here (measured_int8_peak), the '(table)' figures by a computed one"}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
