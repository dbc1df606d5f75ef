"""V-JEPA 2 multiblock masks on a (time, rows, columns) token grid.

Two mask families, as V-JEPA 2: short-range (8 blocks, each ~15 % of the frame area) and long-range
(2 blocks, each ~70 %); aspect ratio 0.75-1.5; every block spans the whole clip in time; the union of
the blocks is the prediction target and the context is its complement. V-JEPA 2 runs both families in
one step through separate predictor passes; the shared trainer takes one (keep, target) pair per step, so
each step draws one family (probability `long_range_prob` for the long-range one). As in V-JEPA, the
block size is drawn once per batch and positions per sample, and every sample's keep / target sets are
cut (at random) to the batch minimum so index tensors stack without padding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..config import ConfigError


@dataclass(frozen=True)
class MaskFamily:
    blocks: int
    spatial_scale: float
    temporal_scale: float = 1.0


SHORT_RANGE = MaskFamily(blocks=8, spatial_scale=0.15)
LONG_RANGE = MaskFamily(blocks=2, spatial_scale=0.7)


@dataclass(frozen=True)
class MultiblockMasks3d:
    """Callable (batch, rng) -> (keep (B, K), target (B, T)) int64 token indices, time-major grid order."""

    grid: tuple[int, int, int]
    families: tuple[MaskFamily, ...] = (SHORT_RANGE, LONG_RANGE)
    long_range_prob: float = 0.5
    aspect_ratio: tuple[float, float] = (0.75, 1.5)
    min_keep_fraction: float = 0.05
    max_tries: int = 20

    def __post_init__(self) -> None:
        if len(self.grid) != 3 or min(self.grid) < 1:
            raise ConfigError(f"grid must be (time, rows, columns) >= 1, got {self.grid}")
        if not self.families:
            raise ConfigError("need at least one mask family")

    @property
    def num_patches(self) -> int:
        t, h, w = self.grid
        return t * h * w

    def block_size(self, family: MaskFamily, rng: np.random.Generator) -> tuple[int, int, int]:
        """(time, rows, columns) extent of this batch's blocks."""
        t, h, w = self.grid
        area = family.spatial_scale * h * w
        aspect = math.exp(rng.uniform(math.log(self.aspect_ratio[0]), math.log(self.aspect_ratio[1])))
        bh = int(round(math.sqrt(area * aspect)))
        bw = int(round(math.sqrt(area / aspect)))
        bt = max(1, int(round(family.temporal_scale * t)))
        return min(max(bt, 1), t), min(max(bh, 1), h), min(max(bw, 1), w)

    def sample_one(self, family: MaskFamily, size: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
        """Boolean (N,) target mask: union of `family.blocks` randomly placed blocks, leaving some context."""
        t, h, w = self.grid
        bt, bh, bw = size
        min_keep = max(1, int(math.ceil(self.min_keep_fraction * self.num_patches)))
        blocks = family.blocks
        for attempt in range(self.max_tries * family.blocks):
            masked = np.zeros((t, h, w), dtype=bool)
            for _ in range(blocks):
                t0 = int(rng.integers(0, t - bt + 1))
                r0 = int(rng.integers(0, h - bh + 1))
                c0 = int(rng.integers(0, w - bw + 1))
                masked[t0 : t0 + bt, r0 : r0 + bh, c0 : c0 + bw] = True
            if (~masked).sum() >= min_keep:
                return masked.reshape(-1)
            if attempt % self.max_tries == self.max_tries - 1 and blocks > 1:
                blocks -= 1  # the blocks keep covering everything: use fewer (V-JEPA shrinks likewise)
        # a single block still covers the grid: leave its first min_keep tokens as context
        masked = np.ones(self.num_patches, dtype=bool)
        masked[rng.choice(self.num_patches, size=min_keep, replace=False)] = False
        return masked

    def __call__(self, batch: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        family = self.families[-1] if (len(self.families) > 1 and rng.random() < self.long_range_prob) \
            else self.families[0]
        size = self.block_size(family, rng)
        masks = [self.sample_one(family, size, rng) for _ in range(batch)]
        num_keep = min(int((~m).sum()) for m in masks)
        num_target = min(int(m.sum()) for m in masks)
        idx = np.arange(self.num_patches)
        keep = np.stack([np.sort(rng.choice(idx[~m], size=num_keep, replace=False)) for m in masks])
        target = np.stack([np.sort(rng.choice(idx[m], size=num_target, replace=False)) for m in masks])
        return torch.from_numpy(keep.astype(np.int64)), torch.from_numpy(target.astype(np.int64))
