"""A causal ConvNeXt stack over 10 ms frames: the backbone of the frame-rate vocoders.

Each block: depthwise conv (kernel k, left-padded so frame t sees frames t-k+1..t), LayerNorm
over channels, pointwise ``C -> 3C`` GELU ``-> C``, a learned per-channel scale (starts small, so
a fresh stack is close to the identity), residual add.  Causal because the decoder streams: the
log-mel frame t already looks 27 ms ahead (its 1024-sample window), and every frame of
lookahead here would add 10 ms of latency per block.

Shapes: ``[B, C, T]`` in and out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvNeXtBlock(nn.Module):
    def __init__(self, channels: int, kernel: int = 7, expansion: int = 3, scale: float = 0.1) -> None:
        super().__init__()
        self.kernel = kernel
        self.dw = nn.Conv1d(channels, channels, kernel, groups=channels)
        self.norm = nn.LayerNorm(channels)
        self.pw1 = nn.Linear(channels, expansion * channels)
        self.pw2 = nn.Linear(expansion * channels, channels)
        self.gamma = nn.Parameter(torch.full((channels,), scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dw(F.pad(x, (self.kernel - 1, 0))).transpose(1, 2)  # [B, T, C]
        y = self.pw2(F.gelu(self.pw1(self.norm(y))))
        return x + (self.gamma * y).transpose(1, 2)


class CausalConvNeXt(nn.Module):
    """Args: in_dim (input features per frame), channels, blocks, kernel.

    ``[B, in_dim, T]`` -> ``[B, channels, T]``.
    """

    def __init__(self, in_dim: int, channels: int, blocks: int, kernel: int = 7) -> None:
        super().__init__()
        self.kernel = kernel
        self.inp = nn.Conv1d(in_dim, channels, kernel)
        self.blocks = nn.ModuleList(ConvNeXtBlock(channels, kernel) for _ in range(blocks))
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inp(F.pad(x, (self.kernel - 1, 0)))
        for b in self.blocks:
            x = b(x)
        return self.norm(x.transpose(1, 2)).transpose(1, 2)
