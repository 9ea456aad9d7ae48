"""HiFi-GAN generator (resblock type "1") that turns the VAE's 64-bin log-mel into 16 kHz audio.

Published config: conv_pre 64 -> 1024 (k7), five transposed-conv stages with rates
(5, 4, 2, 2, 2) = hop 160 and kernels (16, 16, 8, 4, 4), halving the channels each time
(1024 -> 32), each followed by the mean of three multi-receptive-field residual blocks
(kernels 3/7/11, dilations 1/3/5), then conv_post 32 -> 1 (k7) and tanh.

Weight norm is already folded into plain ``weight``/``bias`` (the published vocoder removes it at
construction), so the state_dict keys are ``conv_pre.*``, ``ups.i.*``,
``resblocks.k.convs{1,2}.j.*`` and ``conv_post.*``; stage i owns resblocks 3i, 3i+1, 3i+2.

Output length: the first transposed conv maps L frames to 5L + 1 samples, the others are exact
multiples, so the waveform has ``160 * L + 32`` samples.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...config import VocoderConfig

LRELU_SLOPE = 0.1  # every leaky ReLU except the last one, which keeps torch's default 0.01


def _same_padding(kernel_size: int, dilation: int) -> int:
    """Padding that keeps the length of a stride-1 conv: ``(k*d - d) / 2``."""
    return (kernel_size * dilation - dilation) // 2


class ResBlock1(nn.Module):
    """Three residual units ``x += conv2_j(lrelu(conv1_j(lrelu(x))))``; ``conv1_j`` has
    dilation ``d_j``, ``conv2_j`` dilation 1.  Works on ``[B, C, N]``, length preserved."""

    def __init__(self, channels: int, kernel_size: int, dilations: tuple[int, ...]):
        super().__init__()
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=_same_padding(kernel_size, d))
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, dilation=1, padding=_same_padding(kernel_size, 1))
            for _ in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            xt = c1(F.leaky_relu(x, LRELU_SLOPE))
            xt = c2(F.leaky_relu(xt, LRELU_SLOPE))
            x = xt + x
        return x


class HiFiGAN(nn.Module):
    """Mel ``[B, num_mels, L]`` (10 ms frames) -> waveform ``[B, 1, 160*L + 32]`` in [-1, 1]."""

    def __init__(self, cfg: VocoderConfig):
        super().__init__()
        self.cfg = cfg
        self.num_kernels = len(cfg.resblock_kernel_sizes)
        ch0 = cfg.upsample_initial_channel
        self.conv_pre = nn.Conv1d(cfg.num_mels, ch0, 7, padding=3)
        self.ups = nn.ModuleList()
        for i, (u, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes)):
            self.ups.append(
                nn.ConvTranspose1d(ch0 // 2**i, ch0 // 2 ** (i + 1), k, stride=u, padding=(k - u) // 2)
            )
        self.resblocks = nn.ModuleList()
        for i in range(len(self.ups)):
            ch = ch0 // 2 ** (i + 1)
            for k, d in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes):
                self.resblocks.append(ResBlock1(ch, k, tuple(d)))
        self.conv_post = nn.Conv1d(ch0 // 2 ** len(self.ups), 1, 7, padding=3)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(mel)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            # Sum in resblock order, then divide: the published evaluation order.
            acc = None
            for j in range(self.num_kernels):
                r = self.resblocks[i * self.num_kernels + j](x)
                acc = r if acc is None else acc + r
            x = acc / self.num_kernels
        x = self.conv_post(F.leaky_relu(x))  # default slope 0.01, as published
        return torch.tanh(x)
