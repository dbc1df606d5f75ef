"""Echo parity: teacher FP32 -> student FP32 -> student INT8 on held-out EchoNet-layout videos, gated.

Each held-out video (the TEST split by default) is decoded ONCE at its native size; every stage then cuts its
own clips from it with ITS OWN `EchoPreprocessing`, so a 224 px / 16-frame teacher and a 112 px / 8-frame
student see the same moments of the same video: `clips_per_video` clips whose starts are spread evenly from
the first to the last possible start (a clip's time span depends on the stage's frames and fps), and the
outputs (logits, embedding) averaged per video. Each stage's logits are decoded with its own `TaskOutput`.

The perturbation sweep applies every EchoJEPA preset (depth attenuation 0.75 / 1.5 / 2.15; acoustic shadow
0.4/0.15, 0.6/0.20, 0.8/0.25) to the native uint8 frames before any stage's preprocessing, the shadow centre
drawn once per video from a generator seeded by (seed, video index), so every stage - and every shadow level -
sees the same perturbed video. Videos are streamed: one decoded video in memory at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.echo import EchoItem, EchoPreprocessing, EchoVideo, read_video
from ..data.echo_clips import echo_split_items, echo_truth
from ..data.echo_perturb import EchoPerturbation
from ..data.errors import DataError
from ..data.paths import data_root
from ..tasks.outputs import TaskOutput
from .evaluate import OutputsModel, ParityError, StageOutputs, latency_ms
from .output_eval import check_same_task, evaluate_outputs
from .run import (
    STUDENT,
    TEACHER,
    ParityConfig,
    ParityResult,
    collect_engines,
    engine_options,
    finish_result,
    resolved_gates,
    run_golden,
)

ECHONET_SUBDIRS = ("", "echonet", "EchoNet-Dynamic")
SPLITS = ("train", "val", "test")
CLEAN = "clean"


@dataclass(frozen=True)
class EchoStage:
    """One stage of an echo parity run: its engine, its own preprocessing and its own output decoding."""

    model: OutputsModel
    pre: EchoPreprocessing
    output: TaskOutput


def echonet_root(data: str | Path | None) -> Path:
    """The EchoNet-Dynamic layout folder (FileList.csv + Videos/): `data` itself or its echonet/ subfolder
    (default: $JEPA_EDGE_DATA)."""
    base = data_root(data)
    for sub in ECHONET_SUBDIRS:
        if (base / sub / "FileList.csv").is_file():
            return base / sub if sub else base
    raise DataError(f"{base}: no EchoNet-Dynamic folder (FileList.csv + Videos/) here or in {base / 'echonet'}; "
                    "pass --data the EchoNet folder (e.g. one written by `jepa-edge echo synth`)")


def stage_clips(video: EchoVideo, pre: EchoPreprocessing, clips: int) -> np.ndarray:
    """(clips, C, T, H, W) float32 model inputs cut from a native-size video with this stage's preprocessing."""
    out = []
    for start in pre.clip_starts(video.num_frames, video.fps, clips, video.path):
        idx = pre.frame_indices(video.num_frames, video.fps, start, video.path)
        out.append(pre.normalise(pre.resize_frames(video.frames[idx])).numpy())
    return np.stack(out).astype(np.float32, copy=False)


def sweep_conditions(sweep: Sequence[tuple[str, int]]) -> list[tuple[str, EchoPerturbation | None]]:
    """("clean", None) then one (name, perturbation) per (kind, level), e.g. "depth-2"."""
    try:
        perturbations = [EchoPerturbation(kind, int(level)) for kind, level in sweep]
    except ValueError as exc:
        raise ParityError(f"echo sweep: {exc}") from None
    return [(CLEAN, None), *((f"{p.kind}-{p.level}", p) for p in perturbations)]


@dataclass
class _Collected:
    logits: list[np.ndarray] = field(default_factory=list)
    embedding: list[np.ndarray] = field(default_factory=list)
    seconds: float = 0.0
    clips: int = 0
    example: np.ndarray | None = None


