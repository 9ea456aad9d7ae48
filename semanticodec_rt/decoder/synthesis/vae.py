"""Mel VAE of the SemantiCodec decoder (AutoencoderKL) and its diagonal Gaussian posterior.

The latent of a 10.24 s window is ``[8, 256, 16]`` ([channels, time, frequency]); the mel it
decodes to is ``[1, 1024, 64]`` (AudioLDM log-mel: natural log of the clamped linear-mel
magnitude, hop 160 at 16 kHz, 64 bins) -- a factor 4 in time and in frequency.

State-dict names follow the published checkpoint with the ``first_stage_model.`` prefix
removed: ``encoder.*``, ``decoder.*``, ``quant_conv.*``, ``post_quant_conv.*`` and, when a
vocoder is injected, ``vocoder.*``.  Inference only uses ``post_quant_conv`` and ``decoder``;
the encoder and ``quant_conv`` are there for strict loading and for training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...config import VAEConfig
# The VAE up-sampler is the UNet's own (nearest x2 + 3x3 conv, key ``conv``).
from ..diffusion.unet_blocks import Upsample
from .vae_blocks import AttnBlock, Downsample, ResnetBlock, vae_norm


class _Level(nn.Module):
    """One resolution level: ``block`` (ResnetBlocks), an empty ``attn`` list (no attention
    resolutions in the published config) and an optional ``downsample``/``upsample``."""

    def __init__(self, blocks: list[nn.Module]):
        super().__init__()
        self.block = nn.ModuleList(blocks)
        self.attn = nn.ModuleList()


class _Mid(nn.Module):
    """Bottleneck: ResnetBlock, full self-attention, ResnetBlock."""

    def __init__(self, channels: int):
        super().__init__()
        self.block_1 = ResnetBlock(channels)
        self.attn_1 = AttnBlock(channels)
        self.block_2 = ResnetBlock(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class Encoder(nn.Module):
    """Mel ``[B, in_channels, T, M]`` -> moments ``[B, 2*z_channels, T/4, M/4]`` (for the
    published ch_mult of length 3; every level but the last halves time and frequency)."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.conv_in = nn.Conv2d(cfg.in_channels, cfg.ch, 3, padding=1)
        self.down = nn.ModuleList()
        block_in = cfg.ch
        n_levels = len(cfg.ch_mult)
        for i, mult in enumerate(cfg.ch_mult):
            block_out = cfg.ch * mult
            blocks = []
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResnetBlock(block_in, block_out))
                block_in = block_out
            level = _Level(blocks)
            if i != n_levels - 1:
                level.downsample = Downsample(block_in)
            self.down.append(level)
        self.mid = _Mid(block_in)
        self.norm_out = vae_norm(block_in)
        out = 2 * cfg.z_channels if cfg.double_z else cfg.z_channels
        self.conv_out = nn.Conv2d(block_in, out, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down:
            for block in level.block:
                h = block(h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """Latent ``[B, z_channels, T/4, M/4]`` -> mel ``[B, out_ch, T, M]``.

    ``up`` is indexed by resolution level (``up.0`` is the finest) but run deepest first;
    each level has ``num_res_blocks + 1`` ResnetBlocks and all but level 0 end with an Upsample.
    """

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        n_levels = len(cfg.ch_mult)
        block_in = cfg.ch * cfg.ch_mult[-1]
        self.conv_in = nn.Conv2d(cfg.z_channels, block_in, 3, padding=1)
        self.mid = _Mid(block_in)
        levels: list[_Level] = []
        for i in reversed(range(n_levels)):
            block_out = cfg.ch * cfg.ch_mult[i]
            blocks = []
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(ResnetBlock(block_in, block_out))
                block_in = block_out
            level = _Level(blocks)
            if i != 0:
                level.upsample = Upsample(block_in)
            levels.insert(0, level)
        self.up = nn.ModuleList(levels)
        self.norm_out = vae_norm(block_in)
        self.conv_out = nn.Conv2d(block_in, cfg.out_ch, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            for block in level.block:
                h = block(h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class DiagonalGaussian:
    """Posterior ``N(mean, exp(logvar))`` from moments ``[B, 2C, T, F]`` split on channels
    (first half mean, second half log-variance, clamped to [-30, 20])."""

    def __init__(self, moments: torch.Tensor):
        self.mean, logvar = moments.chunk(2, dim=1)
        self.logvar = logvar.clamp(-30.0, 20.0)
        self.std = torch.exp(0.5 * self.logvar)
        self.var = torch.exp(self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Reparameterised draw ``mean + std * eps``, ``[B, C, T, F]``."""
        eps = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * eps

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self) -> torch.Tensor:
        """KL to the standard normal, summed over C, T, F: ``[B]``."""
        return 0.5 * (self.mean.pow(2) + self.var - 1.0 - self.logvar).sum(dim=(1, 2, 3))


class AutoencoderKL(nn.Module):
    """Mel VAE with an optional injected vocoder.

    Args:
        cfg: sizes (published: ch 128, ch_mult (1, 2, 4), z 8).
        vocoder: module mapping ``[B, n_mels, T]`` to ``[B, 1, samples]``; registered as
            ``vocoder`` so the checkpoint keys ``vocoder.*`` load into it.
        with_encoder: build ``encoder`` and ``quant_conv`` (unused at inference).  Without them
            the ``encoder.*``/``quant_conv.*`` checkpoint keys must be dropped before loading.
    """

    def __init__(self, cfg: VAEConfig, vocoder: nn.Module | None = None, with_encoder: bool = True):
        super().__init__()
        self.cfg = cfg
        if with_encoder:
            self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        if with_encoder:
            moments = 2 * cfg.z_channels if cfg.double_z else cfg.z_channels
            self.quant_conv = nn.Conv2d(moments, 2 * cfg.embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(cfg.embed_dim, cfg.z_channels, 1)
        if vocoder is not None:
            self.vocoder = vocoder

    def encode(self, mel: torch.Tensor) -> DiagonalGaussian:
        """Mel ``[B, 1, T, 64]`` -> posterior over latents ``[B, embed_dim, T/4, 16]``."""
        if not hasattr(self, "encoder"):
            raise RuntimeError("this AutoencoderKL was built with with_encoder=False")
        return DiagonalGaussian(self.quant_conv(self.encoder(mel)))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent ``[B, 8, T/4, 16]`` -> log-mel ``[B, 1, T, 64]`` (no scale factor applied)."""
        return self.decoder(self.post_quant_conv(z))

    def decode_first_stage(self, z: torch.Tensor, scale_factor: torch.Tensor | float) -> torch.Tensor:
        """Decode a diffusion latent: ``decode((1 / scale_factor) * z)``.

        The reciprocal is taken in float32 and then multiplied in, exactly as the published
        decoder does (dividing directly can differ in the last bit).
        """
        sf = torch.as_tensor(scale_factor, dtype=torch.float32)
        inv = (1.0 / sf).to(device=z.device, dtype=z.dtype)
        return self.decode(inv * z)

    def vocode(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel ``[B, 1, T, n_mels]`` -> waveform ``[B, 1, 160*T + 32]`` with the vocoder."""
        if not hasattr(self, "vocoder"):
            raise RuntimeError("no vocoder was injected into this AutoencoderKL")
        return self.vocoder(mel.squeeze(1).transpose(1, 2))
