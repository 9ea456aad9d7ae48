"""Non-finite samples never leave the package as sound.

A decoder fed broken weights or inputs can emit NaN or infinities; written to a 16-bit WAV they
become full-scale clicks (NaN casts to the most negative sample), and a sound card plays them at
full volume.  Every path to a file or a speaker passes its samples through
:func:`zero_nonfinite`, which silences them and says how many there were.
"""

from __future__ import annotations

import numpy as np

__all__ = ["zero_nonfinite"]


def zero_nonfinite(x: np.ndarray) -> tuple[np.ndarray, int]:
    """``[n]`` float samples -> (the same with NaN/inf set to 0, how many were).  No copy when
    every sample is finite (the common case: one pass over the block)."""
    finite = np.isfinite(x)
    if finite.all():
        return x, 0
    return np.where(finite, x, 0.0).astype(x.dtype, copy=False), int(x.size - np.count_nonzero(finite))
