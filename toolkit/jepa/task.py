"""What a modality hands the shared JEPA trainer (`JepaTask`), apart from the trainer so tasks need not import it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ..models.vit import TokenEncoder
from .sampling import BatchPlan

MaskSampler = Callable[[int, np.random.Generator], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class JepaTask:
    """What a modality provides to the shared trainer."""

    encoder: TokenEncoder
    predictor: nn.Module
    windows: Dataset  # items are (record, offset) -> tensor
    plan: BatchPlan
    masks: MaskSampler
    meta: dict[str, Any]  # written into the exported encoder's meta.json (preprocessing, data summary)
