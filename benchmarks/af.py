"""AF episodes of the monitor: thresholds chosen on PTB-XL folds 1-8 and MIT-BIH training/validation records,
judged on PTB-XL folds 9-10 and the MIT-BIH test records.

    JEPA_EDGE_DATA=../shared/data .venv/bin/python benchmarks/af.py --beats BEAT_BUNDLE

Every record is streamed once through the real monitor (`MonitorStream`: quality windows, QRS detection, the beat
model and its fusion) and the beats it hands the rhythm tracker (sample, label, pre-QRS stretch) are kept, so each
candidate `AfConfig` replays the AF tracker on exactly what the device would have fed it. PTB-XL records are 10 s
12-lead, one rhythm each: a record scores AF when the stream opens an AF episode in it (records with atrial
flutter left out). MIT-BIH 100-124 holds no AF, so there every AF episode is a false alarm (per hour of signal).
The baseline is RR irregularity alone (no P-wave term), held to the same false-alarm limits. Then the procedure
itself is cross-validated over pairs of PTB-XL folds (every AF record judged by thresholds chosen without it), and
each AF record's miss is explained (no full window, regular RR, P waves alike, too few AF windows in a row).
"""

from __future__ import annotations

import argparse
import ast
import itertools
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from jepa_edge.data.ecg import check_record, read_record
from jepa_edge.data.mitdb import read_mitdb
from jepa_edge.data.paths import data_root
from jepa_edge.data.preprocess import STANDARD_LEADS, canonical_lead
from jepa_edge.devices.stream.af import SUPRAVENTRICULAR, AfConfig, AfTracker, p_likeness, rr_irregularity
from jepa_edge.devices.stream.monitor import BeatModel, BeatStream, MonitorStream
from jepa_edge.tasks.beats import BEAT_SPLIT
from jepa_edge.tasks.metrics import paired_bootstrap_diff, wilson_interval

MAX_FALSE_PER_HOUR = 1.0  # MIT-BIH training + validation records (about 5 h, no AF)
MAX_PTBXL_FALSE = 0.02  # share of PTB-XL folds 1-8 records without AF called AF
GRID = {"min_irregularity": (0.08, 0.10, 0.12, 0.15, 0.20), "max_p_likeness": (0.6, 0.7, 0.8, 0.9, 1.01),
        "intervals": (6, 8), "onset_windows": (1, 2)}


def stream_beats(model: BeatModel, signal: np.ndarray, fs: float, leads: list[str], name: str,
                 chunk_s: float = 1.0) -> list[tuple[int, str, np.ndarray | None]]:
    """The (sample, label, pre-QRS stretch) triples the monitor hands its rhythm tracker for one record."""
    beats = BeatStream(model)
    monitor = MonitorStream(None, beats)
    monitor.start(fs, leads, source=name)
    fed: list[tuple[int, str, np.ndarray | None]] = []
    push = beats.rhythm.push

    def recording_push(sample: int, label: str, atrial: np.ndarray | None = None):
        fed.append((sample, label, atrial))
        return push(sample, label, atrial)

    beats.rhythm.push = recording_push  # type: ignore[method-assign]
    x = signal.T
    step = max(1, int(round(chunk_s * fs)))
    for i in range(0, x.shape[0], step):
        monitor.push(x[i : i + step])
    monitor.finish()
    return fed


def af_episodes(fed: list[tuple[int, str, np.ndarray | None]], fs: float, config: AfConfig,
                end: int) -> list[tuple[int, int]]:
    tracker = AfTracker(fs, config)
    out = [ep for s, lab, a in fed if (ep := tracker.push(s, lab, a)) is not None]
    last = tracker.finish(end)
    return out + ([last] if last else [])


