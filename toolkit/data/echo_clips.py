"""Labelled echo clips drawn from an EchoNet-Dynamic layout folder: calibration, golden and validation sets.

The echo counterpart of `calibration.build_calibration_set`: a seeded list of (video, start frame) picks from
one split, preprocessed exactly as the model's `EchoPreprocessing` says, with the ground truth the model's
output needs (EF for a regression head, the view index for a view head) and a SHA-256 over the picks and
the preprocessing, so a manifest can name the data its INT8 ranges came from.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..tasks.outputs import TaskOutput
from .calibration import CalibrationSet, calibration_hash
from .echo import EchoItem, EchoPreprocessing, load_videos, read_echonet
from .errors import DataError


def echo_truth(items: list[EchoItem], output: TaskOutput | None, source: str | Path) -> np.ndarray | None:
    """EF values (n,) for a regression output, view indices (n,) for a one-of-N output, None without an output."""
    if output is None:
        return None
    if output.kind == "regression":
        return np.array([it.ef for it in items], dtype=np.float64)
    if output.kind == "multiclass":
        missing = sorted({str(it.view) for it in items if it.view not in output.names})
        if missing:
            raise DataError(f"{source}: view(s) {missing[:5]} are not among the model's classes {list(output.names)} "
                            "(or FileList.csv has no View column)")
        return np.array([output.names.index(it.view) for it in items], dtype=np.int64)
    raise DataError(f"{source}: an echo model with a {output.kind} output has no ground truth in FileList.csv")


def echo_split_items(data: str | Path | None, split: str) -> list[EchoItem]:
    """The videos of one EchoNet split (train / val / test), with a clear error when there are none."""
    if data is None:
        raise DataError("echo calibration and evaluation need an EchoNet-Dynamic layout folder (FileList.csv + "
                        "Videos/): pass --data (e.g. a folder written by `jepa-edge echo synth`)")
    items = [it for it in read_echonet(data) if it.split == split]
    if not items:
        raise DataError(f"{data}/FileList.csv: no {split.upper()} videos")
    return items


def build_echo_clip_set(pre: EchoPreprocessing, data: str | Path | None, output: TaskOutput | None = None,
                        clips: int | None = 128, seed: int = 0, split: str = "train") -> CalibrationSet:
    """`clips` preprocessed clips (n, C, T, H, W) float32 from the `split` videos of an EchoNet folder.

    Videos are visited in a seeded order, round after round, each time at a seeded random start, so every
    video contributes before any repeats. `clips=None`: one centre clip per video (validation sets)."""
    if clips is not None and clips < 1:
        raise DataError(f"a clip set needs at least one clip, got {clips}")
    items = echo_split_items(data, split)
    truth = echo_truth(items, output, data)
    videos, kept = load_videos(items, pre)
    rng = np.random.default_rng(seed)
    if clips is None:
        picks = list(range(len(videos)))
        starts = [max(0, pre.max_start(v.num_frames, v.fps) // 2) for v in videos]
    else:
        rounds = -(-clips // len(videos))
        picks = np.concatenate([rng.permutation(len(videos)) for _ in range(rounds)])[:clips].tolist()
        starts = [int(rng.integers(0, pre.max_start(videos[i].num_frames, videos[i].fps) + 1)) for i in picks]
    out = np.stack([pre.clip(videos[i], start, resized=True).numpy() for i, start in zip(picks, starts, strict=True)])
    names = [Path(kept[i].path).name for i in picks]
    return CalibrationSet(windows=out.astype(np.float32, copy=False),
                          labels=None if truth is None else truth[picks], classes=tuple(output.names) if output else (),
                          record_ids=names, offsets=[int(s) for s in starts], seed=seed,
                          sha256=calibration_hash(names, [int(s) for s in starts], pre))


__all__ = ["build_echo_clip_set", "echo_split_items", "echo_truth"]
