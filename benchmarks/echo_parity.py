"""Echo teacher vs cart student, in one run on this machine: batch-1 latency and end-to-end throughput.

Parts (each a function of one shared `Setup`, run in order, results under their name in the JSON):
- decode: decode + preprocess only, 1 thread, clips per second from a 4 s 50 fps AVI, three ways: as on
  main at 4b50dea (a swscale context per frame: the "before"), `read_video` now (one context per file) and
  the `echo infer` path (`read_sparse`: only the frames the clips use are converted).
- latency: teacher = vit-b video encoder + linear LVEF head, FP32 torch, 16 frames at 224 px (as V-JEPA 2 /
  EchoJEPA teachers); student = vit-tiny, 16 frames at 112 px, OpenVINO INT8 IR from a cart-cpu bundle.
  Batch 1, 1 thread, one fresh process per model; median of timed calls after warm-up. Goal: teacher /
  student >= 100x.
- throughput: `jepa-edge echo infer`'s code path (`EchoInfer.run`: PyAV decode, the bundle's preprocessing,
  INT8 engine, all clips of a video in one batch, next video decoded in a background thread) over a folder
  of videos, in a fresh process, as seconds of echo video per wall-clock second. Goal: >= 20x real time on
  2 cores. Headline: the CLI's defaults (engine threads = all cores, decode prefetch on); 1-core sequential
  and 1-thread-engine-plus-prefetch runs are measured beside it. Each configuration runs `--repeats` times,
  interleaved with the others, over the folder `--passes` times per run; the median run is reported.
- accuracy: the demo's echo chain (`jepa_edge.echo_demo.EchoDemoConfig`: JEPA-pretrained vit-xs teacher
  with an LVEF probe -> vit-tiny student on half the frames -> cart-cpu NNCF INT8 bundle) trained here on
  SYNTHETIC clips, then `jepa-edge parity`: LVEF MAE with bootstrap CIs per stage, paired differences
  (student FP32 and INT8 vs teacher, INT8 vs student FP32), the gates and their verdict, and the MAE of
  predicting the training mean on the same videos (the trivial baseline).

Random weights (default) are fine for timing: latency does not depend on weight values. Videos are synthetic
(112 px, 4 s, 25/30/50 fps, `jepa_edge.data.synthetic_echo`), written as AVI through PyAV.

    .venv/bin/python benchmarks/echo_parity.py     # ~4 min on 2 cores; JSON in benchmarks/results/

Everything printed under "measured" was timed in this run; ratios and goal fractions are computed from
those measurements (and labelled so).
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
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

GOALS = {"latency_ratio": 100.0, "real_time_factor": 20.0}
HERE = Path(__file__).resolve()


@dataclass
class Setup:
    """What every part works on: model folders, the student's cart bundle, and an EchoNet-layout folder."""

    teacher: Path  # classifier folder (vit-b, 16 x 224, FP32 torch)
    student: Path  # classifier folder (vit-tiny, 16 x 112)
    bundle: Path  # cart-cpu bundle of the student (OpenVINO INT8 IR)
    data: Path  # EchoNet-Dynamic layout folder (calibration: TRAIN; throughput: every video)
    random_weights: bool


def _classifier(out: Path, size: str, frames: int, image_size: int) -> Path:
    """Random encoder + linear LVEF head (z-scored, EchoNet mean / SD), saved as a classifier folder."""
    import torch

    from jepa_edge.data.echo import EchoPreprocessing
    from jepa_edge.models.heads import LinearHead
    from jepa_edge.models.video import VideoEncoder, VideoEncoderSpec
    from jepa_edge.tasks.echo import EchoProbe, save_echo_classifier

    torch.manual_seed(0)
    enc = VideoEncoder(VideoEncoderSpec(size=size, frames=frames, image_size=image_size)).eval()
    probe = EchoProbe(LinearHead(enc.dim, 1), {"kind": "linear", "dim": enc.dim, "num_outputs": 1}, "ef",
                      ["LVEF"], 57.0, 11.0)
    return save_echo_classifier(out, enc, probe, EchoPreprocessing(frames=frames, fps=8.0, size=image_size))


