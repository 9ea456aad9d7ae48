"""Building blocks of the latent-diffusion UNet: timestep embedding, ResBlock, Downsample,
Upsample and the block container that routes the timestep embedding and the context.

State-dict names follow the published checkpoint (``model.diffusion_model.*``): ResBlock
``in_layers.{0,2}``, ``emb_layers.1``, ``out_layers.{0,3}``, ``skip_connection``; Downsample
``op``; Upsample ``conv``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .attention import SpatialTransformer, zero_init_


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (integer or fractional) diffusion timesteps, cosines first.

    Args:
        timesteps: ``[B]`` timesteps (any numeric dtype).
        dim: embedding width (the UNet's model_channels).
    Returns:
        ``[B, dim]`` float32 ``[cos(t w_i) || sin(t w_i)]`` with ``w_i = max_period^(-i/half)``
        (an odd ``dim`` gets one zero column at the end).

    The frequencies are evaluated in float32 as ``exp((-ln(max_period) * i) / half)``, the
    published evaluation order.
    """
    half = dim // 2
    idx = torch.arange(half, dtype=torch.float32, device=timesteps.device)
    freqs = torch.exp(-math.log(max_period) * idx / half)
    args = timesteps[:, None].float() * freqs[None, :]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class GroupNorm32(nn.GroupNorm):
    """GroupNorm that always normalises in float32 and casts back (matches the published
    ``GroupNorm32``; a no-op difference in float32, it keeps half precision stable)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).type(x.dtype)


def normalization(channels: int) -> nn.GroupNorm:
    """The UNet's GroupNorm: 32 groups, eps 1e-5."""
    return GroupNorm32(32, channels)


class ResBlock(nn.Module):
    """Residual block conditioned on the timestep embedding.

    ``h = conv3x3(SiLU(GN(x))) + Linear(SiLU(emb))[:, :, None, None]``,
    ``out = skip(x) + conv3x3(SiLU(GN(h)))``; ``skip`` is the identity or a 1x1 conv when
    the channel count changes.
    """

    def __init__(self, channels: int, emb_channels: int, out_channels: int | None = None):
        super().__init__()
        out_channels = channels if out_channels is None else out_channels
        self.in_layers = nn.Sequential(
            normalization(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1)
        )
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, out_channels))
        # Index 2 is the published (p = 0) dropout; kept so the conv stays at index 3.
        self.out_layers = nn.Sequential(
            normalization(out_channels),
            nn.SiLU(),
            nn.Identity(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        if out_channels == channels:
            self.skip_connection = nn.Identity()
        else:
            self.skip_connection = nn.Conv2d(channels, out_channels, 1)
        zero_init_(self.out_layers[3])  # published init: the block starts as its skip path

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """``x``: ``[B, C_in, T, F]``; ``emb``: ``[B, emb_channels]``.  Returns ``[B, C_out, T, F]``."""
        h = self.in_layers(x)
        h = h + self.emb_layers(emb).type(h.dtype)[:, :, None, None]
        h = self.out_layers(h)
        return self.skip_connection(x) + h


class Downsample(nn.Module):
    """Halve time and frequency with a 3x3 stride-2 conv (padding 1)."""

    def __init__(self, channels: int):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Double time and frequency: nearest-neighbour x2, then a 3x3 conv (padding 1)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class TimestepEmbedSequential(nn.Sequential):
    """A UNet block: layers applied in order, each given what it needs.

    ResBlocks get the timestep embedding.  A SpatialTransformer built with a ``context_dim``
    (the cross-attention one) gets the context and its key mask; a self-only one
    (``context_dim=None``, the "extra self-attention layer") gets neither, so it never sees
    the mask.  Any other layer gets only the feature map.
    """

    def forward(
        self,
        x: torch.Tensor,
        emb: torch.Tensor,
        context: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb)
            elif isinstance(layer, SpatialTransformer):
                if layer.context_dim is None:
                    x = layer(x)
                else:
                    x = layer(x, context=context, mask=mask)
            else:
                x = layer(x)
        return x
