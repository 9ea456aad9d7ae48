"""The STFT grid the frame-rate vocoders synthesise on: 10 ms hop, 40 ms Hann window.

Frame t of the log-mel (:mod:`semanticodec_rt.audio.mel`) is centred on sample ``160 t + 80``;
the inverse STFT here puts synthesis frame t at the same place, so ``T`` frames give exactly
``160 T`` samples that line up with the audio the mel came from.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

HOP = 160
N_FFT = 640
BINS = N_FFT // 2 + 1
#: synthesis frame t is centred on sample ``HOP * t + OFFSET``
OFFSET = HOP // 2


@functools.lru_cache(maxsize=4)
def _window(device: str, dtype: torch.dtype) -> torch.Tensor:
    # a normal tensor even when first asked for under inference mode (decoding): training
    # afterwards in the same process saves it for backward
    with torch.inference_mode(False):
        return torch.hann_window(N_FFT, periodic=True, device=device, dtype=dtype)


def window(ref: torch.Tensor) -> torch.Tensor:
    return _window(str(ref.device), ref.real.dtype if ref.is_complex() else ref.dtype)


def stft(x: torch.Tensor) -> torch.Tensor:
    """``[B, 160 T]`` -> complex ``[B, BINS, T]`` on the synthesis grid (frame t centred on
    ``160 t + 80``), scaled so a unit-amplitude sine peaks near 1."""
    w = window(x)
    t = x.shape[-1] // HOP
    # torch centres frame j on sample 160 j of what it is given: give it the audio from 80 on.
    s = torch.stft(x[..., OFFSET:], N_FFT, HOP, window=w, center=True, pad_mode="constant",
                   return_complex=True)
    return s[..., :t] / (w.sum() / 2)


def istft(spec: torch.Tensor, frames: int) -> torch.Tensor:
    """Complex ``[B, BINS, T]`` (scaled as :func:`stft`) -> ``[B, 160 T]``; the first 80 samples,
    before frame 0's centre, are left silent (torch's inverse starts at a frame centre)."""
    w = window(spec)
    y = torch.istft(spec * (w.sum() / 2), N_FFT, HOP, window=w, center=True, length=HOP * frames - OFFSET)
    return F.pad(y, (OFFSET, 0))
