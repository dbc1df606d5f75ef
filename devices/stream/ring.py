"""The ring buffer of model-rate samples windows are cut from (C: the one-window ring in jefw_stream.c)."""

from __future__ import annotations

import numpy as np


class Ring:
    """The last `keep` model-rate samples of several aligned arrays, addressed by absolute sample index."""

    def __init__(self, leads: int, keep: int) -> None:
        self.keep = keep
        cap = 2 * keep
        self.raw = np.zeros((leads, cap))
        self.band = np.zeros((leads, cap))
        self.norm = np.zeros((leads, cap), dtype=np.float32)
        self.flags = np.zeros(cap, dtype=np.uint8)
        self.base = 0  # absolute index of column 0
        self.end = 0  # columns used

    def append(self, raw: np.ndarray, band: np.ndarray, norm: np.ndarray, flags: np.ndarray) -> None:
        n = raw.shape[1]
        cap = self.raw.shape[1]
        if self.end + n > cap:
            start = max(0, self.end - self.keep)
            arrays = [self.raw, self.band, self.norm, self.flags]
            need = self.end - start + n
            if need > cap:  # a chunk bigger than the spare room: grow once
                cap = need + self.keep
                new = [np.zeros((*a.shape[:-1], cap), dtype=a.dtype) for a in arrays]
            else:
                new = arrays
            for dst, src in zip(new, arrays, strict=True):
                dst[..., : self.end - start] = src[..., start : self.end]
            self.raw, self.band, self.norm, self.flags = new
            self.base += start
            self.end -= start
        sl = slice(self.end, self.end + n)
        self.raw[:, sl], self.band[:, sl], self.norm[:, sl], self.flags[sl] = raw, band, norm, flags
        self.end += n

    def window(self, start: int, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        a = start - self.base
        if a < 0 or a + length > self.end:
            raise AssertionError(f"window {start}+{length} not in ring [{self.base}, {self.base + self.end})")
        sl = slice(a, a + length)
        return self.raw[:, sl], self.band[:, sl], self.norm[:, sl], self.flags[sl]

