"""What a teacher and its student each see of the same example, for distillation, per modality.

The teacher always sees its own full input; the student may see less of the same moment: a subset of
leads or longer patches (ECG), fewer frames over the same span, a coarser tubelet or a smaller image
(echo). Items are `(index, offset)` pairs chosen by the trainer's seeded sampler and give
`(index, offset, teacher_input, student_input)`, so a killed run resumes exactly and cached teacher
outputs can be found by key. `Modality.paired_inputs` is how the distillation stage reaches these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .data.datasets import EcgWindows
from .data.echo import EchoPreprocessing, EchoVideo
from .data.errors import DataError
from .data.preprocess import EcgPreprocessing

ECG_OPTIONS = ("leads", "patch", "registers")
ECHO_OPTIONS = ("frames", "tubelet", "image_size")


class PairingError(DataError):
    """A student option that cannot be paired with this teacher (wrong modality, not a coarser grid, ...)."""


@dataclass
class PairedInputs:
    dataset: Dataset  # item (index, offset) -> (index, offset, teacher input, student input); has max_offsets
    teacher_pre: Any
    student_pre: Any
    student_spec: dict[str, Any]  # encoder spec dict (with "modality"), size filled in by the caller
    summary: dict[str, Any]


def _refuse_foreign(options: Mapping[str, Any], allowed: Sequence[str], modality: str) -> dict[str, Any]:
    given = {k: v for k, v in options.items() if v is not None}
    foreign = sorted(set(given) - set(allowed))
    if foreign:
        raise PairingError(f"student option(s) {foreign} do not apply to {modality} teachers; "
                           f"{modality} students take {list(allowed)}")
    return given


# -- ECG ---------------------------------------------------------------------------------------------
def student_preprocessing(teacher_pre: EcgPreprocessing, leads: Sequence[str] | None) -> tuple[EcgPreprocessing,
                                                                                                  list[int]]:
    """The teacher's preprocessing restricted to a lead subset (same filter, matching normalisation constants)."""
    if leads is None:
        return teacher_pre, list(range(teacher_pre.num_leads))
    leads = tuple(leads)
    missing = [name for name in leads if name not in teacher_pre.leads]
    if missing or not leads:
        raise PairingError(f"student leads {list(leads)} must be a non-empty subset of the teacher's "
                           f"{list(teacher_pre.leads)} (missing {missing})")
    idx = [teacher_pre.leads.index(name) for name in leads]
    pick = (lambda v: tuple(v[i] for i in idx) if v is not None else None)  # noqa: E731
    return replace(teacher_pre, leads=leads, mean=pick(teacher_pre.mean), std=pick(teacher_pre.std),
                   _sos_cache={}), idx


class EcgPairs(EcgWindows):
    """ECG windows; the student's input is the same window on its lead subset."""

    def __init__(self, signals: list[np.ndarray], window: int, lead_index: list[int]) -> None:
        super().__init__(signals, window)
        self.lead_index = lead_index

    def __getitem__(self, item: int | tuple[int, int]):
        index, offset = item if isinstance(item, tuple) else (item, 0)
        x = super().__getitem__((index, offset))
        return index, offset, x, x[self.lead_index]


