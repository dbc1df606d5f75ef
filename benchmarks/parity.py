"""Accuracy parity of the demo-sized pipeline on real PTB-XL, every stage in one run, full table + JSON.

Chain (all real, all on ../shared/data), trained by the demo's own `demo_models` with `DemoConfig`'s sizes and
steps (`--quick`: the CI setting): JEPA-pretrain the teacher (vit-xs) on PTB-XL folds 1-8 -> linear probe
(thresholds on fold 9) -> distil the vit-tiny student -> build a cart-cpu bundle (OpenVINO INT8) and a jetson
bundle (Q/DQ ONNX, run here on onnxruntime) -> `run_parity` on folds 9+10 pooled for each bundle: teacher FP32
(torch) -> student FP32 (torch) -> student FP32 exports -> student INT8 per back end, with paired bootstrap
CIs, gates, perturbation sweep and golden re-check. Prints one row per stage and the gate verdicts; the
per-stage latency column is batch-1 on THIS machine (shared CPUs: read ratios, not absolutes).

    JEPA_EDGE_DATA=../shared/data .venv/bin/python benchmarks/parity.py --out benchmarks/results/parity.json
    .venv/bin/python benchmarks/parity.py --teacher runs/probe/clf --student runs/distill/classifier   # reuse
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def table(name: str, result: Any) -> list[str]:
    head = (f"{'stage':28s} {'backend':12s} {'macroAUC':>8s} {'95% CI':>17s} {'d vs T':>8s} {'d CI':>17s} "
            f"{'d vs S':>8s} {'agree':>6s} {'cosine':>7s} {'max|dl|':>8s} {'sens@.9':>7s} {'ECE':>6s} {'ms b1':>7s}")
    lines = [f"== {name}: {'PASSED' if result.passed else 'FAILED'} "
             f"({result.data['records']} records, folds {result.data['folds']}, gates from {result.gate_source})",
             head, "-" * len(head)]

    def f(v: Any, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    def ci(pair: list[Any]) -> str:
        return "-" if None in pair else f"[{pair[0]:+.4f},{pair[1]:+.4f}]"

    for stage, out in result.stages.items():
        m = result.metrics[stage]
        vs_t = result.comparisons.get(stage, {}).get("teacher", {})
        vs_s = result.comparisons.get(stage, {}).get("student-fp32", {})
        near = vs_s or vs_t
        lines.append(
            f"{stage:28s} {str(out.info.get('backend')):12s} {f(m['macro_auc'], '.4f'):>8s} "
            f"{ci(m['macro_auc_ci']):>17s} {f(vs_t.get('macro_auc_diff'), '+.4f'):>8s} "
            f"{ci(vs_t.get('macro_auc_diff_ci', [None, None])):>17s} {f(vs_s.get('macro_auc_diff'), '+.4f'):>8s} "
            f"{f(near.get('agreement'), '.3f'):>6s} {f(near.get('cosine_mean'), '.4f'):>7s} "
            f"{f(near.get('max_abs_logit_diff'), '.3g'):>8s} {f(m['macro_sensitivity_at_specificity'], '.3f'):>7s} "
            f"{f(m['ece'], '.3f'):>6s} {f(out.latency.get('batch1_median_ms'), '.1f'):>7s}")
    for stage, why in result.skipped.items():
        lines.append(f"{stage:28s} not run here: {why}")
    lines.append("gates:")
    lines += [f"  {g.message()}" for g in result.gate_results]
    if result.sweep:
        lines.append("macro AUC under perturbation (teacher / student FP32 / first INT8):")
        names = ["teacher-fp32", "student-fp32", *result.gated_stages[:1]]
        keys = list(dict.fromkeys((r["kind"], str(r["severity"])) for r in result.sweep))
        auc = {(r["kind"], str(r["severity"]), r["stage"]): r["macro_auc"] for r in result.sweep}
        for kind, sev in keys:
            vals = " / ".join(f(auc.get((kind, sev, n)), ".4f") for n in names)
            lines.append(f"  {kind:16s} {sev:>6s}  {vals}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="PTB-XL folder or data root ($JEPA_EDGE_DATA)")
    parser.add_argument("--teacher", type=Path, help="reuse a teacher classifier folder")
    parser.add_argument("--student", type=Path, help="reuse a student classifier folder")
    parser.add_argument("--quick", action="store_true", help="the demo's reduced CI setting (DemoConfig.quick)")
    parser.add_argument("--teacher-size", help="default: the demo's (DemoConfig)")
    parser.add_argument("--teacher-steps", type=int, help="default: the demo's pretraining steps")
    parser.add_argument("--student-size", help="default: the demo's")
    parser.add_argument("--distill-steps", type=int, help="default: the demo's")
    parser.add_argument("--targets", default="cart-cpu,jetson")
    parser.add_argument("--calibration-windows", type=int, help="default: the demo's")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--no-sweep", action="store_true")
    parser.add_argument("--work", type=Path, help="keep models, bundles and HTML reports here")
    parser.add_argument("--out", type=Path, default=Path("parity.json"))
    args = parser.parse_args()

    from jepa_edge.config import load_config, to_dict
    from jepa_edge.data.paths import data_root, find_ptbxl
    from jepa_edge.devices.build import build_bundle
    from jepa_edge.parity import ParityConfig, run_parity
    from jepa_edge.parity.run import plain_json
    from jepa_edge.pipeline import DemoConfig, demo_models

    demo = load_config(DemoConfig, base=DemoConfig.quick() if args.quick else None, teacher=args.teacher_size,
                       pretrain_steps=args.teacher_steps, student=args.student_size,
                       distill_steps=args.distill_steps, calibration_windows=args.calibration_windows)

    ptbxl = find_ptbxl(args.data)
    if ptbxl is None:
        sys.exit(f"no PTB-XL under {data_root(args.data)}: set JEPA_EDGE_DATA=../shared/data or pass --data")
    tmp = tempfile.TemporaryDirectory(prefix="parity-bench-") if args.work is None else None
    work = Path(tmp.name) if tmp else args.work
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    times: dict[str, float] = {}
    if args.teacher and args.student:
        teacher, student = args.teacher, args.student
    else:
        t = time.perf_counter()
        _log(f"demo models: {demo.teacher} teacher ({demo.pretrain_steps} steps) -> {demo.student} student "
             f"({demo.distill_steps} steps)")
        _, teacher, student = demo_models(demo, ptbxl, work)
        times["models_s"] = time.perf_counter() - t
        teacher, student = args.teacher or teacher, args.student or student
    results: dict[str, Any] = {}
    lines: list[str] = []
    for target in [t.strip() for t in args.targets.split(",") if t.strip()]:
        t = time.perf_counter()
        _log(f"build {target} bundle")
        bundle = build_bundle(student, target, work / f"bundle-{target}", data=ptbxl,
                              calibration_windows=demo.calibration_windows, seed=demo.seed)
        times[f"build_{target}_s"] = time.perf_counter() - t
        t = time.perf_counter()
        _log(f"parity {target}")
        result = run_parity(teacher, bundle, ptbxl, student=student,
                            cfg=ParityConfig(n_boot=args.n_boot, sweep=not args.no_sweep),
                            progress=lambda msg: _log(f"  {msg}"))
        times[f"parity_{target}_s"] = time.perf_counter() - t
        lines += table(target, result) + [""]
        doc = result.to_dict()
        doc["bundle"] = str(bundle)
        results[target] = doc
    print("\n".join(lines))
    out = {"benchmark": "parity", "command": " ".join(sys.argv), "demo_config": to_dict(demo),
           "teacher": str(teacher), "student": str(student),
           "machine": {"platform": platform.platform(), "processor": platform.processor(), "python": sys.version},
           "times_s": times | {"total_s": time.perf_counter() - started}, "results": results,
           "passed": all(r["passed"] for r in results.values()), "table": lines}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(plain_json(out), indent=2, sort_keys=True, allow_nan=False) + "\n")
    print(f"wrote {args.out}")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
