"""How the JEPA student and its EMA target are spread over ranks (DDP or FSDP2), and what that means for the
EMA update and for saving.

FSDP2 (`fully_shard`) shards every parameter along dim 0 over the ranks, one group per transformer block plus
one for the rest. The target is sharded exactly like the context encoder, so the EMA update runs shard to
shard on each rank's local pieces (no gather), and saving gathers full tensors collectively.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.tensor import DTensor

from ..config import ConfigError
from .distributed import DistInfo

# full (gathered) tensors, moved to CPU; rank 0 holds them, the other ranks get an empty dict
FULL_STATE = StateDictOptions(full_state_dict=True, cpu_offload=True)
LARGE_SIZES = ("vit-l", "vit-g")  # sizes that FSDP shards by default when several ranks run


def wants_fsdp(setting: str, info: DistInfo, size_name: str) -> bool:
    """`fsdp` = "on" / "off" / "auto" (auto: FSDP for vit-l and vit-g when several ranks run)."""
    if setting not in ("on", "off", "auto"):
        raise ConfigError(f"fsdp must be 'on', 'off' or 'auto', got {setting!r}")
    return info.enabled and (setting == "on" or (setting == "auto" and size_name in LARGE_SIZES))


def shard(module: nn.Module) -> nn.Module:
    """FSDP2 in place: one group per transformer `Block`, then the root (patch embedding, norms, the rest)."""
    from torch.distributed.fsdp import fully_shard

    for sub in module.modules():
        if sub.__class__.__name__ == "Block":
            fully_shard(sub)
    return fully_shard(module)


def wrap_student(student: nn.Module, info: DistInfo, fsdp: bool) -> nn.Module:
    """The module to call forward on: `student` itself (one process or FSDP, sharded in place) or a DDP wrapper."""
    if not info.enabled:
        return student
    if fsdp:
        return shard(student)
    from torch.nn.parallel import DistributedDataParallel as DDP

    return DDP(student, device_ids=[info.local_rank] if info.device.type == "cuda" else None)


def after_no_grad_forward(module: nn.Module) -> None:
    """FSDP2 keeps the root's parameters gathered after forward, expecting a backward to free them; the target
    never runs backward, so reshard it here (otherwise its root parameters stay plain full tensors)."""
    reshard = getattr(module, "reshard", None)
    if callable(reshard):
        reshard()


def _local(p: torch.Tensor) -> torch.Tensor:
    return p.to_local() if isinstance(p, DTensor) else p


@torch.no_grad()
def ema_update(target: nn.Module, source: nn.Module, momentum: float) -> None:
    """target <- momentum * target + (1 - momentum) * source, on each rank's local shards when sharded."""
    for (name, t), s in zip(target.named_parameters(), source.parameters(), strict=True):
        t_local, s_local = _local(t), _local(s.detach())
        if isinstance(t, DTensor) != isinstance(s, DTensor) or t_local.shape != s_local.shape:
            raise RuntimeError(f"EMA: target and context encoder are sharded differently at {name} "
                               f"({type(t).__name__} {tuple(t_local.shape)} vs {type(s).__name__} "
                               f"{tuple(s_local.shape)})")
        t_local.lerp_(s_local, 1.0 - momentum)


def full_state_dict(module: nn.Module) -> dict[str, Any]:
    """Full tensors of a possibly FSDP-sharded module (a collective: every rank must call it; rank 0 gets the
    tensors, the others an empty dict). Plain modules return their own state dict on CPU."""
    from torch.distributed.fsdp import FSDPModule

    if isinstance(module, FSDPModule):
        return get_model_state_dict(module, options=FULL_STATE)
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}
