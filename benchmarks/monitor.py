"""The arrhythmia monitor's EC57 figures on MIT-BIH (issue 21): replay records through the streaming runtime.

Each test record streams in 1 s chunks through `MonitorStream` (devices/stream/monitor.py): the quality-only
window stream (MLII + chest lead, 500 Hz, 10 s windows, 1 s hop, the artefact score fitted on DS1) and the beat
stream (neurokit2 R peaks, the beat model on a 3 s MLII window, rhythm tracker). Printed:

  - QRS detection Se / +P per record and gross (150 ms matching);
  - VEB and SVEB Se / +P per record and gross (EC57 beat-by-beat, first 5 minutes left out; a beat withheld for
    noise counts as not called), for the deployed INT8 student, its FP32 form and the teacher, and for two
    baselines with no learned morphology, fitted on the training + validation reference beats and streamed
    through the same monitor: `rr_only` (RR intervals: the trivial baseline every beat model must beat) and
    `rr_template` (RR + the beat against the patient's own recent beats), and optionally another beat
    classifier (`--baseline`, e.g. the head on the other encoder), each with paired 95 % intervals of the gross
    Se and +P differences, bootstrap over records;
  - VT, bigeminy (B), trigeminy (T) episode and duration Se / +P;
  - EC57 run-by-run Se / +P of VE and SVE couplets, short runs (3-5 beats) and long runs (>= 6), per model;
  - quality flags' window Se / Sp against the `~` annotations on the quality score's held-out records (DS2);
  - stream parity: INT8 beat labels and episodes against FP32 and the teacher, gated by the device profile's
    `agreement` gate (one-of-N: same argmax);
  - the real-time factor of the whole monitor path per model.

Split (inter-patient, jepa_edge.tasks.beats.BEAT_SPLIT): the beat models saw only the training records; every
figure here is on the test records.

    JEPA_EDGE_DATA=../shared/data .venv/bin/python benchmarks/monitor.py --teacher T --student S --int8 S_INT8.xml \
        [--baseline B] [--out benchmarks/results/monitor.json]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from jepa_edge.data.paths import data_root
from jepa_edge.devices.profiles import load_profile
from jepa_edge.devices.stream import monitor_eval as me
from jepa_edge.devices.stream.monitor import BeatModel
from jepa_edge.devices.stream.quality_eval import DS2
from jepa_edge.tasks.beat_probe import rule_fusion
from jepa_edge.tasks.beats import BEAT_SPLIT, mitdb_dir
from jepa_edge.tasks.ec57 import RUN_KINDS, Counts


def fmt(v: float) -> str:
    return "  -  " if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def se_diff_ci(a: list[Counts], b: list[Counts], n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Gross Se of `a` minus `b`, with a paired bootstrap over records (95 %)."""
    rng = np.random.default_rng(seed)
    ta, fa = np.array([c.tp for c in a]), np.array([c.fn for c in a])
    tb, fb = np.array([c.tp for c in b]), np.array([c.fn for c in b])

    def se(tp, fn, idx):
        d = (tp[idx] + fn[idx]).sum()
        return tp[idx].sum() / d if d else np.nan

    all_idx = np.arange(len(a))
    point = se(ta, fa, all_idx) - se(tb, fb, all_idx)
    diffs = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(a), len(a))
        diffs.append(se(ta, fa, idx) - se(tb, fb, idx))
    diffs = np.asarray(diffs)
    diffs = diffs[np.isfinite(diffs)]
    if not len(diffs):
        return float("nan"), float("nan"), float("nan")
    return float(point), float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))


def replay_all(model: BeatModel, folder: Path, records: list[str]) -> list[me.RecordReplay]:
    out = []
    for name in records:
        tick = time.perf_counter()
        out.append(me.replay_record(folder / name, model))
        print(f"  {model.name.split('/')[-1]} {name}: {time.perf_counter() - tick:.1f} s", flush=True)
    return out


