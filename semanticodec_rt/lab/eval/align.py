"""Time alignment of a decoded signal to its reference, and length matching.

Codecs delay their output (look-ahead, resampling filters, frame padding), and most metrics
compare sample by sample, so every decode is aligned before scoring:

1. **envelope cross-correlation** -- log-energy envelopes of both signals on a 2.5 ms grid
   (40 samples at 16 kHz), floored 60 dB below their peak and mean-removed, are cross-correlated
   over lags of up to ``max_delay_s``; the best lag gives the delay to 2.5 ms.  Envelopes survive
   codecs that do not keep the waveform (codec2 is parametric, its phases are not the input's);
2. **waveform refinement** -- the normalised waveform cross-correlation is searched within one
   envelope step (+-2.5 ms) of that lag; its peak replaces the coarse lag when the correlation
   exceeds :data:`REFINE_MIN_CORR` (0.3), so waveform-matching codecs align to the sample and
   parametric ones keep the envelope lag;
3. **length matching** -- the decode is shifted by the lag (its first samples dropped, or zeros
   put in front) and cut or zero-padded to the reference length.  The reference is never
   changed, so every codec is scored against the same samples.

Sign convention: a positive lag means the decode is late (``deg[n + lag] ~ ref[n]``).
"""

from __future__ import annotations

import numpy as np
from scipy.signal import correlate

from ...config import SAMPLE_RATE

ENVELOPE_STEP_S = 0.0025  # envelope resolution: 2.5 ms
MAX_DELAY_S = 0.25  # search range of the envelope lag (both directions)
REFINE_MIN_CORR = 0.3  # waveform refinement is accepted above this normalised correlation
_FLOOR_DB = 60.0


def _mono(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        x = x.reshape(-1) if x.ndim == 2 and 1 in x.shape else None
        if x is None:
            raise ValueError("expected mono audio [N]")
    return x


def envelope(x, step: int) -> np.ndarray:
    """Log energy of consecutive ``step``-sample blocks, floored 60 dB below the peak."""
    x = _mono(x)
    n = len(x) // step
    if n == 0:
        return np.zeros(0)
    energy = (x[: n * step] ** 2).reshape(n, step).mean(axis=1)
    peak = energy.max()
    floor = peak * 10 ** (-_FLOOR_DB / 10) if peak > 0 else 1e-12
    return np.log10(np.maximum(energy, floor))


def estimate_delay(ref, deg, sr: int = SAMPLE_RATE, max_delay_s: float = MAX_DELAY_S) -> int:
    """Delay of ``deg`` relative to ``ref`` in samples (positive: ``deg`` is late)."""
    ref, deg = _mono(ref), _mono(deg)
    step = max(1, int(round(sr * ENVELOPE_STEP_S)))
    er, ed = envelope(ref, step), envelope(deg, step)
    if len(er) < 2 or len(ed) < 2 or er.std() == 0 or ed.std() == 0:
        return 0  # silence or too short: nothing to align on
    er, ed = er - er.mean(), ed - ed.mean()
    max_lag = int(np.ceil(max_delay_s * sr / step))
    # c[k + len(er) - 1] = sum_n ed[n + k] * er[n]
    c = correlate(ed, er, mode="full", method="fft")
    lags = np.arange(-(len(er) - 1), len(ed))
    keep = np.abs(lags) <= max_lag
    coarse = int(lags[keep][np.argmax(c[keep])]) * step
    return _refine(ref, deg, coarse, step)


def _refine(ref: np.ndarray, deg: np.ndarray, coarse: int, radius: int) -> int:
    """The waveform-correlation peak within ``coarse +- radius`` if it is convincing."""
    lo, hi = coarse - radius, coarse + radius
    # Cut the decode to the part that can overlap the reference at these lags (cheaper FFT).
    start = max(0, lo)
    seg = deg[start : min(len(deg), len(ref) + hi)]
    if len(seg) == 0:
        return coarse
    c = correlate(seg, ref, mode="full", method="fft")  # index j <-> lag (j - len(ref) + 1 + start)
    lags = np.arange(len(c)) - (len(ref) - 1) + start
    sel = (lags >= lo) & (lags <= hi)
    if not sel.any():
        return coarse
    norm = np.sqrt((ref @ ref) * (deg @ deg))
    if norm == 0:
        return coarse
    corr = c[sel] / norm
    best = int(np.argmax(corr))
    return int(lags[sel][best]) if corr[best] > REFINE_MIN_CORR else coarse


def shift(deg, lag: int) -> np.ndarray:
    """``deg`` moved earlier by ``lag`` samples (later, with zeros in front, if negative)."""
    deg = _mono(deg)
    if lag >= 0:
        return deg[lag:]
    return np.concatenate([np.zeros(-lag), deg])


def match_length(x, n: int) -> np.ndarray:
    """``x`` cut to ``n`` samples, or zero-padded at the end to ``n``."""
    x = _mono(x)
    if len(x) >= n:
        return x[:n]
    return np.concatenate([x, np.zeros(n - len(x))])


def align(ref, deg, sr: int = SAMPLE_RATE, max_delay_s: float = MAX_DELAY_S
          ) -> tuple[np.ndarray, np.ndarray, int]:
    """(ref, deg aligned to it and of its length, the lag in samples); see the module doc."""
    ref, deg = _mono(ref), _mono(deg)
    lag = estimate_delay(ref, deg, sr, max_delay_s)
    return ref, match_length(shift(deg, lag), len(ref)), lag
