"""Task heads on encoder tokens, and the one exportable classifier module (signal -> logits, embedding)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..config import ConfigError
from .vit import Block


class LinearHead(nn.Module):
    """Mean-pool tokens, LayerNorm, Linear: the cheapest probe and the default export head."""

    def __init__(self, dim: int, num_outputs: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.linear = nn.Linear(dim, num_outputs)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.norm(tokens.mean(dim=1))
        return self.linear(emb), emb

    @torch.no_grad()
    def standardise_(self, tokens: torch.Tensor, floor: float = 1e-2) -> LinearHead:
        """Set the LayerNorm's affine so the embedding has zero mean and unit variance over `tokens`.

        A frozen JEPA encoder's pooled, normalised features vary little between samples (per-dimension std
        ~0.02 around means ~0.8), so a Linear on them learns slowly and its scores crowd at the class prior,
        exactly where thresholds sit and INT8 rounding flips decisions. Per-dimension standardisation is
        itself an affine map, so it lives in the LayerNorm's weight and bias: the architecture and the
        exported graph stay the same. Dimensions that barely vary are scaled as if their std were `floor`
        times the median std, so they cannot amplify noise.
        """
        pooled = nn.functional.layer_norm(tokens.float().mean(dim=1), self.norm.normalized_shape, eps=self.norm.eps)
        mean, std = pooled.mean(dim=0), pooled.std(dim=0)
        std = std.clamp_min(float(std.median()) * floor + 1e-12)
        self.norm.weight.copy_(1.0 / std)
        self.norm.bias.copy_(-mean / std)
        return self


class AttentiveHead(nn.Module):
    """A learnable query cross-attends to the tokens (after optional self-attention blocks), then Linear.

    With `blocks=0` this is ECG-JEPA's one-query cross-attention pooler; V-JEPA 2's attentive probe
    uses 3 self-attention blocks before the cross-attention.
    """

    def __init__(self, dim: int, num_outputs: int, heads: int = 4, blocks: int = 0) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block(dim, heads, bias=True) for _ in range(blocks))
        self.query = nn.Parameter(torch.zeros(1, 1, dim))
        self.norm_kv = nn.LayerNorm(dim)
        self.cross = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.linear = nn.Linear(dim, num_outputs)
        nn.init.trunc_normal_(self.query, std=0.02)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for block in self.blocks:
            tokens = block(tokens)
        kv = self.norm_kv(tokens)
        pooled, _ = self.cross(self.query.expand(tokens.shape[0], -1, -1), kv, kv, need_weights=False)
        emb = self.norm(pooled[:, 0])
        return self.linear(emb), emb


def build_head(spec: dict[str, Any]) -> nn.Module:
    kind = spec.get("kind", "linear")
    if kind == "linear":
        return LinearHead(spec["dim"], spec["num_outputs"])
    if kind == "attentive":
        return AttentiveHead(spec["dim"], spec["num_outputs"], spec.get("heads", 4), spec.get("blocks", 0))
    raise ConfigError(f"unknown head kind {kind!r}; choose 'linear' or 'attentive'")


class Classifier(nn.Module):
    """Encoder + head as ONE module: preprocessed input -> (logits, embedding). This is what gets exported."""

    def __init__(self, encoder: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.encoder(x))
