"""torch Datasets over preprocessed ECG arrays; crops are chosen by the sampler so runs are reproducible."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from ..data.errors import DataError
from .preprocess import EcgPreprocessing


def preprocess_set(signals: np.ndarray, fs: float, pre: EcgPreprocessing) -> np.ndarray:
    """Preprocess every record of (n, leads, samples) raw mV signals -> float32 at `pre.fs`."""
    return np.stack([pre(x, fs_in=fs) for x in signals]).astype(np.float32)


def filter_set(signals: np.ndarray, fs: float, pre: EcgPreprocessing) -> np.ndarray:
    """Resampled and band-passed (not yet normalised) signals, e.g. to fit normalisation constants."""
    return np.stack([pre.filter_record(x, fs) for x in signals])


class EcgWindows(Dataset):
    """Windows of `window` samples from preprocessed records (one array, or a list of different lengths).

    An item is either an index (the window at offset 0) or an `(index, offset)` pair, so that a seeded
    sampler, not worker-local randomness, decides the crop.
    """

    def __init__(self, signals: np.ndarray | list[np.ndarray], window: int, labels: np.ndarray | None = None) -> None:
        records = list(signals) if isinstance(signals, list) else signals
        for i, rec in enumerate(records):
            if rec.ndim != 2:
                raise DataError(f"record {i}: expected (leads, samples), got shape {rec.shape}")
            if rec.shape[-1] < window:
                raise DataError(f"record {i}: {rec.shape[-1]} samples is shorter than the window {window}")
        self.signals = records
        self.labels = labels
        self.window = window
        self.max_offsets = np.array([rec.shape[-1] - window for rec in records], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.signals)

    def __getitem__(self, item: int | tuple[int, int]):
        index, offset = item if isinstance(item, tuple) else (item, 0)
        x = torch.from_numpy(np.ascontiguousarray(self.signals[index][:, offset : offset + self.window]))
        if self.labels is None:
            return x
        return x, torch.from_numpy(self.labels[index])
