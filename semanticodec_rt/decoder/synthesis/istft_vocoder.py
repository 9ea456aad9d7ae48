"""An iSTFT-head vocoder (Vocos-like): log-mel frames -> STFT magnitude and phase -> waveform.

A causal ConvNeXt (:mod:`.convnext`) reads the 64-bin log-mel; a linear head gives, per 10 ms
frame and per bin of a 640-point STFT (:mod:`.stft_frames`), a log-magnitude and a phase; the
inverse STFT turns them into 160 samples per frame.  Nothing runs at the sample rate, so the cost
is that of a small frame-rate network (~0.3 GFLOP per second of audio at the default size),
against ~1-2 for a HiFi-GAN of the same quality class.  The phase is learnt from spectral losses
alone here (no discriminator), which is what makes it the structural question of the trial.

Streaming (:class:`ISTFTStream`): the ConvNeXt carries its convolution histories and the
inverse STFT is an overlap-add of windowed frames, each 640-sample frame placed from 240
samples before its own 160 (the grid of :mod:`.stft_frames`); a sample is final once no later
frame reaches it, i.e. frame t finalises samples up to ``160 t - 80``.  Inside the signal this
is the offline :func:`.stft_frames.istft` to float rounding; at the two ends the stream divides
by the steady window envelope (1.5) where the offline inverse divides by the partial one.

Shapes: ``forward(mel [B, T, 64]) -> [B, 160 T]``; ``ISTFTStream.push(mel [B, n, 64]) ->
[B, 160 n]`` (the samples it finalised; the first 240 of a stream lie before sample 0).
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

    def spectrum(self, mel: torch.Tensor, cache: list | None = None) -> torch.Tensor:
        """``[B, T, n_mels]`` -> complex ``[B, BINS, T]`` (``cache``: a stream's ConvNeXt state)."""
        h = self.head(self.backbone(mel.transpose(1, 2), cache).transpose(1, 2))  # [B, T, 2 BINS]
        log_mag, phase = h.transpose(1, 2).chunk(2, dim=1)
        return torch.polar(log_mag.clamp(max=LOG_MAG_MAX).exp(), phase)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return stft_frames.istft(self.spectrum(mel), mel.shape[1])


class ISTFTStream:
    """One batch of streams through ``vocoder``: mel frames in, finalised samples out."""

    def __init__(self, vocoder: ISTFTVocoder, batch: int) -> None:
        self.vocoder = vocoder
        dev = vocoder.head.weight.device
        self.cache = vocoder.backbone.new_cache(batch)
        n, hop = stft_frames.N_FFT, stft_frames.HOP
        # overlap-add buffer: the samples from 160 t - 240 on, before frame t is added
        self.acc = torch.zeros(batch, n, device=dev)
        w = stft_frames.window(self.acc)
        self.synthesis_window = w * (w.sum() / 2)  # undoes stft_frames' scaling, then windows
        self.envelope = float((w * w).reshape(n // hop, hop).sum(0).mean())  # 1.5 for Hann at 4x overlap

    @torch.no_grad()
    def push(self, mel: torch.Tensor) -> torch.Tensor:
        """``[B, n, n_mels]`` -> the ``[B, 160 n]`` samples these frames finalised."""
        spec = self.vocoder.spectrum(mel.float(), self.cache)  # [B, BINS, n]
        frames = torch.fft.irfft(spec.transpose(1, 2), n=stft_frames.N_FFT) * self.synthesis_window  # [B, n, 640]
        hop, out = stft_frames.HOP, []
        for t in range(frames.shape[1]):
            self.acc += frames[:, t]
            out.append(self.acc[:, :hop] / self.envelope)
            self.acc = torch.cat([self.acc[:, hop:], self.acc.new_zeros(self.acc.shape[0], hop)], 1)
        return torch.cat(out, 1)
