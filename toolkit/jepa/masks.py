"""ECG-JEPA masking: time-only masks (all leads together), masked region made of contiguous blocks.

Every sample of a batch keeps the same number of patches (the keep ratio is drawn once per batch), so
index tensors stack without padding. Sampling is driven by an explicit numpy Generator for exact replay.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..config import ConfigError


def _split_with_minimum(total: int, parts: int, minimum: int, rng: np.random.Generator) -> np.ndarray:
    """Random composition of `total` into `parts` integers, each >= minimum."""
    spare = total - parts * minimum
    if spare < 0:
        raise ConfigError(f"cannot split {total} into {parts} parts of at least {minimum}")
    cuts = np.sort(rng.integers(0, spare + 1, size=parts - 1))
    return np.diff(np.concatenate([[0], cuts, [spare]])) + minimum


@dataclass(frozen=True)
class EcgBlockMasks:
    """Masks over `num_patches` time patches: keep ratio in `keep_ratio`, masked blocks >= `min_block` long."""

    num_patches: int
    keep_ratio: tuple[float, float] = (0.15, 0.25)
    min_block: int = 10

    def sample_one(self, num_keep: int, rng: np.random.Generator) -> np.ndarray:
        """Boolean keep-mask of one sample: blocks of masked patches separated by kept gaps."""
        n, m = self.num_patches, self.num_patches - num_keep
        max_blocks = max(1, min(m // self.min_block, num_keep + 1))
        blocks = int(rng.integers(1, max_blocks + 1))
        block_sizes = _split_with_minimum(m, blocks, min(self.min_block, m), rng)
        # kept gaps: before, between (>= 1 so blocks stay separate) and after the blocks
        inner = blocks - 1
        extra = _split_with_minimum(num_keep - inner, blocks + 1, 0, rng)
        gaps = extra + np.r_[0, np.ones(inner, dtype=int), 0]
        keep = np.ones(n, dtype=bool)
        pos = 0
        for gap, size in zip(gaps[:-1], block_sizes, strict=True):
            pos += gap
            keep[pos : pos + size] = False
            pos += size
        return keep

    def __call__(self, batch: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(keep indices (B, K), target indices (B, N-K)) as int64 tensors."""
        ratio = rng.uniform(*self.keep_ratio)
        num_keep = min(self.num_patches - 1, max(1, math.ceil(ratio * self.num_patches)))
        masks = np.stack([self.sample_one(num_keep, rng) for _ in range(batch)])
        idx = np.arange(self.num_patches)
        keep = np.stack([idx[m] for m in masks])
        target = np.stack([idx[~m] for m in masks])
        return torch.from_numpy(keep), torch.from_numpy(target)
