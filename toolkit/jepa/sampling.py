"""Which windows make up each step's global batch: a pure function of (seed, step).

Because the plan is stateless in the step, a resumed run reads exactly the batches the uninterrupted
run would have read, every DDP rank takes its slice of the same global batch, and DataLoader workers
only fetch what the sampler names.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

import numpy as np
from torch.utils.data import Sampler

from ..config import ConfigError

Window = tuple[int, int]  # (record index, start offset in samples)


class BatchPlan(Protocol):
    def global_batch(self, step: int, batch_size: int) -> list[Window]: ...


def step_rng(seed: int, step: int, stream: int = 0) -> np.random.Generator:
    """Independent generator for one step (stream 0: data, 1: masks)."""
    return np.random.default_rng([seed, step, stream])


class RandomWindows:
    """Uniformly random records and crop offsets, drawn afresh at every step."""

    def __init__(self, max_offsets: Sequence[int], seed: int = 0) -> None:
        self.max_offsets = np.asarray(max_offsets, dtype=np.int64)
        if len(self.max_offsets) == 0:
            raise ConfigError("no records to sample windows from")
        self.seed = seed

    def global_batch(self, step: int, batch_size: int) -> list[Window]:
        rng = step_rng(self.seed, step, 0)
        records = rng.integers(0, len(self.max_offsets), size=batch_size)
        offsets = (rng.random(batch_size) * (self.max_offsets[records] + 1)).astype(np.int64)
        return [(int(r), int(o)) for r, o in zip(records, offsets, strict=True)]


def rank_slice(items: list, rank: int, world: int) -> list:
    if len(items) % world:
        raise ConfigError(f"global batch of {len(items)} does not split evenly over {world} ranks")
    per = len(items) // world
    return items[rank * per : (rank + 1) * per]


class StepBatchSampler(Sampler[list[Window]]):
    """Yields this rank's slice of each step's global batch, for steps [start, stop)."""

    def __init__(self, plan: BatchPlan, batch_size: int, start: int, stop: int, rank: int = 0, world: int = 1) -> None:
        self.plan, self.batch_size = plan, batch_size
        self.start, self.stop, self.rank, self.world = start, stop, rank, world

    def __iter__(self) -> Iterator[list[Window]]:
        for step in range(self.start, self.stop):
            yield rank_slice(self.plan.global_batch(step, self.batch_size), self.rank, self.world)

    def __len__(self) -> int:
        return max(0, self.stop - self.start)