def ecg_pairs(teacher_meta: Mapping[str, Any], options: Mapping[str, Any], data: str | Path | None,
              skip_bad: bool = False, max_records: int | None = None) -> PairedInputs:
    from .jepa.ecg_task import load_pretraining_signals

    opts = _refuse_foreign(options, ECG_OPTIONS, "ecg")
    tpre = EcgPreprocessing.from_dict(teacher_meta["preprocessing"])
    if tpre.mean is None or tpre.std is None:
        raise PairingError("teacher preprocessing has no fitted normalisation constants")
    spre, lead_index = student_preprocessing(tpre, opts.get("leads"))
    tspec = teacher_meta["encoder"]
    patch = int(opts.get("patch") or tspec["patch"])
    if patch % tspec["patch"]:
        raise PairingError(f"student patch {patch} must be a multiple of the teacher's {tspec['patch']} samples")
    if tspec["samples"] % patch:
        raise PairingError(f"window of {tspec['samples']} samples is not a multiple of the student patch {patch}")
    records, summary = load_pretraining_signals(data, tpre, skip_bad, max_records)
    dataset = EcgPairs([tpre.normalise(r) for r in records], tpre.window, lead_index)
    spec = {"modality": "ecg", "leads": len(lead_index), "samples": tspec["samples"], "patch": patch,
            "registers": int(opts.get("registers", 1))}
    return PairedInputs(dataset, tpre, spre, spec, summary)


def beat_pairs(teacher_meta: Mapping[str, Any], options: Mapping[str, Any], data: str | Path | None,
               max_beats: int | None = None) -> PairedInputs:
    """Beat windows of the MIT-BIH training records (`tasks.beats.BEAT_SPLIT`), one item per beat, every AAMI
    class; an ECG student option (lead subset, coarser patch) applies as for ECG windows."""
    from .tasks.beats import BeatContext, labelled_beats

    opts = _refuse_foreign(options, ECG_OPTIONS, "ecg-beat")
    tpre = EcgPreprocessing.from_dict(teacher_meta["preprocessing"])
    spre, lead_index = student_preprocessing(tpre, opts.get("leads"))
    tspec = teacher_meta["encoder"]
    patch = int(opts.get("patch") or tspec["patch"])
    if patch % tspec["patch"] or tspec["samples"] % patch:
        raise PairingError(f"student patch {patch} must be a multiple of the teacher's {tspec['patch']} samples and "
                           f"divide the {tspec['samples']}-sample window")
    context = BeatContext(**teacher_meta.get("beat", {}))
    beats = labelled_beats(tpre, data, "train", max_beats, context=context, classes=("N", "S", "V", "F", "Q"))
    dataset = EcgPairs(list(beats.windows), tpre.window, lead_index)
    spec = {"modality": "ecg", "leads": len(lead_index), "samples": tspec["samples"], "patch": patch,
            "registers": int(opts.get("registers", 1))}
    summary = {"source": "MIT-BIH training records (beat windows)", "records": beats.records, "beats": len(beats)}
    return PairedInputs(dataset, tpre, spre, spec, summary)