def prepare(work: Path, args: argparse.Namespace) -> Setup:
    from jepa_edge.data.synthetic_echo import SyntheticEchoConfig, write_synthetic_echonet
    from jepa_edge.devices.build import build_bundle

    data = Path(args.data) if args.data else write_synthetic_echonet(
        work / "echonet", args.videos, 0, "avi", SyntheticEchoConfig(size=112, seconds=args.video_seconds))
    teacher = Path(args.teacher) if args.teacher else _classifier(work / "teacher", "vit-b", 16, 224)
    student = Path(args.student) if args.student else _classifier(work / "student", "vit-tiny", 16, 112)
    if args.bundle:
        bundle = Path(args.bundle)
    else:
        t0 = time.perf_counter()
        bundle = build_bundle(student, "cart-cpu", work / "bundle", data=data,
                              calibration_windows=args.calibration_clips)
        print(f"built the cart-cpu bundle in {time.perf_counter() - t0:.0f} s", flush=True)
    return Setup(teacher, student, bundle, data, random_weights=not (args.teacher or args.student))


# -- workers (fresh processes) ----------------------------------------------------------------------------


def _pin_threads(threads: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


def latency_worker(kind: str, path: str, threads: int, seconds: float, min_iters: int) -> dict:
    _pin_threads(threads)
    if kind == "torch":
        from jepa_edge.modality import modality_of
        from jepa_edge.runtimes import open_engine

        engine = open_engine(path, backend="torch", threads=threads)
        shape = (1, *modality_of(engine.meta).input_shape(engine.meta["encoder"]))
    else:
        from jepa_edge.bundle import open_bundle

        bundle = open_bundle(path)
        engine = bundle.engine(threads=threads)
        shape = (1, *bundle.manifest["io"]["inputs"][0]["shape"][1:])
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    warm = 1 if kind == "torch" else 3
    for _ in range(warm):
        engine(x)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_iters or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        engine(x)
        times.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": float(np.median(times)), "min_ms": float(np.min(times)), "iterations": len(times),
            "input": list(shape), "info": engine.info()}


def throughput_worker(bundle: str, data: str, engine_threads: int, prefetch: bool, clips: int, passes: int) -> dict:
    _pin_threads(1)  # preprocessing (torch resize / normalise) in one thread; the engine has its own pool
    from jepa_edge.devices.echo_infer import EchoInfer, expand_inputs

    runner = EchoInfer.open(bundle, clips=clips, threads=engine_threads)
    items = expand_inputs([data])
    runner.run(items[:2], prefetch=prefetch)  # warm-up (first inference compiles kernels)
    report = runner.run(items * passes, prefetch=prefetch)  # the folder `passes` times: a few seconds per run
    ok = [v for v in report.videos if v["error"] is None]
    decode_s = sum(v["timing_ms"]["decode_preprocess"] for v in ok) / 1e3
    model_s = sum(v["timing_ms"]["model"] for v in ok) / 1e3
    n_clips = sum(len(v["clips"]) for v in ok)
    seconds = report.seconds_of_video
    return {"engine_threads": runner.engine.info().get("threads"), "prefetch": prefetch, "videos": len(ok),
            "failed": len(report.failed), "clips": n_clips, "seconds_of_video": seconds, "wall_s": report.wall_s,
            "real_time_factor": seconds / report.wall_s, "clips_per_s": n_clips / report.wall_s,
            "decode_preprocess_s": decode_s, "model_s": model_s,
            "decode_preprocess_clips_per_s": n_clips / decode_s if decode_s else None,
            "model_ms_per_clip": 1e3 * model_s / n_clips if n_clips else None,
            "load_average_1min": os.getloadavg()[0]}


def _run_worker(*argv: str) -> dict:
    proc = subprocess.run([sys.executable, str(HERE), "--worker", *argv], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["(no output)"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _read_video_per_frame_conversion(path: str, pre) -> object:
    """`read_video` as on main at 4b50dea (the "before"): frame.to_ndarray(format="gray") per frame, which
    builds a new swscale context for every frame. Kept here only to measure the change in the same run."""
    import av

    from jepa_edge.data.echo import EchoVideo

    with av.open(path) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="gray") for frame in container.decode(stream)]
        fps = float(stream.average_rate)
    return EchoVideo(np.stack(frames), fps, path)


