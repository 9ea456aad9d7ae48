"""A causal ConvNeXt stack over 10 ms frames: the backbone of the frame-rate vocoders.

Each block: depthwise conv (kernel k, left-padded so frame t sees frames t-k+1..t), LayerNorm
over channels, pointwise ``C -> 3C`` GELU ``-> C``, a learned per-channel scale (starts small, so
a fresh stack is close to the identity), residual add.  Causal because the decoder streams: the
log-mel frame t already looks 27 ms ahead (its 1024-sample window), and every frame of
lookahead here would add 10 ms of latency per block.

Streaming: ``forward(x, cache)`` with a :func:`CausalConvNeXt.new_cache` carries each
convolution's last ``k - 1`` input frames from call to call, so frames fed in pieces give what
the whole sequence gives (zeros stand in before the first frame, as the offline left padding).

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

    def forward(self, x: torch.Tensor, cache: list | None = None) -> torch.Tensor:
        y = self.dw(_history(x, self.kernel, cache)).transpose(1, 2)  # [B, T, C]
        y = self.pw2(F.gelu(self.pw1(self.norm(y))))
        return x + (self.gamma * y).transpose(1, 2)


def _history(x: torch.Tensor, kernel: int, cache: list | None) -> torch.Tensor:
    """``x [B, C, T]`` with the ``kernel - 1`` frames before it in front: zeros offline (``cache``
    None), else ``cache[0]``, which is replaced by the new last ``kernel - 1`` frames."""
    if cache is None:
        return F.pad(x, (kernel - 1, 0))
    full = torch.cat([cache[0], x], -1)
    cache[0] = full[..., full.shape[-1] - (kernel - 1):]
    return full


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

    def new_cache(self, batch: int) -> list[list[torch.Tensor]]:
        """A stream's start: one ``[[B, C, k - 1]]`` history of zeros per convolution (on the
        stack's device)."""
        k, dev = self.kernel - 1, self.inp.weight.device
        return [[torch.zeros(batch, self.inp.in_channels, k, device=dev)]] + [
            [torch.zeros(batch, b.dw.in_channels, k, device=dev)] for b in self.blocks]

    def forward(self, x: torch.Tensor, cache: list | None = None) -> torch.Tensor:
        """``cache``: None for a whole sequence, else a stream's :meth:`new_cache` (updated)."""
        x = self.inp(_history(x, self.kernel, None if cache is None else cache[0]))
        for i, b in enumerate(self.blocks):
            x = b(x, None if cache is None else cache[i + 1])
        return self.norm(x.transpose(1, 2)).transpose(1, 2)
