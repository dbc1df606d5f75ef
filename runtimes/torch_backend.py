"""The reference back end: a classifier model folder run in plain torch, FP32 on CPU (or a given device)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..models.checkpoint import load_classifier
from .base import OUTPUT_NAMES, as_input, profile_setting


class TorchEngine:
    """Classifier(x) -> (logits, embedding), no autograd; the numbers every other back end is compared to."""

    name = "torch"

    def __init__(self, model: torch.nn.Module, meta: dict[str, Any], path: Path, device: str = "cpu",
                 threads: int | None = None) -> None:
        self.model = model.to(device).eval()
        self.meta = meta
        self.path = path
        self.device = device
        if threads:
            torch.set_num_threads(int(threads))
        from ..modality import modality_of

        enc = meta.get("encoder", {})
        try:
            self.input_shape: tuple[int | None, ...] | None = (None, *modality_of(meta).input_shape(enc))
        except (KeyError, ValueError):  # a spec without the fields its modality reads: let the model say
            self.input_shape = None

    @classmethod
    def load(cls, path: str | Path, device_profile: Any = None, device: str = "cpu", threads: int | None = None,
             **options: Any) -> TorchEngine:
        model, meta = load_classifier(path)
        threads = threads or profile_setting(device_profile, "threads")
        return cls(model, meta, Path(path), device=device, threads=threads)

    def outputs(self, x: np.ndarray) -> dict[str, np.ndarray]:
        arr = as_input(x, self.input_shape, self.path)
        with torch.inference_mode():
            outs = self.model(torch.from_numpy(arr).to(self.device))
        return {name: t.float().cpu().numpy() for name, t in zip(OUTPUT_NAMES, outs, strict=True)}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.outputs(x)["logits"]

    def info(self) -> dict[str, Any]:
        return {"backend": "torch", "version": torch.__version__, "precision": "fp32", "device": self.device,
                "threads": torch.get_num_threads(), "file": str(self.path)}