def decode_worker(seconds: float, clips: int) -> dict:
    """Decode + preprocess only (no model), 1 thread: clips per second for three ways of getting clips."""
    _pin_threads(1)
    from jepa_edge.data.echo import EchoPreprocessing, read_video, write_video
    from jepa_edge.data.synthetic_echo import SyntheticEchoConfig, synthesize_echo
    from jepa_edge.devices.echo_infer import EchoInfer, VideoItem, clip_starts
    from jepa_edge.tasks.outputs import TaskOutput

    pre = EchoPreprocessing(frames=16, fps=8.0, size=112)
    out = TaskOutput("regression", ("LVEF",), mean=57.0, std=11.0, unit="percent")
    with tempfile.TemporaryDirectory() as tmp:
        v = synthesize_echo(0, SyntheticEchoConfig(size=112, seconds=4.0), fps=50.0)
        path = str(write_video(Path(tmp) / "clip.avi", v.frames, v.fps))
        result = {"video": "synthetic AVI (MPEG-4 part 2), 112 px, 50 fps, 4 s (200 frames)"}
        for n in (1, clips):
            starts = clip_starts(200, 50.0, pre, n)
            infer = EchoInfer(None, pre, out, clips=n)
            ways = {  # each decodes the video once and cuts len(starts) clips from it
                "before: per-frame conversion (main at 4b50dea) + pre.clip":
                    lambda s=starts: _clips(pre, _read_video_per_frame_conversion(path, pre), s),
                "read_video (one swscale context) + pre.clip": lambda s=starts: _clips(pre, read_video(path), s),
                "echo infer path (read_sparse: picked frames only)": lambda i=infer: i.prepare(VideoItem(Path(path))),
            }
            result[f"{n}_clip(s)_per_video"] = {name: len(starts) * _rate(fn, seconds) for name, fn in ways.items()}
    return result


def _clips(pre, video, starts: list[int]) -> list:
    return [pre.clip(video, x) for x in starts]


def _rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of fn() over at least `seconds` (and 3 calls) after one warm-up call."""
    fn()
    calls, start = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - start < seconds:
        fn()
        calls += 1
    return calls / (time.perf_counter() - start)


# -- parts ----------------------------------------------------------------------------------------------------


def decode_part(setup: Setup, args: argparse.Namespace) -> dict:
    result = _run_worker("decode", str(args.decode_seconds), str(args.clips))
    for key, ways in result.items():
        if isinstance(ways, dict):
            for name, rate in ways.items():
                print(f"  {key}: {name}: {rate:.1f} clips/s", flush=True)
    return {"measured": result, "threads": 1}


def latency_part(setup: Setup, args: argparse.Namespace) -> dict:
    teacher = _run_worker("latency", "torch", str(setup.teacher), "1", str(args.seconds), "3")
    print(f"  teacher FP32 torch, 1 thread: {teacher.get('median_ms', float('nan')):.0f} ms", flush=True)
    student = _run_worker("latency", "bundle", str(setup.bundle), "1", str(args.seconds), "20")
    print(f"  student INT8 OpenVINO, 1 thread: {student.get('median_ms', float('nan')):.1f} ms", flush=True)
    ratio = (teacher["median_ms"] / student["median_ms"]) if "median_ms" in teacher and "median_ms" in student \
        else None
    return {"measured": {"teacher_fp32_torch": teacher, "student_int8_openvino": student},
            "computed": {"teacher_over_student": ratio, "goal": GOALS["latency_ratio"],
                         "fraction_of_goal": None if ratio is None else ratio / GOALS["latency_ratio"]},
            "batch": 1, "threads": 1}


THROUGHPUT_CONFIGS = (  # (name, engine threads, prefetch): the first is the headline (the CLI's defaults here)
    ("2 cores: engine 2 threads + decode prefetch (CLI default)", 2, True),
    ("2 cores: engine 1 thread + decode prefetch", 1, True),
    ("1 core: engine 1 thread, sequential", 1, False),
)


def throughput_part(setup: Setup, args: argparse.Namespace) -> dict:
    """Every configuration `--repeats` times, interleaved (A B C A B C ...) so that load from other jobs on a
    shared machine spreads over all of them; the median run of each is reported, every run kept."""
    runs: dict[str, list[dict]] = {name: [] for name, _, _ in THROUGHPUT_CONFIGS}
    for _ in range(args.repeats):
        for name, threads, prefetch in THROUGHPUT_CONFIGS:
            runs[name].append(_run_worker("throughput", str(setup.bundle), str(setup.data), str(threads),
                                          str(int(prefetch)), str(args.clips), str(args.passes)))
    medians = {}
    for name, rs in runs.items():
        good = sorted((r for r in rs if "real_time_factor" in r), key=lambda r: r["real_time_factor"])
        medians[name] = good[len(good) // 2] if good else rs[-1]
        shown = ", ".join(f"{r['real_time_factor']:.1f}x" for r in good) or rs[-1].get("error")
        print(f"  {name}: {shown}", flush=True)
    rtf = medians[THROUGHPUT_CONFIGS[0][0]].get("real_time_factor")
    return {"measured": medians, "all_runs": runs, "clips_per_video": args.clips, "repeats": args.repeats,
            "computed": {"headline": THROUGHPUT_CONFIGS[0][0], "real_time_factor": rtf,
                         "goal": GOALS["real_time_factor"],
                         "fraction_of_goal": None if rtf is None else rtf / GOALS["real_time_factor"]}}


def accuracy_part(setup: Setup, args: argparse.Namespace) -> dict:
    """Train the demo's echo chain here and gate it with `run_parity`; every number is measured in this run."""
    from jepa_edge.echo_demo import EchoDemoConfig, run_echo_demo

    work = Path(setup.data).parent / "accuracy"
    result = run_echo_demo(EchoDemoConfig(seed=args.seed), work, say=lambda msg: print(msg, flush=True))
    report = json.loads((work / "echo-parity" / "parity.json").read_text())
    stages = {name: {"mae": st["metrics"]["mae"], "mae_ci": st["metrics"]["mae_ci"], "bias": st["metrics"]["bias"]}
              for name, st in report["stages"].items()}
    diffs = {f"{stage} vs {ref}": {k: comp[k] for k in ("mae_diff", "mae_diff_ci", "cosine_mean") if k in comp}
             for stage, refs in report["comparisons"].items() for ref, comp in refs.items()}
    return {"measured": {"stages": stages, "differences": diffs, "videos": report["data"].get("videos"),
                         "mean_predictor_mae": result.mean_predictor_mae,
                         "gates": [g["message"] for g in report["gates"]["results"]]},
            "computed": {"passed": result.parity_passed, "failures": result.failures},
            "timings_s": result.timings, "data": "SYNTHETIC echo clips (jepa_edge.data.synthetic_echo)"}


