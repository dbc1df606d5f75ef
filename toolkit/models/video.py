"""Video ViT for echo clips, V-JEPA 2 style: tubelet 2x16x16 Conv3d patches, 3D RoPE (or fixed 3D sin-cos).

Tokens are ordered time-major (t, then row, then column), as V-JEPA 2's PatchEmbed3D flattens them, so
that imported checkpoints and our 3D masks agree on what token i is. RoPE follows V-JEPA 2: each head's
channels are split into three equal even-sized parts rotated by the token's frame, row and column index
(the remaining channels are left alone), with the sine/cosine tables tiled the way the released weights
were trained. The encoder reuses the shared `TokenEncoder` blocks and the ONE size table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..config import ConfigError
from .vit import Block, Predictor, TokenEncoder, gather_tokens, init_weights, model_size, sincos_1d

POS_EMBEDS = ("rope", "sincos")


@dataclass(frozen=True)
class VideoEncoderSpec:
    """Everything needed to rebuild a video encoder from a checkpoint."""

    size: str = "vit-s"
    frames: int = 16
    image_size: int = 224
    patch: int = 16
    tubelet: int = 2
    channels: int = 3
    registers: int = 0
    pos_embed: str = "rope"  # V-JEPA 2 uses RoPE; "sincos" is V-JEPA 1's fixed 3D table
    bias: bool = False  # V-JEPA 2 checkpoints carry biases (qkv, proj, MLP, LayerNorm, patch conv)
    norm_eps: float = 1e-5  # V-JEPA 2 uses 1e-6

    def __post_init__(self) -> None:
        model_size(self.size)
        if self.pos_embed not in POS_EMBEDS:
            raise ConfigError(f"pos_embed {self.pos_embed!r} not one of {POS_EMBEDS}")
        if self.frames % self.tubelet:
            raise ConfigError(f"{self.frames} frames is not a multiple of the tubelet {self.tubelet}")
        if self.image_size % self.patch:
            raise ConfigError(f"image size {self.image_size} is not a multiple of the patch {self.patch}")
        if self.pos_embed == "rope" and (model_size(self.size).dim // model_size(self.size).heads) < 6:
            raise ConfigError("RoPE needs at least 6 channels per head")

    @property
    def grid(self) -> tuple[int, int, int]:
        """(time, rows, columns) of the token grid."""
        side = self.image_size // self.patch
        return self.frames // self.tubelet, side, side

    @property
    def num_patches(self) -> int:
        t, h, w = self.grid
        return t * h * w

    def to_dict(self) -> dict[str, Any]:
        return {"modality": "echo", **asdict(self)}


def grid_coordinates(grid: tuple[int, int, int]) -> torch.Tensor:
    """(N, 3) float (t, row, col) of every token in time-major order."""
    t, h, w = grid
    tt, hh, ww = torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij")
    return torch.stack([tt.flatten(), hh.flatten(), ww.flatten()], dim=1).float()


def sincos_3d(dim: int, grid: tuple[int, int, int]) -> np.ndarray:
    """Fixed 3D sin-cos table (N, dim): half the channels for time, a quarter each for rows and columns."""
    if dim % 8:
        raise ConfigError(f"3D sin-cos embedding needs a width divisible by 8, got {dim}")
    coords = grid_coordinates(grid).numpy()
    return np.concatenate([sincos_1d(dim // 2, coords[:, 0]), sincos_1d(dim // 4, coords[:, 1]),
                           sincos_1d(dim // 4, coords[:, 2])], axis=1)


class Rope3d(nn.Module):
    """V-JEPA 2's 3D rotary embedding on (B, heads, N, head_dim) queries/keys; register tokens stay unrotated."""

    def __init__(self, head_dim: int, registers: int = 0) -> None:
        super().__init__()
        self.part = 2 * ((head_dim // 3) // 2)
        self.registers = registers
        omega = 1.0 / 10000 ** (torch.arange(self.part // 2, dtype=torch.float32) / (self.part / 2))
        self.register_buffer("omega", omega, persistent=False)

    def rotate(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """Rotate adjacent channel pairs of x (B, H, N, d) by angles pos (B, N) * omega."""
        freq = pos.float()[:, None, :, None] * self.omega  # (B, 1, N, d/2); angles in fp32 even under bf16
        sin = freq.sin().repeat(1, 1, 1, 2).to(x.dtype)  # tiled (not interleaved) as the released weights
        cos = freq.cos().repeat(1, 1, 1, 2).to(x.dtype)
        pairs = x.unflatten(-1, (-1, 2))
        turned = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
        return x * cos + turned * sin

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None) -> torch.Tensor:
        if pos is None:
            raise ConfigError("RoPE needs token positions")
        r = self.registers
        body = x[:, :, r:]
        parts = [self.rotate(body[..., i * self.part : (i + 1) * self.part], pos[..., i]) for i in range(3)]
        parts.append(body[..., 3 * self.part :])
        rotated = torch.cat(parts, dim=-1)
        return torch.cat([x[:, :, :r], rotated], dim=2) if r else rotated


class VideoEncoder(TokenEncoder):
    """(B, channels, frames, H, W) -> (B, N, dim) tokens, N = frames/tubelet * (H/patch) * (W/patch)."""

    def __init__(self, spec: VideoEncoderSpec | None = None, **overrides: Any) -> None:
        spec = spec or VideoEncoderSpec(**overrides)
        super().__init__(spec.size, spec.num_patches, spec.registers)
        self.spec = spec
        s = self.size
        if spec.bias:  # V-JEPA 2 layout: biases everywhere (the shared blocks default to none)
            self.blocks = nn.ModuleList(Block(s.dim, s.heads, s.mlp_ratio, bias=True) for _ in range(s.depth))
            self.norm = nn.LayerNorm(s.dim, bias=True)
        for m in self.modules():
            if isinstance(m, nn.LayerNorm):
                m.eps = spec.norm_eps
        self.patch_embed = nn.Conv3d(spec.channels, s.dim, kernel_size=(spec.tubelet, spec.patch, spec.patch),
                                     stride=(spec.tubelet, spec.patch, spec.patch), bias=spec.bias)
        self.register_buffer("coords", grid_coordinates(spec.grid), persistent=False)
        if spec.pos_embed == "sincos":
            self.register_buffer("pos", torch.from_numpy(sincos_3d(s.dim, spec.grid)).float(), persistent=False)
            self.rope = None
        else:
            self.pos = None
            self.rope = Rope3d(s.dim // s.heads, spec.registers)
        init_weights(self, s.depth)
        if self.registers is not None:
            nn.init.trunc_normal_(self.registers, std=0.02)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        sp = self.spec
        expected = (sp.channels, sp.frames, sp.image_size, sp.image_size)
        if x.dim() != 5 or tuple(x.shape[1:]) != expected:
            raise ConfigError(f"video encoder expects (batch, {', '.join(map(str, expected))}) clips "
                             f"(batch, channels, frames, height, width), got {tuple(x.shape)}")
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)
        return tokens + self.pos if self.pos is not None else tokens

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens (B, N or K, D); `keep` (B, K) restricts the encoder to context tubelets (RoPE keeps positions)."""
        tokens = self.embed(x)
        pos = None
        if keep is not None:
            tokens = gather_tokens(tokens, keep)
            if self.rope is not None:
                pos = self.coords[keep]
        elif self.rope is not None:
            pos = self.coords.unsqueeze(0).expand(tokens.shape[0], -1, -1)
        if self.registers is not None:
            tokens = torch.cat([self.registers.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        for block in self.blocks:
            if self.grad_checkpointing and self.training:
                tokens = checkpoint(block, tokens, self.rope, pos, use_reentrant=False)
            else:
                tokens = block(tokens, self.rope, pos)
        tokens = self.norm(tokens)
        return tokens[:, self.num_registers :]


def video_predictor(encoder: VideoEncoder) -> Predictor:
    """JEPA predictor over the encoder's token grid (fixed 3D sin-cos positions at the predictor width)."""
    size = encoder.size
    return Predictor(size, torch.from_numpy(sincos_3d(size.pred_dim, encoder.spec.grid)))


def build_video_encoder(spec: dict[str, Any] | VideoEncoderSpec) -> VideoEncoder:
    """Rebuild from a spec dict (as stored in meta.json; `modality` may be present or already removed)."""
    if isinstance(spec, VideoEncoderSpec):
        return VideoEncoder(spec)
    spec = {k: v for k, v in dict(spec).items() if k != "modality"}
    known = {f.name for f in fields(VideoEncoderSpec)}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise ConfigError(f"unknown video encoder field(s) {unknown}; known: {sorted(known)}")
    return VideoEncoder(VideoEncoderSpec(**spec))
