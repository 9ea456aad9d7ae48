"""Pitch cue for the speech route: normalised cross-correlation over the pitch lags, per 10 ms.

The 128-bin fbank resolves low harmonics only coarsely (~25 Hz per bin at 200 Hz), while FARGAN
needs the pitch period to a sample.  So the speech encoder also sees, for every fbank frame,
how well the frame's last 20 ms matches the signal one lag earlier, for every lag FARGAN can
use (32..255 samples, 500..62.5 Hz):

    r[f, l] = <w, w_l> / sqrt(|w|^2 |w_l|^2 + eps)

with ``w = x[160 f + 80 : 160 f + 400]`` (the end of kaldi fbank frame ``f``) and ``w_l`` the
same span ``l`` samples earlier.  Samples before the stream start are zeros, so frame ``f``
depends only on samples ``< 160 f + 400``: a stream gives the same values as a whole signal.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FRAME_SHIFT = 160  # samples per 10 ms frame
FRAME_END = 400  # kaldi fbank frame f covers samples [160 f, 160 f + 400)
EPS = 1e-3  # in squared sample units: silence gives r ~ 0, not 0/0


def n_frames(n_samples: int) -> int:
    """Frames of a signal of ``n_samples`` (as the kaldi fbank: ``1 + (N - 400) // 160``)."""
    return 0 if n_samples < FRAME_END else 1 + (n_samples - FRAME_END) // FRAME_SHIFT


def pitch_xcorr(wave: torch.Tensor, min_lag: int = 32, max_lag: int = 256, window: int = 320,
                history: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, N]`` samples (16 kHz) -> ``[B, n_frames(N), max_lag - min_lag]`` correlations.

    Args:
        wave: float samples; frame ``f`` ends at sample ``160 f + 400`` of ``wave``.
        history: ``[B, max_lag]`` samples just before ``wave`` (zeros at a stream start).
    """
    b, n = wave.shape
    t = n_frames(n)
    lags = max_lag - min_lag
    if t == 0:
        return wave.new_zeros(b, 0, lags)
    if history is None:
        history = wave.new_zeros(b, max_lag)
    x = torch.cat([history, wave], -1)
    # For frame f: the window starts at s = 160 f + 400 - window (in wave), i.e. at
    # s + max_lag in x; the span that reaches back max_lag - 1 samples starts at s + 1.
    span = window + max_lag - 1
    first = FRAME_END - window + 1  # start of frame 0's span in x
    seg = x[:, first : first + (t - 1) * FRAME_SHIFT + span].unfold(-1, span, FRAME_SHIFT)  # [B, T, span]
    w = seg[..., span - window :]  # [B, T, window]: the frame's own window
    n_fft = 1 << (span + window - 1).bit_length()
    # c[k] = sum_n w[n] seg[n + k]; w sits at offset max_lag - 1 of seg, so lag l is k = max_lag - 1 - l
    c = torch.fft.irfft(torch.fft.rfft(seg, n_fft) * torch.fft.rfft(w, n_fft).conj(), n_fft)
    ks = (max_lag - 1) - torch.arange(min_lag, max_lag, device=wave.device)
    num = c[..., ks]  # [B, T, lags], lag l at column l - min_lag
    sq = F.pad(seg * seg, (1, 0)).cumsum(-1)  # sq[j] = sum of seg^2 over [0, j)
    e_w = sq[..., span] - sq[..., span - window]
    e_l = sq[..., ks + window] - sq[..., ks]
    return num / torch.sqrt(e_w[..., None] * e_l + EPS)


def reference_xcorr(wave, min_lag: int = 32, max_lag: int = 256, window: int = 320):
    """Float64 loop twin of :func:`pitch_xcorr` for one signal ``[N]`` (tests)."""
    import numpy as np

    x = np.concatenate([np.zeros(max_lag), np.asarray(wave, np.float64)])
    out = np.zeros((n_frames(len(wave)), max_lag - min_lag))
    for f in range(out.shape[0]):
        end = FRAME_SHIFT * f + FRAME_END + max_lag
        w = x[end - window : end]
        for j, lag in enumerate(range(min_lag, max_lag)):
            wl = x[end - window - lag : end - lag]
            out[f, j] = (w @ wl) / np.sqrt((w @ w) * (wl @ wl) + EPS)
    return out
