"""An iSTFT-head vocoder (Vocos-like): log-mel frames -> STFT magnitude and phase -> waveform.

A causal ConvNeXt (:mod:`.convnext`) reads the 64-bin log-mel; a linear head gives, per 10 ms
frame and per bin of a 640-point STFT (:mod:`.stft_frames`), a log-magnitude and a phase; the
inverse STFT turns them into 160 samples per frame.  Nothing runs at the sample rate, so the cost
is that of a small frame-rate network (~0.3 GFLOP per second of audio at the default size),
against ~1-2 for a HiFi-GAN of the same quality class.  The phase is learnt from spectral losses
alone here (no discriminator), which is what makes it the structural question of the trial.

Shapes: ``forward(mel [B, T, 64]) -> [B, 160 T]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from . import stft_frames
from .convnext import CausalConvNeXt

LOG_MAG_MAX = 6.0  # exp(6) ~ 400: far above any real bin (a full-scale sine peaks at 1)


@dataclass(frozen=True)
class ISTFTVocoderConfig:
    n_mels: int = 64
    channels: int = 192
    blocks: int = 6
    kernel: int = 7


class ISTFTVocoder(nn.Module):
    def __init__(self, cfg: ISTFTVocoderConfig = ISTFTVocoderConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = CausalConvNeXt(cfg.n_mels, cfg.channels, cfg.blocks, cfg.kernel)
        self.head = nn.Linear(cfg.channels, 2 * stft_frames.BINS)
        with torch.no_grad():  # start quiet: log-magnitude ~ -5 everywhere
            self.head.bias[: stft_frames.BINS].fill_(-5.0)

    def spectrum(self, mel: torch.Tensor) -> torch.Tensor:
        """``[B, T, n_mels]`` -> complex ``[B, BINS, T]``."""
        h = self.head(self.backbone(mel.transpose(1, 2)).transpose(1, 2))  # [B, T, 2 BINS]
        log_mag, phase = h.transpose(1, 2).chunk(2, dim=1)
        return torch.polar(log_mag.clamp(max=LOG_MAG_MAX).exp(), phase)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return stft_frames.istft(self.spectrum(mel), mel.shape[1])