def beat_rows(replays: list[me.RecordReplay]) -> dict[str, Any]:
    rows = {}
    for r in replays:
        rows[r.name] = {"qrs": me.detection_counts(r).to_dict(), "V": me.ectopic_counts(r, "V").to_dict(),
                        "S": me.ectopic_counts(r, "S").to_dict(), "withheld": r.labels.count("withheld"),
                        "beats": len(r.labels), "rtf": r.real_time_factor}
    rows["gross"] = {k: me.gross([(me.detection_counts(r) if k == "qrs" else me.ectopic_counts(r, k))
                                  for r in replays]).to_dict() for k in ("qrs", "V", "S")}
    rows["gross"]["rtf"] = float(np.median([r.real_time_factor for r in replays]))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--teacher", required=True, help="beat teacher classifier folder (jepa-edge beats probe)")
    ap.add_argument("--student", required=True, help="distilled beat student classifier folder (FP32, torch)")
    ap.add_argument("--int8", required=True, help="the student's INT8 engine (OpenVINO .xml) or beat bundle")
    ap.add_argument("--baseline", help="another beat classifier to pair with the deployed student (e.g. the "
                    "JEPA-pretrained teacher when the deployed chain started from a random-init one, or vice versa)")
    ap.add_argument("--data", default=None)
    ap.add_argument("--records", default=",".join(BEAT_SPLIT["test"]))
    ap.add_argument("--profile", default="jetson-orin-nano", help="device profile whose agreement gate applies")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    folder = mitdb_dir(args.data or data_root())
    records = [r for r in args.records.split(",") if r]
    leak = sorted(set(records) & set(BEAT_SPLIT["train"]))
    if leak:
        raise SystemExit(f"records {leak} trained the beat models; EC57 figures need unseen records")
    int8_path = Path(args.int8)
    models = {"teacher": BeatModel.open(args.teacher, backend="torch"),
              "student_fp32": BeatModel.open(args.student, backend="torch"),
              "student_int8": (BeatModel.open(int8_path) if int8_path.is_dir()
                               else BeatModel.open(args.student, engine_path=int8_path))}
    for key, with_template in (("rr_only", False), ("rr_template", True)):  # the baselines without a model
        models[key] = BeatModel.rule_based(rule_fusion(args.data or data_root(), with_template), models["student_fp32"])
    if args.baseline:
        models["baseline"] = BeatModel.open(args.baseline, backend="torch")
    replays = {}
    for key, model in models.items():
        print(f"replaying {len(records)} records through the monitor with {key}", flush=True)
        replays[key] = replay_all(model, folder, records)

    result: dict[str, Any] = {"records": records, "split": {k: list(v) for k, v in BEAT_SPLIT.items()}}
    result["beats"] = {key: beat_rows(rs) for key, rs in replays.items()}
    deployed = replays["student_int8"]
    print("\nQRS detection and EC57 beat statistics, deployed INT8 student (test records; first 5 min left out "
          "for VEB/SVEB)")
    print(f"{'record':>7} {'QRS Se':>7} {'QRS +P':>7} | {'VEB Se':>7} {'VEB +P':>7} {'nV':>5} | {'SVEB Se':>7} "
          f"{'SVEB +P':>7} {'nS':>4} | {'withheld':>8} {'RTF':>6}")
    rows = result["beats"]["student_int8"]
    for name in [*records, "gross"]:
        row = rows[name]
        q, v, s = row["qrs"], row["V"], row["S"]
        print(f"{name:>7} {fmt(q['se']):>7} {fmt(q['ppv']):>7} | {fmt(v['se']):>7} {fmt(v['ppv']):>7} "
              f"{v['tp'] + v['fn']:>5} | {fmt(s['se']):>7} {fmt(s['ppv']):>7} {s['tp'] + s['fn']:>4} | "
              f"{row.get('withheld', sum(rows[r]['withheld'] for r in records)):>8} {row['rtf']:>6.0f}")
    print("\ngross VEB / SVEB by model")
    for key in replays:
        g = result["beats"][key]["gross"]
        print(f"  {key:>24}: VEB Se {fmt(g['V']['se'])} +P {fmt(g['V']['ppv'])}   SVEB Se {fmt(g['S']['se'])} "
              f"+P {fmt(g['S']['ppv'])}   monitor RTF {g['rtf']:.0f}")
    for base in ("rr_only", "rr_template", "baseline"):
        if base not in replays:
            continue
        result[f"vs_{base}"] = {}
        for target in ("V", "S"):
            a = [me.ectopic_counts(r, target) for r in deployed]
            b = [me.ectopic_counts(r, target) for r in replays[base]]
            se = se_diff_ci(a, b)
            ppv = se_diff_ci(*([Counts(c.tp, c.fp, 0) for c in side] for side in (a, b)))  # +P = tp / (tp + fp)
            result[f"vs_{base}"][target] = {"se_diff": se[0], "ci95": [se[1], se[2]],
                                            "ppv_diff": ppv[0], "ppv_ci95": [ppv[1], ppv[2]]}
            print(f"  INT8 student minus {base}, {target}: Se {fmt(se[0])} [{fmt(se[1])}, {fmt(se[2])}], "
                  f"+P {fmt(ppv[0])} [{fmt(ppv[1])}, {fmt(ppv[2])}]")

    print("\nrhythm episodes (deployed INT8 student), gross over the test records")
    result["episodes"] = {}
    for key in replays:
        result["episodes"][key] = {rh: me.gross([me.episode_scores(r, rh) for r in replays[key]]).to_dict()
                                   for rh in me.RHYTHMS}
    for rh in me.RHYTHMS:
        e = result["episodes"]["student_int8"][rh]
        print(f"  {rh:>3}: reference {e['ref_episodes']:>3}, detected {e['test_episodes']:>3}; episode Se "
              f"{fmt(e['episode_se'])} +P {fmt(e['episode_ppv'])}; duration Se {fmt(e['duration_se'])} "
              f"+P {fmt(e['duration_ppv'])}")

    print("\nEC57 run-by-run statistics, gross over the test records (first 5 min left out): Se (reference runs) / "
          "+P (detected runs) for couplets, short runs (3-5 beats) and long runs (>= 6)")
    result["runs"] = {}
    for key in replays:
        result["runs"][key] = {}
        for target, name in (("V", "VE"), ("S", "SVE")):
            per = [me.ectopic_run_counts(r, target) for r in replays[key]]
            totals = {kind: me.gross([p[kind] for p in per]) for kind in RUN_KINDS}
            print(f"  {key:>14} {name:>3} runs: " + "  ".join(
                f"{kind} {fmt(c.se)} ({c.tp_se}/{c.tp_se + c.fn}) / {fmt(c.ppv)} ({c.tp_ppv}/{c.tp_ppv + c.fp})"
                for kind, c in totals.items()))
            result["runs"][key][target] = {kind: c.to_dict() for kind, c in totals.items()}
            result["runs"][key][target]["per_record"] = {
                r.name: {kind: c.to_dict() for kind, c in p.items()} for r, p in zip(replays[key], per, strict=True)}

    print("\nquality flags vs `~` annotations (window flagged vs noisy/unreadable in either lead >= half the window), "
          "quality's held-out DS2 records")
    qual = {r.name: me.quality_counts(r) for r in deployed if r.name in DS2}
    result["quality"] = {k: v.to_dict() for k, v in qual.items()}
    if qual:
        result["quality"]["gross"] = me.gross(qual.values()).to_dict()
        for name, q in [*qual.items(), ("gross", me.gross(qual.values()))]:
            print(f"  {name:>6}: Se {fmt(q.se)} ({q.tp}/{q.tp + q.fn})  Sp {fmt(q.sp)} ({q.tn}/{q.tn + q.fp})")

    gate = float(load_profile(args.profile).gates["agreement"])
    print(f"\nstream parity (beats labelled by both; gate: agreement >= {gate} from profile {args.profile})")
    result["parity"] = {"gate_agreement": gate, "profile": args.profile}
    for ref in ("student_fp32", "teacher"):
        agree = [me.beat_agreement(a, b) for a, b in zip(replays[ref], deployed, strict=True)]
        total, beats = me.gross_beat_agreement(agree)
        total = total or 0.0  # no beat labelled by both: nothing agrees
        eps = {rh: me.gross([me.episode_agreement(a, b)[rh] for a, b in zip(replays[ref], deployed, strict=True)])
               .to_dict() for rh in me.RHYTHMS}
        passed = total >= gate if ref == "student_fp32" else None
        result["parity"][f"int8_vs_{ref}"] = {"beats": beats, "agreement": total, "per_record": agree,
                                               "episodes": eps, "passed": passed}
        verdict = "" if passed is None else ("  PASS" if passed else "  FAIL")
        print(f"  INT8 vs {ref:>12}: {beats} beats, agreement {total:.4f}{verdict}; episodes " + ", ".join(
            f"{rh} Se {fmt(e['episode_se'])} +P {fmt(e['episode_ppv'])}" for rh, e in eps.items()))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1, default=float) + "\n")
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
