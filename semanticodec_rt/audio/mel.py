"""The decoder's log-mel target: AudioLDM convention, 64 bins, 10 ms hop, 0-8 kHz.

The VAE and the vocoder of the published decoder work on this representation (see
official_architecture.md section 13): magnitude STFT (n_fft 1024, Hann window 1024, hop 160) of the
waveform reflect-padded by ``(n_fft - hop) / 2`` on each side and not centred, 64 Slaney mel
filters with unit-area normalisation, then ``ln(max(mel, 1e-5))``.  With that padding a signal
of ``160 n`` samples gives exactly ``n`` frames and frame i is centred on sample ``160 i + 80``,
so cutting the audio at a multiple of 160 cuts the mel at the matching frame.

Only training computes it (inference never goes audio -> VAE mel).
"""

from __future__ import annotations

import functools

import torch

from ..lab.eval.metrics import mel_filterbank

N_FFT = 1024
HOP = 160
N_MELS = 64
FMAX = 8000.0
LOG_FLOOR = 1e-5


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