def _per_video(name: str, model: OutputsModel, x: np.ndarray, into: _Collected) -> None:
    start = time.perf_counter()
    out = model.outputs(x)
    into.seconds += time.perf_counter() - start
    into.clips += len(x)
    if "logits" not in out or "embedding" not in out:
        raise ParityError(f"stage {name!r}: model returned outputs {sorted(out)}; need 'logits' and 'embedding'")
    logits = np.asarray(out["logits"], dtype=np.float64)
    emb = np.asarray(out["embedding"], dtype=np.float64)
    if not (np.isfinite(logits).all() and np.isfinite(emb).all()):
        raise ParityError(f"stage {name!r}: outputs contain NaN or Inf")
    into.logits.append(logits.mean(axis=0))
    into.embedding.append(emb.mean(axis=0))
    if into.example is None:
        into.example = x[:1].copy()


def run_echo_stages(items: Sequence[EchoItem], stages: Mapping[str, EchoStage],
                    conditions: Sequence[tuple[str, EchoPerturbation | None]], sweep_stages: Sequence[str],
                    clips_per_video: int = 3, seed: int = 0, latency_runs: int = 10,
                    progress: Callable[[str], None] | None = None) -> dict[str, dict[str, StageOutputs]]:
    """{condition: {stage: per-video StageOutputs}}; every stage runs clean, `sweep_stages` also perturbed.

    Latency and throughput are measured on the clean pass (batch = the clips of one video)."""
    collected = {cond: {name: _Collected() for name in stages if cond == CLEAN or name in sweep_stages}
                 for cond, _ in conditions}
    for i, item in enumerate(items):
        if progress:
            progress(f"video {i + 1}/{len(items)}")
        video = read_video(item.path, fps=item.fps)
        for cond, perturbation in conditions:
            seen = video if perturbation is None else EchoVideo(
                perturbation(video.frames, np.random.default_rng([seed, i])), video.fps, video.path)
            for name, into in collected[cond].items():
                stage = stages[name]
                _per_video(name, stage.model, stage_clips(seen, stage.pre, clips_per_video), into)
    result: dict[str, dict[str, StageOutputs]] = {}
    for cond, by_stage in collected.items():
        result[cond] = {}
        for name, got in by_stage.items():
            latency: dict[str, float] = {}
            info: dict[str, Any] = {}
            if cond == CLEAN:
                latency = {"throughput_clips_per_s": got.clips / got.seconds if got.seconds > 0 else float("nan"),
                           "clips": float(got.clips)}
                if latency_runs > 0 and got.example is not None:
                    latency.update(latency_ms(stages[name].model, got.example, runs=latency_runs))
                info_fn = getattr(stages[name].model, "info", None)
                info = dict(info_fn()) if callable(info_fn) else {}
            result[cond][name] = StageOutputs(name, np.stack(got.logits), np.stack(got.embedding), info=info,
                                              latency=latency)
    return result


def sweep_rows(per_condition: Mapping[str, Mapping[str, StageOutputs]], truth: np.ndarray,
               decoders: Mapping[str, TaskOutput],
               conditions: Sequence[tuple[str, EchoPerturbation | None]]) -> list[dict[str, Any]]:
    """One row per condition x stage: {condition, kind, level, params, stage, metric, value}."""
    rows = []
    for cond, perturbation in conditions:
        params = perturbation.to_dict() if perturbation is not None else {"kind": CLEAN, "level": None}
        for name, stage in per_condition[cond].items():
            output = decoders[name]
            rows.append({"condition": cond, "kind": params["kind"], "level": params["level"],
                         "params": {k: v for k, v in params.items() if k not in ("kind", "level")},
                         "stage": name, "metric": output.metric_name,
                         "value": float(output.metric(truth, stage.logits))})
    return rows