# -- echo --------------------------------------------------------------------------------------------
class EchoPairs(Dataset):
    """Clips cut at the same start from videos held at the teacher's size; the student's clip covers the same
    span with its own frame count and size (resized from the teacher's frames)."""

    def __init__(self, videos: list[EchoVideo], teacher_pre: EchoPreprocessing, student_pre: EchoPreprocessing) -> None:
        if not videos:
            raise DataError("no videos to cut clips from")
        self.videos, self.tpre, self.spre = videos, teacher_pre, student_pre
        self.max_offsets = np.array([teacher_pre.max_start(v.num_frames, v.fps) for v in videos], dtype=np.int64)
        short = [v.path for v, m in zip(videos, self.max_offsets, strict=True) if m < 0]
        if short:
            raise DataError(f"{short[0]}: too short for a {teacher_pre.frames}-frame clip at {teacher_pre.fps:g} fps "
                            f"({len(short)} such video(s))")

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, item: int | tuple[int, int]):
        index, start = item if isinstance(item, tuple) else (item, int(self.max_offsets[item]) // 2)
        video = self.videos[index]
        teacher = self.tpre.normalise(video.frames[self.tpre.frame_indices(video.num_frames, video.fps, start,
                                                                           video.path)])
        frames = video.frames[self.spre.frame_indices(video.num_frames, video.fps, start, video.path)]
        if self.spre.size != self.tpre.size:
            frames = self.spre.resize_frames(frames)
        return index, start, teacher, self.spre.normalise(frames)


def echo_pairs(teacher_meta: Mapping[str, Any], options: Mapping[str, Any], data: str | Path | None,
               skip_bad: bool = False, max_records: int | None = None) -> PairedInputs:
    from .jepa.echo_task import load_pretraining_videos

    opts = _refuse_foreign(options, ECHO_OPTIONS, "echo")
    tspec = dict(teacher_meta["encoder"])
    if teacher_meta.get("preprocessing", {}).get("kind") == "echo":
        tpre = EchoPreprocessing.from_dict(teacher_meta["preprocessing"])
    else:  # an imported V-JEPA 2 encoder: clips as its spec says, at V-JEPA 2's 8 fps... unless told otherwise
        tpre = EchoPreprocessing(frames=tspec["frames"], size=tspec["image_size"], channels=tspec["channels"])
    frames = int(opts.get("frames") or tspec["frames"])
    tubelet = int(opts.get("tubelet") or tspec["tubelet"])
    size = int(opts.get("image_size") or tspec["image_size"])
    if frames > tpre.frames or size > tpre.size or tubelet < tspec["tubelet"]:
        raise PairingError(f"student clip {frames} frames x {size} px, tubelet {tubelet}: a student sees at most "
                           f"the teacher's {tpre.frames} frames x {tpre.size} px with a tubelet of at least "
                           f"{tspec['tubelet']}")
    if frames % tubelet or size % int(tspec["patch"]):
        raise PairingError(f"student clip {frames} frames x {size} px does not tile into {tubelet}-frame tubelets "
                           f"of {tspec['patch']} px")
    # same clip span: fewer frames are sampled at a proportionally lower rate
    spre = replace(tpre, frames=frames, size=size, fps=tpre.fps * (frames - 1) / (tpre.frames - 1)
                   if tpre.frames > 1 and frames > 1 else tpre.fps)
    videos, summary = load_pretraining_videos(data, tpre, {}, skip_bad, max_records)
    spec = {"modality": "echo", "frames": frames, "image_size": size, "patch": int(tspec["patch"]),
            "tubelet": tubelet, "channels": int(tspec["channels"]), "pos_embed": "rope"}
    return PairedInputs(EchoPairs(videos, tpre, spre), tpre, spre, spec, summary)


def align_tokens(teacher_tokens: torch.Tensor, student_grid: int | Sequence[int],
                 teacher_grid: Sequence[int] | None = None) -> torch.Tensor:
    """Average-pool teacher tokens (B, Nt, D) onto a coarser student grid (B, Ns, D), axis by axis.

    Grids are (time,) for ECG and (time, rows, columns) for video, tokens ordered time-major; an int
    `student_grid` means a 1D grid of that many tokens."""
    import torch.nn.functional as F

    n = teacher_tokens.shape[1]
    sgrid = (student_grid,) if isinstance(student_grid, int) else tuple(student_grid)
    tgrid = tuple(teacher_grid) if teacher_grid is not None else (n,)
    if int(np.prod(tgrid)) != n or len(tgrid) != len(sgrid):
        raise PairingError(f"teacher grid {tgrid} does not match {n} tokens or the student grid {sgrid}")
    if sgrid == tgrid:
        return teacher_tokens
    if any(s > t for s, t in zip(sgrid, tgrid, strict=True)):
        raise PairingError(f"student has more tokens along an axis ({sgrid}) than the teacher ({tgrid}); a student "
                           "sees the same input on the same or a coarser token grid")
    x = teacher_tokens.transpose(1, 2).reshape(teacher_tokens.shape[0], -1, *tgrid)
    pool = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}[len(tgrid)]
    return pool(x, sgrid).flatten(2).transpose(1, 2)


__all__ = ["EcgPairs", "EchoPairs", "PairedInputs", "PairingError", "align_tokens", "echo_pairs", "ecg_pairs",
           "student_preprocessing"]
