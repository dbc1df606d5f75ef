"""The transformer parts shared by the ECG and echo models, and the one model-size table."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..config import ConfigError


@dataclass(frozen=True)
class ViTSize:
    """Encoder width/depth/heads and the JEPA predictor's, for one named size."""

    name: str
    dim: int
    depth: int
    heads: int
    pred_dim: int
    pred_depth: int
    pred_heads: int
    mlp_ratio: float = 4.0


# ECG-JEPA's XS/S/B (kweimann/ECG-JEPA), V-JEPA 2's L/H/g (facebookresearch/vjepa2 vit_large, vit_huge,
# vit_giant_xformers); vit-tiny is our smallest student. vit-g-16h is upstream's 16-head `vit_giant`, same weight
# shapes as vit-g: the head count is not stored in weights, so an import of a 1408-wide, 40-deep file needs a size.
MODEL_SIZES: dict[str, ViTSize] = {
    s.name: s
    for s in (
        ViTSize("vit-tiny", 192, 4, 3, 96, 4, 3),
        ViTSize("vit-xs", 192, 8, 4, 96, 8, 4),
        ViTSize("vit-s", 384, 8, 6, 192, 8, 6),
        ViTSize("vit-b", 768, 12, 12, 384, 12, 12),
        ViTSize("vit-l", 1024, 24, 16, 384, 12, 12),
        ViTSize("vit-h", 1280, 32, 16, 384, 12, 12),
        ViTSize("vit-g", 1408, 40, 22, 384, 12, 12, mlp_ratio=48 / 11),
        ViTSize("vit-g-16h", 1408, 40, 16, 384, 12, 12, mlp_ratio=48 / 11),
    )
}


def model_size(name: str) -> ViTSize:
    try:
        return MODEL_SIZES[name]
    except KeyError:
        raise ConfigError(f"unknown model size {name!r}; choose from {list(MODEL_SIZES)}") from None


def sincos_1d(dim: int, positions: np.ndarray) -> np.ndarray:
    """Fixed sine-cosine embedding (positions,) -> (positions, dim)."""
    if dim % 2:
        raise ConfigError(f"sin-cos embedding needs an even width, got {dim}")
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2))
    angles = np.outer(np.asarray(positions, dtype=np.float64), omega)
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


RotaryFn = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


class Attention(nn.Module):
    """Multi-head self-attention through F.scaled_dot_product_attention (flash / memory-efficient kernels)."""

    def __init__(self, dim: int, heads: int, bias: bool = False) -> None:
        super().__init__()
        if dim % heads:
            raise ConfigError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.proj = nn.Linear(dim, dim, bias=bias)

    def forward(self, x: torch.Tensor, rope: RotaryFn | None = None, pos: torch.Tensor | None = None) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if rope is not None:  # rotary positions (video encoders), applied per head to q and k
            q, k = rope(q, pos), rope(k, pos)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """Pre-LN transformer block without biases, GELU MLP (as ECG-JEPA)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, bias: bool = False) -> None:
        super().__init__()
        hidden = int(round(dim * mlp_ratio))
        self.norm1 = nn.LayerNorm(dim, bias=bias)
        self.attn = Attention(dim, heads, bias=bias)
        self.norm2 = nn.LayerNorm(dim, bias=bias)
        self.fc1 = nn.Linear(dim, hidden, bias=bias)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor, rope: RotaryFn | None = None, pos: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), rope, pos)
        return x + self.fc2(self.act(self.fc1(self.norm2(x))))


def init_weights(module: nn.Module, depth: int) -> None:
    """Truncated-normal init; residual projections scaled by depth (GPT-2 / ECG-JEPA convention)."""
    for name, m in module.named_modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv3d)):
            std = 0.02 / math.sqrt(2 * depth) if name.endswith(("fc2", "attn.proj")) else 0.02
            nn.init.trunc_normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def gather_tokens(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Select tokens (B, N, D) at per-sample positions (B, K) -> (B, K, D)."""
    return torch.gather(x, 1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class TokenEncoder(nn.Module):
    """Patch embedding + fixed positions + optional register tokens + blocks + final norm.

    Subclasses provide `patch_embed` (input -> (B, N, D)) and the (N, D) position table; the JEPA
    trainer, distillation and export only ever see this interface.
    """

    def __init__(self, size: str | ViTSize, num_patches: int, registers: int = 1) -> None:
        super().__init__()
        self.size = size if isinstance(size, ViTSize) else model_size(size)
        s = self.size
        self.num_patches = num_patches
        self.num_registers = registers
        self.registers = nn.Parameter(torch.zeros(1, registers, s.dim)) if registers else None
        self.blocks = nn.ModuleList(Block(s.dim, s.heads, s.mlp_ratio) for _ in range(s.depth))
        self.norm = nn.LayerNorm(s.dim, bias=False)
        self.grad_checkpointing = False

    @property
    def dim(self) -> int:
        return self.size.dim

    def embed(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens (B, N or K, D) for input x; `keep` (B, K) restricts the encoder to context patches."""
        tokens = self.embed(x)
        if keep is not None:
            tokens = gather_tokens(tokens, keep)
        if self.registers is not None:
            tokens = torch.cat([self.registers.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        for block in self.blocks:
            if self.grad_checkpointing and self.training:
                tokens = checkpoint(block, tokens, use_reentrant=False)
            else:
                tokens = block(tokens)
        tokens = self.norm(tokens)
        return tokens[:, self.num_registers :]


class Predictor(nn.Module):
    """Narrow transformer that predicts target-patch latents from context latents and target positions."""

    def __init__(self, size: str | ViTSize, pos_table: torch.Tensor) -> None:
        super().__init__()
        s = size if isinstance(size, ViTSize) else model_size(size)
        self.embed = nn.Linear(s.dim, s.pred_dim, bias=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, s.pred_dim))
        self.register_buffer("pos", pos_table.float(), persistent=False)  # (N, pred_dim)
        self.blocks = nn.ModuleList(Block(s.pred_dim, s.pred_heads, s.mlp_ratio) for _ in range(s.pred_depth))
        self.norm = nn.LayerNorm(s.pred_dim, bias=False)
        self.out = nn.Linear(s.pred_dim, s.dim, bias=False)
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        init_weights(self, s.pred_depth)
        self.grad_checkpointing = False

    def forward(self, context: torch.Tensor, keep: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """context (B, K, D) at positions keep (B, K) -> predictions (B, T, D) at positions target (B, T)."""
        b = context.shape[0]
        ctx = self.embed(context) + self.pos[keep]
        tgt = self.mask_token.expand(b, target.shape[1], -1) + self.pos[target]
        x = torch.cat([ctx, tgt], dim=1)
        for block in self.blocks:
            if self.grad_checkpointing and self.training:
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return self.out(self.norm(x[:, ctx.shape[1] :]))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
