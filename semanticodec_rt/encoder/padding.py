"""Padding detection on one encoder window and -1 marking of the padded token positions.

The published encoder treats every trailing "empty" fbank frame of a window as padding:

* a frame is empty when the unbiased std of its 128 normalised mel values is <= 1e-7
  (digital silence gives the constant log-floor row, zero-padding a constant row);
* ``column_max`` = index of the last non-empty frame + 1 (window length if none is empty,
  0 if all are);
* **quirk kept for exactness:** when exactly ONE frame is non-empty the official code hits a
  ``squeeze()`` to a 0-d tensor, raises, catches the exception and uses ``column_max = 0``,
  i.e. the whole window counts as padding.  :func:`padding_column_max` reproduces this
  explicitly (no exception involved);
* cutoff fraction = ``column_max / window_frames`` (float64, as the reference);
* token positions ``>= ceil(T_w * fraction)`` are set to -1 over all channels.  The cut is on the
  flattened token index, so at rates 100/50 it can split the frequency tokens of one time patch.

Silence *inside* the window is not padding (only the trailing run matters), but a genuinely
silent tail of real audio is treated as padding too.
"""

from __future__ import annotations

import torch

EMPTY_STD = 1e-7  # a frame whose unbiased std over the mel bins is <= this is "empty"


def empty_frames(mel: torch.Tensor) -> torch.Tensor:
    """``[B, T, M]`` mel -> ``[B, T]`` bool, True where the frame is empty (std <= 1e-7)."""
    return mel.std(dim=-1, unbiased=True) <= EMPTY_STD


def padding_column_max(mel: torch.Tensor) -> torch.Tensor:
    """``[B, T, M]`` window -> ``[B]`` int64 number of leading frames that count as content.

    = last non-empty frame index + 1; T when no frame is empty; 0 when all frames are empty
    **or exactly one frame is non-empty** (the reference's exception path).
    """
    nonempty = ~empty_frames(mel)  # [B, T]
    t = mel.shape[1]
    frame = torch.arange(1, t + 1, device=mel.device)
    last = torch.where(nonempty, frame, torch.zeros_like(frame)).amax(dim=1)  # 0 if none
    single = nonempty.sum(dim=1) == 1
    return torch.where(single, torch.zeros_like(last), last)


def padding_cutoff_fraction(mel: torch.Tensor) -> torch.Tensor:
    """``[B, T, M]`` window -> ``[B]`` float64 content fraction ``column_max / T``."""
    return padding_column_max(mel).to(torch.float64) / mel.shape[1]


def first_marked_position(fraction: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """``[B]`` float64 fractions -> ``[B]`` int64 ``ceil(num_tokens * fraction)``.

    Evaluated in float64 as the reference does (exact for the official power-of-two window).
    A value of ``num_tokens`` means nothing is marked.
    """
    return torch.ceil(num_tokens * fraction.to(torch.float64)).to(torch.int64)


def mark_padding(x: torch.Tensor, first_marked: torch.Tensor) -> torch.Tensor:
    """Set positions ``>= first_marked[b]`` of ``x [B, T, C]`` to exactly -1 (new tensor).

    The reference computes ``x * 0 - 1``; that equals -1 for every finite x (we write -1
    directly, so a non-finite value in a padded position gives -1 instead of NaN).
    """
    pos = torch.arange(x.shape[1], device=x.device)
    padded = pos[None, :] >= first_marked.to(x.device)[:, None]  # [B, T]
    return torch.where(padded[..., None], torch.full((), -1.0, dtype=x.dtype, device=x.device), x)