def rate(hits: int, n: int) -> dict[str, Any]:
    lo, hi = wilson_interval(hits, n)
    return {"hits": hits, "n": n, "rate": hits / n if n else float("nan"), "ci95": [lo, hi]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--beats", required=True, help="beat bundle or beat classifier folder (the deployed monitor)")
    ap.add_argument("--data", default=None)
    ap.add_argument("--out", default="benchmarks/results/af.json")
    args = ap.parse_args()
    root = Path(args.data) if args.data else data_root()
    model = BeatModel.open(args.beats)
    fs = model.pre.fs
    tick = time.perf_counter()

    import pandas as pd

    table = pd.read_csv(root / "ptbxl" / "ptbxl_database.csv", index_col="ecg_id")
    ptbxl = []
    for eid, row in table.iterrows():
        codes = ast.literal_eval(row.scp_codes)
        if "AFLT" in codes:
            continue  # flutter: neither AF nor a rhythm the P-wave term should call sinus
        rec = read_record(root / "ptbxl" / row.filename_hr, leads=STANDARD_LEADS)
        fed = stream_beats(model, rec.signal, rec.fs, list(STANDARD_LEADS), str(eid))
        ptbxl.append({"id": int(eid), "fold": int(row.strat_fold), "af": "AFIB" in codes, "fed": fed,
                      "end": int(rec.signal.shape[1] * fs / rec.fs)})
    print(f"PTB-XL: {len(ptbxl)} records streamed ({sum(r['af'] for r in ptbxl)} AFIB), "
          f"{time.perf_counter() - tick:.0f} s", flush=True)
    mitdb = {}
    for part in ("train", "val", "test"):
        for name in BEAT_SPLIT[part]:
            path = root / "mitdb" / name
            leads = [canonical_lead(n) or n for n in check_record(path)[1].sig_name]
            rec, _ = read_mitdb(path, leads=leads)
            mitdb[name] = {"part": part, "fed": stream_beats(model, rec.signal, rec.fs, leads, name),
                           "hours": rec.signal.shape[1] / rec.fs / 3600, "end": int(rec.signal.shape[1] * fs / rec.fs)}
            print(f"  MIT-BIH {name} ({part}) streamed", flush=True)

    outcomes: dict[AfConfig, tuple[list[bool], dict[str, int]]] = {}

    def outcome(config: AfConfig) -> tuple[list[bool], dict[str, int]]:
        """Per PTB-XL record: an AF episode opened; per MIT-BIH record: AF episodes (all false). Replayed once."""
        if config not in outcomes:
            outcomes[config] = ([bool(af_episodes(r["fed"], fs, config, r["end"])) for r in ptbxl],
                                {name: len(af_episodes(m["fed"], fs, config, m["end"])) for name, m in mitdb.items()})
        return outcomes[config]

    def score(config: AfConfig, folds: set[int], parts: set[str]) -> dict[str, Any]:
        calls, episodes = outcome(config)
        called = [(r["af"], c) for r, c in zip(ptbxl, calls, strict=True) if r["fold"] in folds]
        false_eps = {name: n for name, n in episodes.items() if n and mitdb[name]["part"] in parts}
        hours = sum(m["hours"] for m in mitdb.values() if m["part"] in parts)
        return {"ptbxl_se": rate(sum(a and c for a, c in called), sum(a for a, _ in called)),
                "ptbxl_false": rate(sum(c and not a for a, c in called), sum(not a for a, _ in called)),
                "mitdb_false_episodes": sum(false_eps.values()), "mitdb_false_by_record": false_eps,
                "mitdb_hours": hours, "mitdb_false_per_hour": sum(false_eps.values()) / hours}

    def allowed(s: dict[str, Any]) -> bool:
        return s["mitdb_false_per_hour"] <= MAX_FALSE_PER_HOUR and s["ptbxl_false"]["rate"] <= MAX_PTBXL_FALSE

    def best(candidates):
        ok = [(c, s) for c, s in candidates if allowed(s)]
        return max(ok, key=lambda cs: (cs[1]["ptbxl_se"]["rate"], -cs[1]["mitdb_false_per_hour"])) if ok else None

    configs = [replace(AfConfig(), **dict(zip(GRID, values, strict=True)))
               for values in itertools.product(*GRID.values())]
    tune_folds, test_folds = set(range(1, 9)), {9, 10}
    grid = [(config, score(config, tune_folds, {"train", "val"})) for config in configs]
    chosen = best(grid)
    rr_only = best([(c, s) for c, s in grid if c.max_p_likeness > 1.0])
    no_p_term = None
    if chosen is not None:
        same = replace(chosen[0], max_p_likeness=1.01)  # the chosen detector without its P-wave term
        no_p_term = (same, score(same, tune_folds, {"train", "val"}))
    default = AfConfig()
    result: dict[str, Any] = {"limits": {"mitdb_false_per_hour": MAX_FALSE_PER_HOUR, "ptbxl_false": MAX_PTBXL_FALSE},
                              "grid": [{"config": asdict(c), "tuning": s} for c, s in grid], "held_out": {}}
    print(f"\nchosen on PTB-XL folds 1-8 + MIT-BIH training/validation (false AF <= {MAX_FALSE_PER_HOUR}/h, "
          f"PTB-XL false AF <= {MAX_PTBXL_FALSE:.0%}); judged on PTB-XL folds 9-10 and MIT-BIH test records")
    print(f"{'detector':>34} | {'tuning Se':>9} {'false/h':>7} | {'held-out AF Se [95% CI]':>26} "
          f"{'non-AF called AF':>18} {'MIT-BIH test false/h':>21}")
    for label, cs in (("shipped default (AfConfig())", (default, score(default, tune_folds, {"train", "val"}))),
                      ("best on tuning data", chosen), ("best without the P-wave term", rr_only),
                      ("best, P-wave term removed", no_p_term)):
        if cs is None:
            print(f"{label:>34} | no setting meets the false-alarm limits")
            continue
        config, tuning = cs
        held = score(config, test_folds, {"test"})
        result["held_out"][label] = {"config": asdict(config), "tuning": tuning, "held_out": held}
        se, fp = held["ptbxl_se"], held["ptbxl_false"]
        print(f"{label:>34} | {tuning['ptbxl_se']['rate']:9.3f} {tuning['mitdb_false_per_hour']:7.2f} | "
              f"{se['hits']:>3}/{se['n']:<3} {se['rate']:.3f} [{se['ci95'][0]:.3f}, {se['ci95'][1]:.3f}] "
              f"{fp['hits']:>6}/{fp['n']:<4} ({fp['rate']:.3f}) {held['mitdb_false_per_hour']:>14.2f} "
              f"({held['mitdb_false_episodes']} in {held['mitdb_hours']:.1f} h)")
        print(f"{'':>34}   {asdict(config)}; false AF on MIT-BIH: tuning {tuning['mitdb_false_by_record']}, "
              f"test {held['mitdb_false_by_record']}")
    def ptbxl_calls(config: AfConfig) -> dict[int, bool]:
        return {r["id"]: hit for r, hit in zip(ptbxl, outcome(config)[0], strict=True)}

    result["af_records"] = why_missed(ptbxl, fs, default, ptbxl_calls(default))
    result["cross_validated"] = cross_validate(ptbxl, configs, score, best, ptbxl_calls)
    result["seconds"] = time.perf_counter() - tick
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1, default=float))
    print(f"wrote {args.out} ({result['seconds']:.0f} s)")
    return 0


