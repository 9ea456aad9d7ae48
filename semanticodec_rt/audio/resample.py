"""Band-limited windowed-sinc resampling, numerically compatible with the reference.

The reference resamples with ``torchaudio.functional.resample(w, sr, 16000)`` at its defaults
(``sinc_interp_hann``, ``lowpass_filter_width=6``, ``rolloff=0.99``).  This is an independent
implementation of that algorithm in plain torch (errata E7):

1. Reduce both rates by their gcd (44100 -> 16000 becomes 441 -> 160).
2. Cutoff ``base = 0.99 * min(orig, new)`` in the reduced units, half-width
   ``width = ceil(6 * orig / base)`` input samples (17 for 441 -> 160).
3. For output phase ``j`` (0..new-1) and tap ``i`` (``-width .. width + orig - 1``) the time
   offset is ``t = (i / orig - j / new) * base``, clamped to +-6 zero crossings; the kernel is
   ``sinc(pi t) * cos(pi t / 12)**2 * base / orig`` (a Hann window over +-6 crossings).
4. Pad the input with ``width`` zeros on the left and ``width + orig`` on the right, convolve
   with stride ``orig`` (one output channel per phase) and interleave the ``new`` phases.
5. Keep ``ceil(new * N / orig)`` samples.

Float quirks of the reference that are reproduced on purpose:

* The kernel is computed **in the waveform's dtype** (float32 for float32 audio), with the Python
  constants (``pi``, ``base``, ``scale``) rounded to that dtype by torch's scalar promotion; a
  float64 kernel differs by ~1e-7 relative.
* The output length is ``ceil`` of ``new * N / orig`` computed in Python float64 and then
  **rounded to float32** (``torch.as_tensor`` of a Python float takes the default dtype) before
  the ``ceil``.  Above 2**22 output samples (about 262 s at 16 kHz) the float32 rounding can drop
  the fractional part, and the reference output is one sample shorter than the exact ceiling.
* Equal rates return the input tensor itself (no copy), like the reference.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

LOWPASS_FILTER_WIDTH = 6  # zero crossings on each side of the sinc
ROLLOFF = 0.99  # cutoff as a fraction of the lower Nyquist frequency


def _as_rate(rate, name: str) -> int:
    """Validate a sample rate (Hz) and return it as int."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(rate).__name__}")
    if not math.isfinite(rate) or rate <= 0 or int(rate) != rate:
        raise ValueError(f"{name} must be a positive integer rate in Hz, got {rate!r}")
    return int(rate)


def reduced_rates(orig_freq: int, new_freq: int) -> tuple[int, int]:
    """Both rates divided by their gcd (e.g. 44100, 16000 -> 441, 160)."""
    o = _as_rate(orig_freq, "orig_freq")
    n = _as_rate(new_freq, "new_freq")
    g = math.gcd(o, n)
    return o // g, n // g


def resampled_length(n_samples: int, orig_freq: int, new_freq: int) -> int:
    """Output length of :func:`resample` for ``n_samples`` inputs (reference quirk included).

    ``ceil(float32(new * n / orig))`` with ``new``/``orig`` gcd-reduced: the float64 quotient is
    rounded to float32 before the ceiling, exactly as the reference does.
    """
    o, n = reduced_rates(orig_freq, new_freq)
    if o == n:
        return n_samples
    return int(math.ceil(float(np.float32(n * n_samples / o))))


@functools.lru_cache(maxsize=32)
def _cached_kernel(o: int, n: int, lpw: int, rolloff: float, dtype: torch.dtype, device: str):
    return _build_kernel(o, n, lpw, rolloff, dtype, torch.device(device))


def _build_kernel(o: int, n: int, lpw: int, rolloff: float, dtype: torch.dtype, device):
    base = min(o, n) * rolloff  # Python float, cast to `dtype` when it meets a tensor
    width = math.ceil(lpw * o / base)
    # Tap time in input periods (row vector) minus phase time in output periods (column).
    taps = torch.arange(-width, width + o, dtype=dtype, device=device) / o
    phases = torch.arange(0, -n, -1, dtype=dtype, device=device) / n
    t = (phases[:, None] + taps[None, :]) * base
    t = t.clamp(-lpw, lpw)  # beyond +-lpw crossings the window is zero anyway
    window = torch.cos(t * math.pi / lpw / 2) ** 2
    t = t * math.pi
    scale = base / o  # unity DC gain of the low-pass at the lower rate
    one = torch.ones((), dtype=dtype, device=device)
    sinc = torch.where(t == 0, one, torch.sin(t) / t)
    kernel = sinc * (window * scale)
    return kernel[:, None, :].contiguous(), width  # [n, 1, 2*width + o]


def sinc_resample_kernel(
    orig_freq: int,
    new_freq: int,
    lowpass_filter_width: int = LOWPASS_FILTER_WIDTH,
    rolloff: float = ROLLOFF,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, int]:
    """The polyphase kernel ``[new', 1, 2*width + orig']`` and ``width`` (gcd-reduced rates).

    Row ``j`` holds the FIR taps that produce output phase ``j`` from input samples
    ``[k*orig' - width, k*orig' + orig' + width)``.  A fresh tensor is returned (callers may
    modify it).
    """
    if lowpass_filter_width <= 0:
        raise ValueError(f"lowpass_filter_width must be positive, got {lowpass_filter_width}")
    if not 0.0 < rolloff <= 1.0:
        raise ValueError(f"rolloff must be in (0, 1], got {rolloff}")
    o, n = reduced_rates(orig_freq, new_freq)
    kernel, width = _cached_kernel(
        o, n, int(lowpass_filter_width), float(rolloff), dtype, str(torch.device(device))
    )
    return kernel.clone(), width


def resample(
    waveform: torch.Tensor,
    orig_freq: int,
    new_freq: int,
    lowpass_filter_width: int = LOWPASS_FILTER_WIDTH,
    rolloff: float = ROLLOFF,
) -> torch.Tensor:
    """Resample ``waveform`` ``[..., N]`` from ``orig_freq`` to ``new_freq`` Hz -> ``[..., N']``.

    All leading dims (channels, batch) are resampled independently with the same kernel.
    ``N' = ceil(float32(new' * N / orig'))`` (see the module docstring).  Float dtype is kept;
    the computation runs in that dtype, like the reference.  Equal rates return ``waveform``
    itself.  The input is never modified.
    """
    if not waveform.is_floating_point():
        raise TypeError(f"resample expects a floating-point waveform, got {waveform.dtype}")
    o_full = _as_rate(orig_freq, "orig_freq")
    n_full = _as_rate(new_freq, "new_freq")
    if o_full == n_full:
        return waveform
    o, n = reduced_rates(o_full, n_full)
    kernel, width = _cached_kernel(
        o, n, int(lowpass_filter_width), float(rolloff), waveform.dtype, str(waveform.device)
    )
    shape = waveform.shape
    length = shape[-1]
    x = waveform.reshape(-1, length)
    # Left pad centres tap 0 on input sample 0; the extra `o` on the right makes the last
    # (partial) block of `o` inputs produce a full set of `n` phases before the final cut.
    x = F.pad(x, (width, width + o))
    y = F.conv1d(x[:, None, :], kernel, stride=o)  # [B, n phases, blocks]
    y = y.transpose(1, 2).reshape(x.shape[0], -1)  # interleave: block-major, phase-minor
    y = y[:, : resampled_length(length, o, n)]
    return y.reshape(*shape[:-1], y.shape[-1])