PARTS: dict[str, Callable[[Setup, argparse.Namespace], dict]] = {"decode": decode_part, "latency": latency_part,
                                                                 "throughput": throughput_part,
                                                                 "accuracy": accuracy_part}


def _goal(value: float | None, key: str) -> str:
    """'>= 100x: 1.23 of goal' (computed from a measured value)."""
    if value is None:
        return "n/a"
    return f">= {GOALS[key]:g}x: {value / GOALS[key]:.2f} of goal (computed)"


def print_table(results: dict) -> None:
    rows: list[tuple[str, str, str, str]] = []
    dec = results.get("decode")
    if dec:
        for key, ways in dec["measured"].items():
            if isinstance(ways, dict):
                for name, rate in ways.items():
                    rows.append(("measured", f"decode+preprocess, {key.replace('_', ' ')}, {name}",
                                 f"{rate:.1f} clips/s", ""))
    lat = results.get("latency")
    if lat:
        t, s = lat["measured"]["teacher_fp32_torch"], lat["measured"]["student_int8_openvino"]
        rows.append(("measured", "teacher vit-b FP32 torch 16x224, batch 1, 1 thread",
                     f"{t.get('median_ms', float('nan')):.0f} ms", ""))
        rows.append(("measured", "student vit-tiny INT8 OpenVINO 16x112, batch 1, 1 thread",
                     f"{s.get('median_ms', float('nan')):.2f} ms", ""))
        r = lat["computed"]["teacher_over_student"]
        rows.append(("computed", "teacher / student latency", "n/a" if r is None else f"{r:.0f}x",
                     _goal(r, "latency_ratio")))
    thr = results.get("throughput")
    if thr:
        for name, r in thr["measured"].items():
            if "real_time_factor" not in r:
                rows.append(("measured", f"end to end, {name}", f"error: {r.get('error')}", ""))
                continue
            goal = _goal(r["real_time_factor"], "real_time_factor") if name == thr["computed"]["headline"] else ""
            rows.append(("measured", f"end to end, {name}",
                         f"{r['real_time_factor']:.1f}x real time ({r['clips_per_s']:.1f} clips/s)", goal))
        head = thr["measured"][thr["computed"]["headline"]]
        if "decode_preprocess_clips_per_s" in head:
            rows.append(("measured", "  of which decode + preprocess (per clip, summed per video)",
                         f"{head['decode_preprocess_clips_per_s']:.0f} clips/s", ""))
            rows.append(("measured", "  of which INT8 model (per clip, batch = clips of a video)",
                         f"{head['model_ms_per_clip']:.1f} ms/clip", ""))
    acc = results.get("accuracy")
    if acc:
        for name, st in acc["measured"]["stages"].items():
            lo, hi = st["mae_ci"]
            rows.append(("measured", f"LVEF MAE {name} (SYNTHETIC, {acc['measured']['videos']} videos)",
                         f"{st['mae']:.2f} [{lo:.2f}, {hi:.2f}] EF pts", ""))
        base = acc["measured"]["mean_predictor_mae"]
        if base is not None:
            rows.append(("measured", "LVEF MAE predicting the training mean (probe test split)", f"{base:.2f}", ""))
        for name, d in acc["measured"]["differences"].items():
            if "mae_diff" in d and d["mae_diff"] is not None:
                lo, hi = d.get("mae_diff_ci") or (None, None)
                ci = "" if lo is None else f" [{lo:+.3f}, {hi:+.3f}]"
                rows.append(("measured", f"MAE difference {name}", f"{d['mae_diff']:+.3f}{ci}", ""))
        rows.append(("computed", "echo parity verdict (every gate)",
                     "PASSED" if acc["computed"]["passed"] else "FAILED", "; ".join(acc["computed"]["failures"])))
    width = max(len(r[1]) for r in rows) if rows else 0
    for kind, what, value, goal in rows:
        print(f"{kind:9s} {what:{width}s}  {value:>32s}  {goal}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, from {sorted(PARTS)}")
    ap.add_argument("--seconds", type=float, default=20.0, help="minimum timing per latency measurement")
    ap.add_argument("--videos", type=int, default=16, help="synthetic videos (calibration + throughput)")
    ap.add_argument("--video-seconds", type=float, default=4.0)
    ap.add_argument("--clips", type=int, default=4, help="clips per video in the throughput part")
    ap.add_argument("--calibration-clips", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3, help="runs of each throughput configuration (median kept)")
    ap.add_argument("--passes", type=int, default=3, help="times each throughput run goes over the video folder")
    ap.add_argument("--decode-seconds", type=float, default=2.0, help="timing per decode measurement")
    ap.add_argument("--teacher", help="use this teacher classifier folder instead of a random vit-b")
    ap.add_argument("--student", help="use this student classifier folder instead of a random vit-tiny")
    ap.add_argument("--bundle", help="use this cart-cpu bundle instead of building one from the student")
    ap.add_argument("--data", help="use this EchoNet-layout folder instead of synthetic videos")
    ap.add_argument("--seed", type=int, default=0, help="seed of the accuracy part's synthetic data and training")
    ap.add_argument("--out", type=Path, default=HERE.parent / "results" / "echo_parity.json")
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        kind, *rest = args.worker
        if kind == "latency":
            result = latency_worker(rest[0], rest[1], int(rest[2]), float(rest[3]), int(rest[4]))
        elif kind == "decode":
            result = decode_worker(float(rest[0]), int(rest[1]))
        else:
            result = throughput_worker(rest[0], rest[1], int(rest[2]), bool(int(rest[3])), int(rest[4]), int(rest[5]))
        print(json.dumps(result))
        return

    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        ap.error(f"unknown part(s) {unknown}; choose from {sorted(PARTS)}")
    from jepa_edge.devices.isa import detect_isa

    started = time.perf_counter()
    load_at_start = os.getloadavg()[0]
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="jepa-echo-parity-") as tmp:
        setup = prepare(Path(tmp), args)
        for name in parts:
            print(f"{name}:", flush=True)
            results[name] = PARTS[name](setup, args)
        setup_fields = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(setup).items()}
    print()
    print_table(results)
    isa = detect_isa()
    out = {"machine": {"platform": platform.platform(), "python": sys.version.split()[0], "cpu": isa.model_name,
                       "cores_visible": os.cpu_count(), "load_average_1min_at_start": load_at_start},
           "setup": setup_fields, "goals": GOALS, "results": results, "total_s": time.perf_counter() - started,
           "note": "'measured' values were timed in this run (fresh process per configuration); 'computed' values "
                   "are ratios of those measurements. Random weights and synthetic videos unless given."}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nload average at start {load_at_start:.1f} (shared machine); total {out['total_s']:.0f} s; "
          f"wrote {args.out}")


if __name__ == "__main__":
    main()