def why_missed(ptbxl: list[dict[str, Any]], fs: float, config: AfConfig,
               calls: dict[int, bool]) -> list[dict[str, Any]]:
    """Each PTB-XL AF record under `config`: how many beats the stream handed the tracker as N / S with a pre-QRS
    stretch, its longest run of them (a window needs intervals + 1), the windows' largest irregularity and lowest
    P likeness, and so why a record was not called (no window, regular, or a P wave that stays alike). `calls`:
    whether `config` opened an AF episode in each record (the benchmark's cached replay)."""
    rows = []
    print(f"\nPTB-XL AF records under the shipped AfConfig() (a window: {config.intervals + 1} N / S beats)")
    for r in (r for r in ptbxl if r["af"]):
        runs, run = [], []
        for sample, label, atrial in r["fed"]:
            usable = label in SUPRAVENTRICULAR and atrial is not None  # AfTracker's rule for what extends a window
            if not usable or (run and sample - run[-1][0] > config.max_gap_s * fs):
                runs.append(run)
                run = []
            if usable:
                run.append((sample, atrial))
        runs.append(run)
        windows = [w for run in runs for i in range(len(run) - config.intervals)
                   if len(w := run[i : i + config.intervals + 1]) == config.intervals + 1]
        irr = [rr_irregularity([b for b, _ in w]) for w in windows]
        pl = [p_likeness([a for _, a in w]) for w in windows]
        called = calls[r["id"]]
        why = ("called AF" if called else "no full window (beats withheld, V or too few)" if not windows
               else "RR regular" if max(irr) <= config.min_irregularity
               else "P wave alike" if min(pl) >= config.max_p_likeness
               else f"fewer than {config.onset_windows} AF windows in a row")
        row = {"id": r["id"], "fold": r["fold"], "beats_fed": len(r["fed"]),
               "usable_beats": sum(len(x) for x in runs), "longest_run": max(len(x) for x in runs),
               "max_irregularity": max(irr, default=float("nan")), "min_p_likeness": min(pl, default=float("nan")),
               "called": called, "why": why}
        rows.append(row)
        print(f"  {row['id']:>6} fold {row['fold']:>2}: {row['beats_fed']:>2} beats fed, {row['usable_beats']:>2} N/S "
              f"(longest run {row['longest_run']:>2}), irregularity max {row['max_irregularity']:.3f}, "
              f"P likeness min {row['min_p_likeness']:.2f}: {why}")
    return rows


