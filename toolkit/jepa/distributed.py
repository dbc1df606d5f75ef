"""torch.distributed set-up as torchrun provides it (single process when not launched by torchrun)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group torchrun describes in the environment (NCCL on GPUs, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistInfo(rank=rank, world=world, local_rank=local_rank, device=dev)


def mean_over_ranks(value: torch.Tensor, info: DistInfo) -> float:
    """A scalar averaged over ranks (equal per-rank batches: the global batch's mean); a collective."""
    if not (info.enabled and dist.is_initialized()):
        return float(value)
    total = value.detach().float().reshape(1).clone()
    dist.all_reduce(total)
    return float(total) / info.world


def all_gather_rows(rows: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Every rank's (n, ...) rows stacked in rank order, i.e. the global batch; a collective."""
    if not (info.enabled and dist.is_initialized()):
        return rows
    parts = [torch.empty_like(rows) for _ in range(info.world)]
    dist.all_gather(parts, rows.contiguous())
    return torch.cat(parts)


def barrier(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
