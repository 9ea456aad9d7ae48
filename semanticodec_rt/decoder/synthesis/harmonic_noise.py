"""A harmonic-plus-noise vocoder: a DSP source, a learnt time-varying filter.

The source is fixed signal processing, not learnt: a harmonic comb at the frame's pitch
(every harmonic below 7.8 kHz, unit amplitude, phase running continuously from frame to frame)
and white noise.  A causal ConvNeXt (:mod:`.convnext`) reads the 64-bin log-mel and the pitch
features and gives, per 10 ms frame and per bin of the 640-point STFT grid
(:mod:`.stft_frames`), a non-negative gain for each source; the output is
``istft(g_h * STFT(comb) + g_n * STFT(noise))``.  The phase thus comes from the source (coherent
harmonics, random noise) and the network only shapes magnitudes -- the prior that lets
source-filter vocoders (NSF, DDSP) learn from spectral losses alone, with no discriminator.

Pitch input: opus's FARGAN features 18 (pitch term, period ``256 / 2^(f18 + 1.5)`` samples) and
19 (pitch correlation), the two the speech route already predicts, so a decoder can drive this
vocoder with the same regression heads.

Shapes: ``forward(mel [B, T, 64], pitch [B, T, 2], noise [B, 160 T] or None) -> [B, 160 T]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ...config import SAMPLE_RATE
from . import stft_frames
from .convnext import CausalConvNeXt

HARMONIC_LIMIT_HZ = 7800.0
LOG_GAIN_MAX = 6.0


@dataclass(frozen=True)
class HarmonicNoiseConfig:
    n_mels: int = 64
    channels: int = 192
    blocks: int = 6
    kernel: int = 7
    max_harmonics: int = 125  # 7.8 kHz / 62.5 Hz, the lowest pitch (period 256)


def pitch_hz(f18: torch.Tensor) -> torch.Tensor:
    """FARGAN's pitch term -> fundamental in Hz (continuous: the period is not rounded here)."""
    period = 256.0 / torch.pow(2.0, f18 + 1.5)
    return SAMPLE_RATE / period.clamp(32.0, 256.0)


def harmonic_comb(f0: torch.Tensor, phase0: torch.Tensor | None, max_harmonics: int):
    """Per-frame ``f0 [B, T]`` Hz -> (``[B, 160 T]`` sum of unit sines at k f0 below 7.8 kHz,
    the fundamental's phase after the last sample ``[B]``).  The frequency moves linearly from
    one frame centre to the next, so the phase never jumps."""
    b, t = f0.shape
    hop = stft_frames.HOP
    # per-sample frequency: interpolate between frame values (frame t at 160 t + 80)
    f_prev = torch.cat([f0[:, :1], f0[:, :-1]], 1)
    ramp = (torch.arange(hop, device=f0.device, dtype=f0.dtype) + 0.5) / hop
    f = (f_prev[..., None] + (f0 - f_prev)[..., None] * ramp).reshape(b, t * hop)
    step = 2 * math.pi * f / SAMPLE_RATE
    phase = torch.cumsum(step, -1)
    if phase0 is not None:
        phase = phase + phase0[:, None]
    k = torch.arange(1, max_harmonics + 1, device=f0.device, dtype=f0.dtype)
    below = (k[:, None, None] * f[None] < HARMONIC_LIMIT_HZ).to(f0.dtype)  # [K, B, n]
    comb = (torch.sin(k[:, None, None] * phase[None]) * below).sum(0)
    return comb, torch.remainder(phase[:, -1], 2 * math.pi)


class HarmonicNoiseVocoder(nn.Module):
    def __init__(self, cfg: HarmonicNoiseConfig = HarmonicNoiseConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = CausalConvNeXt(cfg.n_mels + 2, cfg.channels, cfg.blocks, cfg.kernel)
        self.head = nn.Linear(cfg.channels, 2 * stft_frames.BINS)
        with torch.no_grad():  # start quiet
            self.head.bias.fill_(-5.0)

    def gains(self, mel: torch.Tensor, pitch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, T, 64]``, ``[B, T, 2]`` -> harmonic and noise gains, each ``[B, BINS, T]``."""
        x = torch.cat([mel, pitch], -1).transpose(1, 2)
        h = self.head(self.backbone(x).transpose(1, 2)).transpose(1, 2)
        g_h, g_n = h.clamp(max=LOG_GAIN_MAX).exp().chunk(2, dim=1)
        return g_h, g_n

    def forward(self, mel: torch.Tensor, pitch: torch.Tensor, noise: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        t = mel.shape[1]
        comb, _ = harmonic_comb(pitch_hz(pitch[..., 0]), None, self.cfg.max_harmonics)
        if noise is None:
            noise = torch.randn(comb.shape, generator=generator, dtype=comb.dtype)
        g_h, g_n = self.gains(mel, pitch)
        spec = g_h * stft_frames.stft(comb) + g_n * stft_frames.stft(noise)
        return stft_frames.istft(spec, t)
