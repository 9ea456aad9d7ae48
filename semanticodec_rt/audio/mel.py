"""The decoder's log-mel target: AudioLDM convention, 64 bins, 10 ms hop, 0-8 kHz.

The VAE and the vocoder of the published decoder work on this representation (see
official_architecture.md section 13): magnitude STFT (n_fft 1024, Hann window 1024, hop 160) of the
waveform reflect-padded by ``(n_fft - hop) / 2`` on each side and not centred, 64 Slaney mel
filters with unit-area normalisation, then ``ln(max(mel, 1e-5))``.  With that padding a signal
of ``160 n`` samples gives exactly ``n`` frames and frame i is centred on sample ``160 i + 80``,
so cutting the audio at a multiple of 160 cuts the mel at the matching frame.

Only training computes it (inference never goes audio -> VAE mel).  The Slaney filters here also
serve eval's log-mel distance (:mod:`semanticodec_rt.lab.eval.metrics`).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

N_FFT = 1024
HOP = 160
N_MELS = 64
FMAX = 8000.0
LOG_FLOOR = 1e-5


# -- Slaney mel filters (numpy, float64): this target's and eval's log-mel distance ------------------
def _hz_to_mel(f):
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    logstep = np.log(6.4) / 27.0
    lin = f / f_sp
    log = min_log_hz / f_sp + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep
    return np.where(f >= min_log_hz, log, lin)


def _mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


_fb_cache: dict[tuple, np.ndarray] = {}


def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """``[n_mels, n_fft // 2 + 1]`` triangular filters on the Slaney mel scale, each scaled to
    unit area in Hz (``2 / (f_right - f_left)``)."""
    key = (sr, n_fft, n_mels, fmin, fmax)
    if key not in _fb_cache:
        fmax = sr / 2 if fmax is None else fmax
        bins = np.linspace(0, sr / 2, n_fft // 2 + 1)
        edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
        width = np.diff(edges)
        ramps = edges[:, None] - bins[None, :]
        rising = -ramps[:-2] / width[:-1, None]
        falling = ramps[2:] / width[1:, None]
        weights = np.maximum(0.0, np.minimum(rising, falling))
        weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
        _fb_cache[key] = weights
    return _fb_cache[key]



# -- the decoder's log-mel (torch) ----------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def _basis(device: str, dtype: torch.dtype) -> torch.Tensor:
    fb = mel_filterbank(16000, N_FFT, N_MELS, 0.0, FMAX)  # [64, 513] float64
    return torch.as_tensor(fb, dtype=dtype, device=device)


@functools.lru_cache(maxsize=8)
def _window(device: str, dtype: torch.dtype) -> torch.Tensor:
    return torch.hann_window(N_FFT, dtype=dtype, device=device)


def log_mel(wave: torch.Tensor) -> torch.Tensor:
    """Waveform ``[B, n]`` (16 kHz, float, n a multiple of 160) -> log-mel ``[B, n / 160, 64]``.

    Differentiable (the vocoder's mel loss back-propagates through it).
    """
    if wave.dim() != 2:
        raise ValueError(f"wave must be [B, samples], got {tuple(wave.shape)}")
    if wave.shape[1] % HOP or wave.shape[1] < HOP:
        raise ValueError(f"sample count must be a positive multiple of {HOP}, got {wave.shape[1]}")
    pad = (N_FFT - HOP) // 2
    x = torch.nn.functional.pad(wave.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    dev, dt = str(wave.device), wave.dtype if wave.dtype == torch.float64 else torch.float32
    spec = torch.stft(
        x.to(dt), N_FFT, hop_length=HOP, win_length=N_FFT, window=_window(dev, dt),
        center=False, return_complex=True,
    )
    # sqrt(re^2 + im^2 + eps): abs() has an infinite gradient at exact zeros (digital silence).
    mag = torch.sqrt(spec.real.square() + spec.imag.square() + 1e-9)  # [B, 513, frames]
    mel = _basis(dev, dt) @ mag
    return torch.log(mel.clamp(min=LOG_FLOOR)).transpose(1, 2)
