"""What every part of the streamer shares: per-sample flags, the event format version, the error and the engine
protocol. (The C runner's counterparts: jefw.h, FLAG_* in jefw_stream.c.)"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from jepa_edge.data.errors import DataError

# Per-sample flags, carried through the resampler (bitwise OR over the taps an output sample uses).
FLAG_NAN = 1  # the source sample was NaN/inf (held at the last finite value before filtering)
FLAG_SATURATED = 2  # the source sample sat at the ADC rail
FLAG_GAP = 4  # the sample was missing (timestamp gap) and was filled with the last value

EVENT_VERSION = 1


class StreamError(DataError):
    """A stream the classifier cannot run on (wrong leads, bad chunk shape, bad timestamps); names the source."""


class OutputEngine(Protocol):
    """What the streamer needs from an engine (runtimes' `Engine` satisfies it)."""

    def outputs(self, x: np.ndarray) -> dict[str, np.ndarray]: ...

