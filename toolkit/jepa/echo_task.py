"""The echo modality for the shared JEPA trainer: videos, an EchoNet-Dynamic folder, an echo pack, or synthetic clips.

Options come through `cfg.extra`: frames (16), fps (8), size (112; 224 for teachers), videos (synthetic
count, 64), seed_videos, pos_embed ("rope"), long_range_prob (0.5), perturb_prob (0: physics-informed
augmentation off). Videos are decoded and resized once into host RAM as uint8; the trainer's seeded
sampler picks (video, start frame) pairs, so runs resume exactly like ECG ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..config import ConfigError
from ..data.echo import EchoPreprocessing, EchoVideo, index_folder, load_videos
from ..data.echo_perturb import EchoPerturbation
from ..data.errors import DataError, SkipReport
from ..data.pack import is_pack
from ..data.packed import EpochPlan, PackedClips
from ..data.synthetic_echo import SyntheticEchoConfig, synthetic_dataset
from ..models.video import VideoEncoder, VideoEncoderSpec, video_predictor
from .config import PretrainConfig
from .masks3d import MultiblockMasks3d
from .sampling import BatchPlan, RandomWindows
from .task import JepaTask

EXTRA_KEYS = {"frames", "fps", "size", "videos", "seed_videos", "pos_embed", "long_range_prob", "perturb_prob",
              "seconds"}


class EchoClips(Dataset):
    """Clips from decoded videos (uint8 at the model size); an item is an index or an (index, start frame) pair."""

    def __init__(self, videos: list[EchoVideo], pre: EchoPreprocessing, perturb_prob: float = 0.0,
                 seed: int = 0) -> None:
        if not videos:
            raise DataError("no videos to cut clips from")
        self.videos, self.pre = videos, pre
        self.max_offsets = np.array([pre.max_start(v.num_frames, v.fps) for v in videos], dtype=np.int64)
        short = [v.path for v, m in zip(videos, self.max_offsets, strict=True) if m < 0]
        if short:
            raise DataError(f"{short[0]}: too short for a {pre.frames}-frame clip at {pre.fps:g} fps "
                            f"({len(short)} such video(s))")
        self.perturb_prob, self.seed = perturb_prob, seed

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, item: int | tuple[int, int]) -> torch.Tensor:
        index, start = item if isinstance(item, tuple) else (item, int(self.max_offsets[item]) // 2)
        video = self.videos[index]
        idx = self.pre.frame_indices(video.num_frames, video.fps, start, video.path)
        frames = video.frames[idx]
        if self.perturb_prob > 0:  # deterministic in (seed, video, start): a resumed run sees the same clip
            rng = np.random.default_rng([self.seed, index, start, 7])
            if rng.random() < self.perturb_prob:
                kind = "depth" if rng.random() < 0.5 else "shadow"
                frames = EchoPerturbation(kind, int(rng.integers(1, 4)))(frames, rng)
        return self.pre.normalise(frames)


def synthetic_videos(count: int, pre: EchoPreprocessing, seed: int = 0, seconds: float = 3.0) -> list[EchoVideo]:
    """Synthetic echo videos (already at the model size), long enough for one clip at any source rate."""
    cfg = SyntheticEchoConfig(size=pre.size, seconds=max(seconds, pre.clip_seconds + 0.25))
    return [EchoVideo(v.frames, v.fps, f"<synthetic {i}>") for i, v in enumerate(synthetic_dataset(count, seed, cfg))]


def load_pretraining_videos(data: str | Path | None, pre: EchoPreprocessing, extra: dict[str, Any],
                            skip_bad: bool = False, max_records: int | None = None) -> tuple[list[EchoVideo], dict]:
    """Videos for pretraining and a data summary; EchoNet folders contribute their TRAIN split only."""
    if data is None or str(data) == "synthetic":
        count = int(extra.get("videos", 64))
        if max_records is not None:
            count = min(count, max_records)
        videos = synthetic_videos(count, pre, int(extra.get("seed_videos", 0)), float(extra.get("seconds", 3.0)))
        return videos, {"source": "synthetic echo (jepa_edge.data.synthetic_echo)", "records": len(videos)}
    root = Path(data)
    items = index_folder(root)
    if any(item.split for item in items):
        items = [item for item in items if item.split == "train"]
        source = f"EchoNet-Dynamic TRAIN split at {root}"
    else:
        source = f"video folder {root}"
    if max_records is not None:
        items = items[:max_records]
    report = SkipReport()
    videos, _ = load_videos(items, pre, skip_bad=skip_bad, report=report)
    if not videos:
        raise DataError(f"{root}: no usable videos ({report.summary()})")
    return videos, {"source": source, "records": len(videos), "load_report": report.to_dict()}


def build_echo_task(cfg: PretrainConfig) -> JepaTask:
    extra = dict(cfg.extra or {})
    unknown = sorted(set(extra) - EXTRA_KEYS)
    if unknown:
        raise ConfigError(f"unknown echo option(s) in extra: {unknown}; known: {sorted(EXTRA_KEYS)}")
    if cfg.data is not None and str(cfg.data) != "synthetic" and is_pack(cfg.data):
        # an echo pack (`jepa-edge data pack --modality echo`): its preprocessing wins, every clip slot per epoch
        clips: Dataset = PackedClips(cfg.data, max_records=cfg.max_records)
        pre, summary = clips.pre, clips.summary
        plan: BatchPlan = EpochPlan(clips.lengths, clips.spans, seed=cfg.seed)
    else:
        pre = EchoPreprocessing(frames=int(extra.get("frames", 16)), fps=float(extra.get("fps", 8.0)),
                                size=int(extra.get("size", 112)))
        videos, summary = load_pretraining_videos(cfg.data, pre, extra, cfg.skip_bad, cfg.max_records)
        clips = EchoClips(videos, pre, float(extra.get("perturb_prob", 0.0)), cfg.seed)
        plan = RandomWindows(clips.max_offsets, seed=cfg.seed)
    encoder = VideoEncoder(VideoEncoderSpec(size=cfg.model, frames=pre.frames, image_size=pre.size,
                                            channels=pre.channels, pos_embed=str(extra.get("pos_embed", "rope"))))
    masks = MultiblockMasks3d(encoder.spec.grid, long_range_prob=float(extra.get("long_range_prob", 0.5)))
    return JepaTask(
        encoder=encoder,
        predictor=video_predictor(encoder),
        windows=clips,
        plan=plan,
        masks=masks,
        meta={"modality": "echo", "preprocessing": pre.to_dict(), "data": summary},
    )
