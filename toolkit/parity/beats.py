"""Parity for beat models (modality ecg-beat): every stage streamed through the arrhythmia monitor on the MIT-BIH
test records (`tasks.beats.BEAT_SPLIT`), judged beat by beat and episode by episode.

Each stage (teacher, student FP32, the bundle's INT8 artefacts) runs in its own replay of the same records: the
same quality windows, the same detector and so the same beats; only the labels can differ. The beats every stage
labelled and the reference annotates as N / S / V (matched within EC57's 150 ms) are the rows the one-of-N
parity metrics see (`output_eval`: accuracy with paired CIs, argmax agreement, embedding cosine), so the profile's
one-of-N gates apply unchanged. Next to them: EC57 gross VEB / SVEB Se and +P per stage, and episode agreement
(bigeminy, trigeminy, VT) of every stage with the student FP32, in `result.data["stream"]`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..data.preprocess import EcgPreprocessing
from ..tasks.beats import BEAT_SPLIT, BeatContext, RrFusion, mitdb_dir
from ..tasks.ec57 import match_beats
from ..tasks.outputs import TaskOutput
from . import run as parity_run
from .evaluate import ParityError, StageOutputs
from .output_eval import check_same_task, evaluate_outputs
from .run import STUDENT, TEACHER, ParityConfig, ParityResult


def _beat_model(engine: Any, pre: EcgPreprocessing, meta: Mapping[str, Any], output: TaskOutput, name: str) -> Any:
    from jepa_edge.devices.stream.monitor import BeatModel

    fusion = RrFusion.from_dict(meta["rr_fusion"]) if meta.get("rr_fusion") else None
    return BeatModel(engine, pre, BeatContext(**meta.get("beat", {})), output, name, fusion)


def stage_rows(replays: Mapping[str, list[Any]], classes: list[str]) -> tuple[np.ndarray, dict[str, StageOutputs],
                                                                               list[dict[str, Any]]]:
    """Truth and each stage's (fused logits, embedding) over the beats every stage labelled that the reference
    annotates as one of `classes`; per record, how many beats that is."""
    from jepa_edge.devices.stream.monitor_eval import RecordReplay

    names = list(replays)
    first: list[RecordReplay] = replays[names[0]]
    truth: list[int] = []
    rows: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {n: ([], []) for n in names}
    per_record = []
    for i, ref in enumerate(first):
        match = match_beats(ref.ref_samples, ref.beats, ref.fs)  # reference beat -> detected beat index (or -1)
        ref_class = {int(ref.beats[j]): ref.ref_classes[k] for k, j in enumerate(match) if j >= 0}
        common = set(ref.outputs)
        for n in names[1:]:
            if not np.array_equal(replays[n][i].beats, ref.beats):
                raise ParityError(f"{ref.name}: stage {n!r} detected other beats than {names[0]!r}; the stages must "
                                  "stream the same record with the same detector")
            common &= set(replays[n][i].outputs)
        keep = sorted(b for b in common if ref_class.get(b) in classes)
        truth += [classes.index(ref_class[b]) for b in keep]
        for n in names:
            outs = replays[n][i].outputs
            rows[n][0].extend(outs[b][0] for b in keep)
            rows[n][1].extend(outs[b][1] for b in keep)
        per_record.append({"record": ref.name, "beats_detected": len(ref.beats), "beats_compared": len(keep),
                           "reference": {c: sum(1 for b in keep if ref_class[b] == c) for c in classes}})
    if not truth:
        raise ParityError("no beat was labelled by every stage and annotated N / S / V: nothing to compare")
    stages = {n: StageOutputs(n, np.stack(rows[n][0]), np.stack(rows[n][1])) for n in names}
    return np.asarray(truth, dtype=np.int64), stages, per_record


def stream_figures(replays: Mapping[str, list[Any]]) -> dict[str, Any]:
    """EC57 gross VEB / SVEB statistics per stage, and each stage's beat and episode agreement with the student
    FP32 (the reference replay), over the whole replay (withheld beats count as misses)."""
    from jepa_edge.devices.stream import monitor_eval as me

    out: dict[str, Any] = {}
    for name, reps in replays.items():
        entry: dict[str, Any] = {}
        for target, label in (("V", "veb"), ("S", "sveb")):
            c = me.gross(me.ectopic_counts(r, target) for r in reps)
            entry[label] = c.to_dict()
        entry["withheld"] = sum(r.summary["beats"]["beats"]["withheld"] for r in reps)
        entry["real_time_factor_median"] = float(np.median([r.real_time_factor for r in reps]))
        if name != STUDENT and STUDENT in replays:
            pairs = list(zip(replays[STUDENT], reps, strict=True))
            entry["beat_agreement_vs_student_fp32"] = me.gross_beat_agreement(
                me.beat_agreement(a, b) for a, b in pairs)[0]
            episodes: dict[str, dict[str, Any]] = {}
            for rhythm in me.RHYTHMS:
                score = me.gross(me.episode_agreement(a, b)[rhythm] for a, b in pairs)
                episodes[rhythm] = {"student_fp32_episodes": score.ref_episodes, "found": score.ref_detected,
                                    "stage_episodes": score.test_episodes, "confirmed": score.test_true}
            entry["episodes_vs_student_fp32"] = episodes
        out[name] = entry
    return out


def run_beat_parity(teacher_dir: Path, teacher_meta: Mapping[str, Any], student_dir: Path | None,
                    student_meta: Mapping[str, Any] | None, opened: Any, data: str | Path | None,
                    cfg: ParityConfig, extra_stages: Mapping[str, str | Path] | None = None,
                    say: Callable[[str], None] = lambda _msg: None) -> ParityResult:
    """`run_parity` for beat models; see the module docstring. `cfg.limit` test records (all ten by default),
    `cfg.beat_seconds` of each (all of it by default)."""
    from jepa_edge.devices.stream import monitor_eval as me

    teacher_out = TaskOutput.from_meta(teacher_meta)
    teacher_pre = EcgPreprocessing.from_dict(teacher_meta["preprocessing"])
    if opened is not None:
        student_out, student_pre, student_src = opened.output, opened.preprocessing, opened.manifest["model"]
        check_same_task(teacher_out, student_out, f"bundle {opened.path}")
    if student_meta is not None:
        check_same_task(teacher_out, TaskOutput.from_meta(student_meta), f"student {student_dir}")
        if opened is None:
            student_out = TaskOutput.from_meta(student_meta)
            student_pre, student_src = EcgPreprocessing.from_dict(student_meta["preprocessing"]), student_meta
    root = mitdb_dir(data)
    records = list(BEAT_SPLIT["test"])[: cfg.limit]
    golden = parity_run.run_golden(opened, cfg, say)
    engines, gated, skipped = parity_run.collect_engines(teacher_dir, teacher_pre, student_dir, student_pre, opened,
                                              extra_stages, cfg, **parity_run.engine_options(cfg))
    decoders = {name: teacher_out if name == TEACHER else student_out for name in engines}
    replays: dict[str, list[Any]] = {}
    for name, (engine, pre) in engines.items():
        model = _beat_model(engine, pre, teacher_meta if name == TEACHER else student_src, decoders[name], name)
        replays[name] = []
        for k, rec in enumerate(records, 1):
            say(f"stage {name}: record {rec} ({k}/{len(records)})")
            replays[name].append(me.replay_record(root / rec, model, seconds=cfg.beat_seconds, keep_outputs=True))
    truth, stages, per_record = stage_rows(replays, list(teacher_out.names))
    gates, source = parity_run.resolved_gates(cfg, opened.manifest if opened is not None else None)
    say("metrics and bootstrap")
    result = evaluate_outputs(truth, stages, decoders, gated, gates, cfg.n_boot, cfg.seed, source)
    result.data = {"root": str(root), "records": records, "seconds_per_record": cfg.beat_seconds,
                   "split": "MIT-BIH inter-patient test records (jepa_edge.tasks.beats.BEAT_SPLIT)",
                   "beats": int(len(truth)), "per_record": per_record,
                   "rows": f"{len(truth)} beats of records {', '.join(records)}"
                           + (f" (first {cfg.beat_seconds:g} s of each)" if cfg.beat_seconds else "")
                           + ", each stage streamed through the arrhythmia monitor; a row is a beat every stage "
                             "labelled (not withheld) that the reference annotates N, S or V within 150 ms.",
                   "truth": {c: int(np.sum(truth == i)) for i, c in enumerate(teacher_out.names)},
                   "stream": stream_figures(replays)}
    return parity_run.finish_result(result, opened, golden, skipped, cfg)


__all__ = ["run_beat_parity", "stage_rows", "stream_figures"]