CV_FOLDS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10))


def cross_validate(ptbxl: list[dict[str, Any]], configs: list[AfConfig], score, best, ptbxl_calls) -> dict[str, Any]:
    """The tuning *procedure* judged on every PTB-XL AF record: for each pair of folds, thresholds chosen on the
    other eight (and MIT-BIH training/validation) call the pair's records. The shipped thresholds are one run of
    that procedure (pair 9-10); this says how well the procedure carries to records it never saw, on all 12 AF
    records rather than 3, and pairs it with RR irregularity alone chosen the same way."""
    calls = {"P-wave term": {}, "RR only": {}}
    picks = []
    for pair in CV_FOLDS:
        tune = set(range(1, 11)) - set(pair)
        grid = [(c, score(c, tune, {"train", "val"})) for c in configs]
        for label, candidates in (("P-wave term", grid), ("RR only", [cs for cs in grid if cs[0].max_p_likeness > 1])):
            cs = best(candidates)
            picks.append({"held_out_folds": list(pair), "detector": label, "config": asdict(cs[0]) if cs else None})
            chosen = ptbxl_calls(cs[0]) if cs else {}  # no setting under the limits calls nothing
            calls[label].update({r["id"]: chosen.get(r["id"], False) for r in ptbxl if r["fold"] in pair})
    ids = [r["id"] for r in ptbxl]
    y = np.array([r["af"] for r in ptbxl])
    pred = {label: np.array([c[i] for i in ids]) for label, c in calls.items()}
    se = lambda t, p: float(p[t].mean())  # noqa: E731 (AF records called AF)
    false = lambda t, p: float(p[~t].mean())  # noqa: E731 (other records called AF)
    out: dict[str, Any] = {"picks": picks}
    print(f"\ncross-validated over PTB-XL fold pairs {CV_FOLDS} (each pair judged by thresholds chosen without it)")
    for label, p in pred.items():
        out[label] = {"ptbxl_se": rate(int(p[y].sum()), int(y.sum())),
                      "ptbxl_false": rate(int(p[~y].sum()), int((~y).sum()))}
        a, f = out[label]["ptbxl_se"], out[label]["ptbxl_false"]
        print(f"{label:>34} | AF Se {a['hits']}/{a['n']} {a['rate']:.3f} [{a['ci95'][0]:.3f}, {a['ci95'][1]:.3f}]  "
              f"non-AF called AF {f['hits']}/{f['n']} ({f['rate']:.3f})")
    diff_se = paired_bootstrap_diff(se, y, pred["RR only"], pred["P-wave term"], n_boot=2000)
    diff_false = paired_bootstrap_diff(false, y, pred["RR only"], pred["P-wave term"], n_boot=2000)
    out["P-wave term minus RR only"] = {"se": diff_se, "false": diff_false}
    print(f"{'P-wave term minus RR only':>34} | AF Se {diff_se[0]:+.3f} [{diff_se[1]:+.3f}, {diff_se[2]:+.3f}]  "
          f"non-AF called AF {diff_false[0]:+.3f} [{diff_false[1]:+.3f}, {diff_false[2]:+.3f}] (paired bootstrap "
          "over records)")
    for pick in picks:
        print(f"{'':>34}   folds {pick['held_out_folds']} {pick['detector']}: {pick['config']}")
    return out


if __name__ == "__main__":
    sys.exit(main())
