"""Overlap-add of the decoder's per-window waveforms and the final trim (reference ``decode``).

The reference (``ddpm.overlap_add_waveform`` + ``SemantiCodec.decode``) joins the 10.24 s
decoder windows with a 0.64 s linear crossfade:

* ``overlap = int(0.64 * 16000) = 10240`` samples;
* the output starts as window 0; for every next window the last ``overlap`` samples of the
  running output are multiplied by ``linspace(1, 0, overlap)``, the first ``overlap`` samples of
  the window by ``linspace(0, 1, overlap)``, the two are added, and the rest of the window
  (``window[overlap:]``) is appended;
* the result is cut to ``int(((L / 8) * 16 * 0.01 * K) * 16000)`` samples (L token positions).

Quirks of the reference kept here:

* **Fade precision**: the fades are float64 ``np.linspace`` arrays multiplied *in place* into
  float32 arrays, i.e. each faded sample is ``float32(float64(x) * fade)`` (one rounding), and
  the two faded halves are then added in float32.  ``np.linspace`` computes ``i * step + start``
  with ``step = (stop - start) / (n - 1)`` and forces the last value to ``stop``; ``torch.linspace``
  rounds differently, so :func:`numpy_linspace` replicates numpy's formula in torch.
* **32-sample drift**: every window is 163872 samples (160 * 1024 + 32), while the token stride
  is 9.6 s = 153600 samples; each appended window advances the output by 153632 samples, so
  window k lands 32 * k samples (2 ms per window) late relative to its tokens, cumulatively.
  The output is ``163872 + (n_win - 1) * 153632`` samples before the trim.
* **Trim truncation**: ``int()`` of the float trim expression can drop one sample
  (L = 803 at rate 100 gives 256959, not 256960).
* The reference mutates its input arrays in place; this port never modifies the caller's
  tensors.
"""

from __future__ import annotations

from typing import Sequence, Union

import torch

from ..config import SAMPLE_RATE
from .official_lengths import SEGMENT_DURATION, WINDOW_OVERLAP_RATIO, trim_length

OVERLAP_DURATION_S = SEGMENT_DURATION * WINDOW_OVERLAP_RATIO  # 0.64 s (10.24 * 0.0625)


def overlap_samples(overlap_duration_s: float = OVERLAP_DURATION_S, sample_rate: int = SAMPLE_RATE) -> int:
    """``int(overlap_duration * sample_rate)`` = 10240 for the official 0.64 s at 16 kHz."""
    return int(overlap_duration_s * sample_rate)


def numpy_linspace(start: float, stop: float, num: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """float64 ``[num]`` values bitwise equal to ``np.linspace(start, stop, num)``.

    numpy evaluates ``arange(num) * ((stop - start) / (num - 1)) + start`` and then sets the last
    element to ``stop`` exactly; the product and the sum are each rounded in float64.
    """
    if num < 0:
        raise ValueError(f"num must be >= 0, got {num}")
    if num == 1:
        return torch.full((1,), float(start), dtype=torch.float64, device=device)
    y = torch.arange(num, dtype=torch.float64, device=device)
    if num == 0:
        return y
    step = (stop - start) / (num - 1)
    if step == 0:
        # numpy's zero-step branch: scale by delta / div without forming a zero step.
        y = y / (num - 1) * (stop - start)
    else:
        y = y * step
    y = y + start
    y[-1] = stop  # endpoint forced exactly, as numpy does
    return y


def _fade(x: torch.Tensor, fade64: torch.Tensor) -> torch.Tensor:
    """``float(double(x) * fade)``: numpy's in-place float32 *= float64 (one rounding)."""
    return (x.to(torch.float64) * fade64).to(x.dtype)


WindowsLike = Union[torch.Tensor, Sequence[torch.Tensor]]


def overlap_add(
    windows: WindowsLike,
    overlap: int | None = None,
) -> torch.Tensor:
    """Join decoder windows with the reference 0.64 s linear crossfade.

    Args:
        windows: a sequence of ``[B, 1, n_k]`` (or ``[B, n_k]`` / ``[n_k]``) waveforms, or one
            stacked tensor ``[n_win, B, 1, n]``.  Officially every ``n_k`` is 163872 samples
            at 16 kHz; any length ``>= overlap`` works.  Leading dims must agree.
        overlap: crossfade length in samples (default ``int(0.64 * 16000) = 10240``).
    Returns:
        ``[..., n_0 + sum_{k>=1} (n_k - overlap)]`` in the windows' dtype; for the official
        sizes ``163872 + (n_win - 1) * 153632`` samples.  Inputs are not modified.

    Bitwise equal to the reference for float32 windows (see the module docstring for the
    float64-fade quirk).
    """
    if isinstance(windows, torch.Tensor):
        wins = list(windows.unbind(0))
    else:
        wins = list(windows)
    if not wins:
        raise ValueError("overlap_add needs at least one window")
    ov = overlap_samples() if overlap is None else int(overlap)
    if ov < 0:
        raise ValueError(f"overlap must be >= 0, got {ov}")
    lead = wins[0].shape[:-1]
    for k, w in enumerate(wins):
        if w.shape[:-1] != lead:
            raise ValueError(f"window {k} has leading shape {list(w.shape[:-1])}, expected {list(lead)}")
        if len(wins) > 1 and w.shape[-1] < ov:
            raise ValueError(f"window {k} has {w.shape[-1]} samples, fewer than the overlap {ov}")
    if len(wins) == 1:
        return wins[0].clone()
    if ov == 0:
        return torch.cat(wins, dim=-1)
    device = wins[0].device
    fade_in = numpy_linspace(0.0, 1.0, ov, device=device)
    fade_out = numpy_linspace(1.0, 0.0, ov, device=device)
    # Pieces are collected and concatenated once; the running output's last `ov` samples (the
    # "tail") are kept apart because the next window fades them out.
    pieces: list[torch.Tensor] = []
    tail = wins[0]
    for w in wins[1:]:
        body, tail_end = tail[..., :-ov], tail[..., -ov:]
        mixed = _fade(tail_end, fade_out) + _fade(w[..., :ov], fade_in)
        pieces.append(body)
        # The new running tail is [mixed | w[ov:]]; only its last `ov` samples can be faded again.
        tail = torch.cat([mixed, w[..., ov:]], dim=-1)
    pieces.append(tail)
    return torch.cat(pieces, dim=-1)


def trim_waveform(waveform: torch.Tensor, n_tokens: int, token_rate: int) -> torch.Tensor:
    """Keep the first ``int(((L / 8) * 16 * 0.01 * K) * 16000)`` samples (a view, no copy).

    ``L = n_tokens`` token positions; a waveform shorter than that is returned whole (slice
    semantics, as the reference).  ``int()`` may drop one sample, see the module docstring.
    """
    return waveform[..., : trim_length(n_tokens, token_rate)]