def run_echo_parity(teacher_dir: Path, teacher_meta: Mapping[str, Any], student_dir: Path | None,
                    student_meta: Mapping[str, Any] | None, opened: Any, data: str | Path | None,
                    cfg: ParityConfig, extra_stages: Mapping[str, str | Path] | None = None,
                    say: Callable[[str], None] = lambda _msg: None) -> ParityResult:
    """`run_parity` for echo models (regression LVEF or one-of-N view heads); see the module docstring."""
    from jepa_edge.modality import modality_of

    modality = modality_of(teacher_meta)
    teacher_out = TaskOutput.from_meta(teacher_meta)
    teacher_pre = modality.preprocessing(teacher_meta["preprocessing"])
    student_out: TaskOutput | None = None
    if opened is not None:
        student_out, student_pre = opened.output, opened.preprocessing
        check_same_task(teacher_out, student_out, f"bundle {opened.path}")
    if student_meta is not None:
        folder_out = TaskOutput.from_meta(student_meta)
        check_same_task(teacher_out, folder_out, f"student {student_dir}")
        if student_out is None:
            student_out, student_pre = folder_out, modality.preprocessing(student_meta["preprocessing"])
    assert student_out is not None  # run_parity refuses a call with neither bundle nor student
    if cfg.clips_per_video < 1:
        raise ParityError(f"clips per video must be at least 1, got {cfg.clips_per_video}")
    split = cfg.split.strip().lower()
    if split not in SPLITS:
        raise ParityError(f"split {cfg.split!r}: choose one of {', '.join(SPLITS)} (EchoNet FileList.csv Split)")
    conditions = sweep_conditions(cfg.echo_sweep) if cfg.sweep else [(CLEAN, None)]

    root = echonet_root(data)
    items = echo_split_items(root, split)
    if cfg.limit is not None:
        items = items[: cfg.limit]
    truth = echo_truth(items, teacher_out, root)
    golden = run_golden(opened, cfg, say)
    engines, gated, skipped = collect_engines(teacher_dir, teacher_pre, student_dir, student_pre, opened,
                                              extra_stages, cfg, **engine_options(cfg))
    decoders = {name: teacher_out if name == TEACHER else student_out for name in engines}
    stages = {name: EchoStage(engine, pre, decoders[name]) for name, (engine, pre) in engines.items()}
    say(f"{len(items)} {split.upper()} videos x {cfg.clips_per_video} clips, {len(conditions)} condition(s)")
    per_condition = run_echo_stages(items, stages, conditions, [TEACHER, STUDENT, *gated], cfg.clips_per_video,
                                    cfg.seed, cfg.latency_runs, say)
    rows = sweep_rows(per_condition, truth, decoders, conditions) if cfg.sweep else None

    gates, source = resolved_gates(cfg, opened.manifest if opened is not None else None)
    say("metrics and bootstrap")
    result = evaluate_outputs(truth, per_condition[CLEAN], decoders, gated, gates, cfg.n_boot, cfg.seed, source,
                              rows)
    result.data = {"root": str(root), "split": split, "videos": len(items),
                   "clips_per_video": cfg.clips_per_video, "video_names": [Path(it.path).name for it in items],
                   "synthetic": (root / "SYNTHETIC.txt").is_file(),
                   "preprocessing": {name: stage.pre.to_dict() for name, stage in stages.items()}}
    if teacher_out.kind == "regression":
        result.data["truth"] = {"mean": float(np.mean(truth)), "std": float(np.std(truth)),
                                "min": float(np.min(truth)), "max": float(np.max(truth))}
    else:
        result.data["truth"] = {name: int(np.sum(truth == c)) for c, name in enumerate(teacher_out.names)}
    return finish_result(result, opened, golden, skipped, cfg)


__all__ = ["EchoStage", "echonet_root", "run_echo_parity", "run_echo_stages", "stage_clips",
           "sweep_conditions", "sweep_rows"]
