"""The latent-diffusion UNet of the SemantiCodec decoder (openaimodel layout).

Layout (published config: model_channels 64, channel_mult (1, 2, 3, 5), 2 res blocks per
level, attention at downsampling factors 8/4/2, 32 channels per head):

- ``time_embed``: Linear(mc, 4mc) -> SiLU -> Linear(4mc, 4mc) on the cos-first sinusoidal
  embedding of the timestep.
- ``input_blocks``: a 3x3 conv in, then per level ``num_res_blocks`` x (ResBlock [+ attention])
  and a Downsample between levels.
- ``middle_block``: ResBlock, attention, ResBlock.
- ``output_blocks``: per level (deepest first) ``num_res_blocks + 1`` x (ResBlock on
  ``[h || skip]`` [+ attention]), with an Upsample closing every level but the last.
- ``out``: GroupNorm -> SiLU -> 3x3 conv.

"Attention" at a level is, with ``extra_sa_layer``, two SpatialTransformers: the first is
self-only (its ``attn2`` is a second self-attention and it ignores the mask), the second
cross-attends to the conditioning with the key mask.

Tensor layout: ``[B, C, T, F]`` with T = latent time (256 per 10.24 s window) and F = latent
frequency (16).  All sizes come from :class:`~semanticodec_rt.config.UNetConfig`.
"""

from __future__ import annotations

import torch
from torch import nn

from ...config import UNetConfig
from .attention import SpatialTransformer, zero_init_
from .unet_blocks import (
    Downsample, ResBlock, TimestepEmbedSequential, Upsample, normalization, timestep_embedding,
)


class UNet(nn.Module):
    """v-prediction UNet; state_dict keys equal the published ``model.diffusion_model.*``."""

    def __init__(self, cfg: UNetConfig, context_dim: int):
        super().__init__()
        self.cfg = cfg
        self.context_dim = context_dim
        mc = cfg.model_channels
        emb_dim = 4 * mc

        self.time_embed = nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

        self.input_blocks = nn.ModuleList(
            [TimestepEmbedSequential(nn.Conv2d(cfg.in_channels, mc, 3, padding=1))]
        )
        skip_channels = [mc]  # channel count of every input-block output, in order
        ch = mc
        ds = 1  # current downsampling factor
        n_levels = len(cfg.channel_mult)
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers: list[nn.Module] = [ResBlock(ch, emb_dim, mult * mc)]
                ch = mult * mc
                if ds in cfg.attention_resolutions:
                    layers += self._attention(ch)
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                skip_channels.append(ch)
            if level != n_levels - 1:
                self.input_blocks.append(TimestepEmbedSequential(Downsample(ch)))
                skip_channels.append(ch)
                ds *= 2

        self.middle_block = TimestepEmbedSequential(
            ResBlock(ch, emb_dim), *self._attention(ch), ResBlock(ch, emb_dim)
        )

        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                layers = [ResBlock(ch + skip_channels.pop(), emb_dim, mult * mc)]
                ch = mult * mc
                if ds in cfg.attention_resolutions:
                    layers += self._attention(ch)
                if level != 0 and i == cfg.num_res_blocks:
                    layers.append(Upsample(ch))
                    ds //= 2
                self.output_blocks.append(TimestepEmbedSequential(*layers))

        self.out = nn.Sequential(normalization(ch), nn.SiLU(), nn.Conv2d(mc, cfg.out_channels, 3, padding=1))
        zero_init_(self.out[2])  # published init

    def _attention(self, ch: int) -> list[nn.Module]:
        """The SpatialTransformer(s) of one attention level at width ``ch``."""
        heads = ch // self.cfg.num_head_channels
        d_head = self.cfg.num_head_channels
        depth = self.cfg.transformer_depth
        layers: list[nn.Module] = []
        if self.cfg.extra_sa_layer:
            layers.append(SpatialTransformer(ch, heads, d_head, depth, context_dim=None))
        layers.append(SpatialTransformer(ch, heads, d_head, depth, context_dim=self.context_dim))
        return layers

    def forward(
        self,
        x: torch.Tensor,
        timesteps: torch.Tensor,
        context: torch.Tensor,
        context_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict v for a batch of noisy latents.

        Args:
            x: ``[B, C_in, T, F]`` noisy latents (T, F divisible by 2^(levels-1)).
            timesteps: ``[B]`` diffusion timesteps (0..999).
            context: ``[B, L, context_dim]`` conditioning sequence.
            context_mask: ``[B, L]`` key mask of the cross-attention (keys with value != 1 are
                ignored) or None for no masking.  The published code always passes all ones,
                which equals None; prefer None then (it lets SDPA pick its fastest kernel).
        Returns:
            ``[B, C_out, T, F]``.

        Batch items are independent, so cond and uncond may share one batch.
        """
        emb = self.time_embed(timestep_embedding(timesteps, self.cfg.model_channels).to(x.dtype))
        skips = []
        h = x
        for block in self.input_blocks:
            h = block(h, emb, context, context_mask)
            skips.append(h)
        h = self.middle_block(h, emb, context, context_mask)
        for block in self.output_blocks:
            h = torch.cat([h, skips.pop()], dim=1)
            h = block(h, emb, context, context_mask)
        return self.out(h)
