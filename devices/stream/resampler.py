"""Causal polyphase resampling that equals `scipy.signal.resample_poly` sample for sample (C: jefw_dsp.c)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from scipy import signal

from jepa_edge.data.preprocess import RESAMPLE_HALF_LEN_PER_RATE, RESAMPLE_KAISER_BETA, RESAMPLE_MAX_DENOMINATOR


def resample_ratio(fs_in: float, fs_out: float) -> tuple[int, int]:
    """(up, down) exactly as `preprocess.resample` chooses them, so both paths use the same filter."""
    if fs_in == fs_out:
        return 1, 1
    ratio = Fraction(fs_out / fs_in).limit_denominator(RESAMPLE_MAX_DENOMINATOR)
    g = math.gcd(ratio.numerator, ratio.denominator)
    return ratio.numerator // g, ratio.denominator // g


class PolyphaseResampler:
    """Causal polyphase resampler whose output equals `scipy.signal.resample_poly(x, up, down)` sample for sample.

    resample_poly is an FIR (Kaiser-windowed sinc, 20*max(up, down)+1 taps) applied to the zero-stuffed
    signal with zeros before the start: each output sample is a fixed finite sum over input samples. We compute
    each output as soon as its last input has arrived (a fixed latency of about 10 input samples), so the
    stream start matches the offline start exactly; `flush()` pads zeros at the end exactly as offline does.
    Flags of the inputs an output uses are OR-ed onto that output.
    """

    def __init__(self, fs_in: float, fs_out: float, leads: int) -> None:
        self.up, self.down = resample_ratio(fs_in, fs_out)
        self.leads = leads
        self.consumed = 0  # input samples taken in
        self.produced = 0  # output samples emitted
        if self.up == self.down == 1:
            self.taps = 1
            self._phases = np.ones((1, 1))
            self._offset = 0
            self._hist = np.zeros((leads, 0))
            self._hist_flags = np.zeros(0, dtype=np.uint8)
            return
        max_rate = max(self.up, self.down)
        half_len = RESAMPLE_HALF_LEN_PER_RATE * max_rate
        h = signal.firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", RESAMPLE_KAISER_BETA)) * self.up
        pre_pad = self.down - half_len % self.down
        self._offset = (half_len + pre_pad) // self.down  # resample_poly's n_pre_remove
        h = np.concatenate([np.zeros(pre_pad), h])
        self.taps = -(-len(h) // self.up)
        h = np.concatenate([h, np.zeros(self.taps * self.up - len(h))])
        # phases[p, t] multiplies input i_hi - t for an output whose upsampled position j has j % up == p
        self._phases = h.reshape(self.taps, self.up).T.copy()
        self._phases_oldest_first = self._phases[:, ::-1].copy()
        # history of the last `taps` inputs; zeros before the start, exactly as resample_poly pads
        self._hist = np.zeros((leads, self.taps))
        self._hist_flags = np.zeros(self.taps, dtype=np.uint8)

    @property
    def latency_samples(self) -> int:
        """Input samples an output waits for beyond its own position (the FIR's look-ahead)."""
        return 0 if self.up == self.down == 1 else -(-self._offset * self.down // self.up)

    def expected_output(self, n_in: int) -> int:
        """Output length resample_poly gives for `n_in` inputs."""
        return -(-n_in * self.up // self.down)

    def _compute(self, stop: int, available: int) -> tuple[np.ndarray, np.ndarray]:
        """Outputs produced..stop-1 from the history, which holds inputs up to index `available`-1."""
        m = np.arange(self.produced, stop)
        j = (m + self._offset) * self.down
        i_hi = j // self.up
        base = available - self._hist.shape[1]  # absolute index of hist[:, 0]
        first = i_hi - base - self.taps + 1  # oldest input each output uses, as a history column
        runs = np.lib.stride_tricks.sliding_window_view(self._hist, self.taps, axis=1)  # (leads, K, taps) view
        gathered = runs[:, first]  # (leads, M, taps), oldest input first
        y = np.einsum("lmt,mt->lm", gathered, self._phases_oldest_first[j % self.up])
        if self._hist_flags.any():
            flag_runs = np.lib.stride_tricks.sliding_window_view(self._hist_flags, self.taps)
            flags = np.bitwise_or.reduce(flag_runs[first], axis=-1)
        else:
            flags = np.zeros(len(m), dtype=np.uint8)
        self.produced = stop
        return y, flags

    def push(self, x: np.ndarray, flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Take (leads, n) inputs with (n,) flags; return every output whose inputs have all arrived."""
        n = x.shape[1]
        if self.up == self.down == 1:
            self.consumed += n
            self.produced += n
            return x, flags
        self._hist = np.concatenate([self._hist, x], axis=1)
        self._hist_flags = np.concatenate([self._hist_flags, flags])
        self.consumed += n
        # output m needs inputs up to i_hi(m) = ((m + offset) * down) // up  <  consumed
        stop = max(self.produced, (self.consumed * self.up - 1) // self.down - self._offset + 1)
        if stop > self.produced:
            y, f = self._compute(stop, self.consumed)
        else:
            y, f = np.zeros((self.leads, 0)), np.zeros(0, dtype=np.uint8)
        self._hist = self._hist[:, -self.taps:]
        self._hist_flags = self._hist_flags[-self.taps:]
        return y, f

    def flush(self) -> tuple[np.ndarray, np.ndarray]:
        """The tail outputs, computed with zeros after the last input (as resample_poly does)."""
        stop = self.expected_output(self.consumed)
        if self.up == self.down == 1 or stop <= self.produced:
            return np.zeros((self.leads, 0)), np.zeros(0, dtype=np.uint8)
        pad = self.taps + (self._offset * self.down) // self.up + 2
        self._hist = np.concatenate([self._hist, np.zeros((self.leads, pad))], axis=1)
        self._hist_flags = np.concatenate([self._hist_flags, np.zeros(pad, dtype=np.uint8)])
        return self._compute(stop, self.consumed + pad)

