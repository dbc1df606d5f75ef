"""ECG-JEPA-style encoder: one Conv1d over all leads, 50 ms patches, fixed 1D sin-cos positions, a register."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from ..config import ConfigError
from .vit import Predictor, TokenEncoder, ViTSize, init_weights, model_size, sincos_1d


@dataclass(frozen=True)
class EcgEncoderSpec:
    """Everything needed to rebuild an ECG encoder from a checkpoint."""

    size: str = "vit-s"
    leads: int = 12
    samples: int = 5000
    patch: int = 25  # samples per token: 50 ms at 500 Hz
    registers: int = 1

    @property
    def num_patches(self) -> int:
        return self.samples // self.patch

    def to_dict(self) -> dict:
        return {"modality": "ecg", **asdict(self)}


class EcgEncoder(TokenEncoder):
    """(B, leads, samples) -> (B, samples/patch, dim); each token mixes all leads over one time patch."""

    def __init__(self, spec: EcgEncoderSpec | None = None, **overrides) -> None:
        spec = spec or EcgEncoderSpec(**overrides)
        if spec.samples % spec.patch:
            raise ConfigError(f"window of {spec.samples} samples is not a multiple of the patch {spec.patch}")
        super().__init__(spec.size, spec.num_patches, spec.registers)
        self.spec = spec
        self.patch_embed = nn.Conv1d(spec.leads, self.dim, kernel_size=spec.patch, stride=spec.patch, bias=False)
        pos = sincos_1d(self.dim, np.arange(spec.num_patches))
        self.register_buffer("pos", torch.from_numpy(pos).float(), persistent=False)
        init_weights(self, self.size.depth)
        if self.registers is not None:
            nn.init.trunc_normal_(self.registers, std=0.02)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] != self.spec.leads or x.shape[2] != self.spec.samples:
            raise ConfigError(
                f"ECG encoder expects (batch, {self.spec.leads} leads, {self.spec.samples} samples), "
                f"got {tuple(x.shape)}"
            )
        return self.patch_embed(x).transpose(1, 2) + self.pos


def ecg_predictor(encoder: EcgEncoder) -> Predictor:
    """JEPA predictor whose position table matches the encoder's token grid."""
    size: ViTSize = encoder.size
    pos = sincos_1d(size.pred_dim, np.arange(encoder.num_patches))
    return Predictor(size, torch.from_numpy(pos))


def build_ecg_encoder(size: str = "vit-s", **spec) -> EcgEncoder:
    model_size(size)  # clear error for an unknown size
    return EcgEncoder(EcgEncoderSpec(size=size, **spec))
