"""Building blocks of the mel VAE (AutoencoderKL): ResnetBlock, single-head AttnBlock,
Downsample and Upsample.

State-dict names follow the published checkpoint (``first_stage_model.{encoder,decoder}.*``):
ResnetBlock ``norm1``/``conv1``/``norm2``/``conv2``/``nin_shortcut``; AttnBlock
``norm``/``q``/``k``/``v``/``proj_out``; Downsample/Upsample ``conv``.  Every GroupNorm has
32 groups and eps 1e-6.  No timestep embedding anywhere.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def vae_norm(channels: int) -> nn.GroupNorm:
    """The VAE's GroupNorm: 32 groups, eps 1e-6, affine."""
    return nn.GroupNorm(32, channels, eps=1e-6)


class ResnetBlock(nn.Module):
    """``out = skip(x) + conv3x3(swish(GN(conv3x3(swish(GN(x))))))``; skip is the identity or
    a 1x1 conv (``nin_shortcut``) when the channel count changes.  Works on ``[B, C, T, F]``."""

    def __init__(self, in_channels: int, out_channels: int | None = None):
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        self.norm1 = vae_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = vae_norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))  # the published dropout (p = 0) sat before conv2
        skip = x if self.nin_shortcut is None else self.nin_shortcut(x)
        return skip + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all T*F positions of ``[B, C, T, F]``, with a residual.

    q, k, v and the output projection are 1x1 convs; the softmax scale is ``C ** -0.5``.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.norm = vae_norm(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, f = x.shape
        h = self.norm(x)
        # [B, 1, T*F, C]: one head whose width is the full channel count.
        q, k, v = (conv(h).flatten(2).transpose(1, 2)[:, None] for conv in (self.q, self.k, self.v))
        h = F.scaled_dot_product_attention(q, k, v)
        h = h[:, 0].transpose(1, 2).reshape(b, c, t, f)
        return x + self.proj_out(h)


class Downsample(nn.Module):
    """Halve time and frequency: zero-pad one row/column at the end (bottom/right), then a
    3x3 stride-2 conv without padding (the published asymmetric padding)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))
