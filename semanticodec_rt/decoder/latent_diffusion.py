"""The latent-diffusion decoder: the root module of the official ``decoder.ckpt``.

Key layout (what ``state_dict()`` returns, official names):

* ``model.diffusion_model.*`` -- the v-prediction UNet;
* ``first_stage_model.{decoder, post_quant_conv, vocoder}.*`` -- VAE decoder and HiFi-GAN
  (``first_stage_model.{encoder, quant_conv}.*`` too when built ``with_vae_encoder``);
* the twelve schedule buffers and ``scale_factor`` at the root.

``logvar`` and the ``model_ema.*`` copy are in the checkpoint but never used at inference; the
loader validates and drops them (see :mod:`semanticodec_rt.weights.official`).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..config import CodecConfig
from ..encoder.positional import PositionalEncoding
from ..timing import StageTimes
from .conditioning import fill_window, make_contexts
from .diffusion.ddim import DDIMSchedule, ddim_schedule, sample
from .diffusion.graph import GraphedSampler
from .diffusion.schedule import make_schedule
from .diffusion.unet import UNet
from .synthesis.hifigan import HiFiGAN
from .synthesis.vae import AutoencoderKL


class _DiffusionWrapper(nn.Module):
    """Holds the UNet as ``diffusion_model`` so keys read ``model.diffusion_model.*``."""

    def __init__(self, unet: UNet):
        super().__init__()
        self.diffusion_model = unet


class LatentDiffusionDecoder(nn.Module):
    """Token features of one window -> waveform of one window.

    Args:
        cfg: codec configuration (UNet, VAE, vocoder, diffusion sizes).
        with_vae_encoder: also build the VAE encoder (training needs it; inference does not).
    """

    def __init__(self, cfg: CodecConfig, with_vae_encoder: bool = False):
        super().__init__()
        self.cfg = cfg
        self.model = _DiffusionWrapper(UNet(cfg.unet, context_dim=cfg.context_dim))
        self.first_stage_model = AutoencoderKL(
            cfg.vae, vocoder=HiFiGAN(cfg.vocoder), with_encoder=with_vae_encoder
        )
        for name, buf in make_schedule(cfg.diffusion).items():
            self.register_buffer(name, buf)
        # Divides the latent before the VAE; the checkpoint holds the trained value.
        self.register_buffer("scale_factor", torch.tensor(1.0))
        # Not in the checkpoint: recomputed exactly (errata E2 recipe).
        self.positional = PositionalEncoding(cfg.pe_len, cfg.pe_dim)
        self._ddim_cache: dict[tuple[int, float], DDIMSchedule] = {}
        #: replay the few-step sampling loop as one CUDA graph (distilled models on a GPU)
        self.cuda_graphs = True
        self._graphs: dict[tuple, GraphedSampler] = {}
        #: seconds per stage, accumulated across calls (the caller clears it)
        self.stage_times = StageTimes()

    # -- pieces ----------------------------------------------------------------------------------
    @property
    def unet(self) -> UNet:
        return self.model.diffusion_model

    @property
    def pe(self) -> torch.Tensor:
        """``[pe_len, pe_dim]`` positional table of the conditioning."""
        return self.positional.pe[0]

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """``(C, T, F)`` of one window's latent (8, 256, 16 official)."""
        d = self.cfg.diffusion
        return (d.latent_channels, d.latent_t, d.latent_f)

    def ddim(self, steps: int, eta: float) -> DDIMSchedule:
        """The sampling schedule on the config's grid (``cfg.sampler.spacing``)."""
        key = (int(steps), float(eta))
        if key not in self._ddim_cache:
            self._ddim_cache[key] = ddim_schedule(self.alphas_cumprod, steps, eta, self.cfg.sampler.spacing)
        return self._ddim_cache[key]

    def _denoise(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.unet(x, t, context, None)

    def latent_to_mel(self, z: torch.Tensor) -> torch.Tensor:
        """``[B, 8, T/4, 16]`` latent -> ``[B, 1, T, 64]`` log-mel (undoes ``scale_factor``)."""
        # The reference multiplies by a float32 reciprocal rather than dividing.
        return self.first_stage_model.decode((1.0 / self.scale_factor) * z)

    def _graphed(self, x_T, cond, uncond, step_noise, steps: int, eta: float, cfg_scale: float) -> torch.Tensor:
        """The fused few-step loop as a captured CUDA graph (one per shape and setting, kept):
        equal to the eager loop (tests/test_cuda_graph.py), without a kernel launch per op."""
        schedule = self.ddim(steps, eta)
        key = (tuple(x_T.shape), tuple(cond.shape), int(steps), float(eta), float(cfg_scale), x_T.device)
        graph = self._graphs.get(key)
        if graph is None:
            graph = GraphedSampler(self._denoise, schedule, self.sqrt_alphas_cumprod,
                                   self.sqrt_one_minus_alphas_cumprod, tuple(x_T.shape), tuple(cond.shape),
                                   cfg_scale=cfg_scale, device=x_T.device)
            self._graphs[key] = graph
        noise = None
        if step_noise is not None and eta > 0:
            noise = torch.stack([step_noise(i) for i in range(len(schedule))])
        return graph(x_T, cond, uncond if cfg_scale != 1.0 else None, noise)

    def mel_to_wave(self, mel: torch.Tensor) -> torch.Tensor:
        """``[B, 1, T, 64]`` log-mel -> ``[B, 1, 160 T + 32]`` waveform."""
        return self.first_stage_model.vocoder(mel.squeeze(1).transpose(1, 2))

    # -- one window ------------------------------------------------------------------------------
    def generate(
        self,
        feature: torch.Tensor,
        x_T: torch.Tensor,
        step_noise: Callable[[int], torch.Tensor] | None,
        steps: int = 50,
        eta: float = 1.0,
        cfg_scale: float = 2.0,
        trace: dict | None = None,
        separate_guidance: bool = False,
    ) -> torch.Tensor:
        """Sample one window per batch item.

        Args:
            feature: ``[B, T, 2F]`` token features ([acoustic || semantic]), ``T <= W``;
                right-filled with -1 to W here.
            x_T: ``[B, 8, 256, 16]`` initial noise.
            step_noise: ``i -> [B, 8, 256, 16]`` noise of sampling step i (needed if eta > 0).
            steps, eta, cfg_scale: DDIM settings (reference: 50, 1.0, 2.0).
            trace: optional dict that receives ``latent_in``, ``latent``, ``mel``.
            separate_guidance: two UNet calls per step instead of one batch (the reference's
                formulation, for benchmarks).
        Returns:
            ``[B, 1, 160 * window_frames + 32]`` waveform of the window.
        """
        feature = fill_window(feature, self.cfg.tokens_per_window)
        cond, uncond = make_contexts(feature, self.pe)
        times = self.stage_times
        # Distilled students (trailing grid) take the fused guidance + update kernel; the
        # reference grid keeps the unfused chain its golden vectors were made with.
        fused = self.cfg.sampler.spacing == "trailing" and not separate_guidance
        with times.stage("diffusion"):
            if fused and self.cuda_graphs and x_T.is_cuda and trace is None:
                z = self._graphed(x_T, cond, uncond, step_noise, steps, eta, cfg_scale)
            else:
                z = sample(
                    self._denoise, cond, uncond, x_T, self.ddim(steps, eta), self.sqrt_alphas_cumprod,
                    self.sqrt_one_minus_alphas_cumprod, cfg_scale=cfg_scale, step_noise=step_noise,
                    separate_guidance=separate_guidance, fused=fused,
                )
        with times.stage("vae"):
            mel = self.latent_to_mel(z)
        with times.stage("vocoder"):
            wave = self.mel_to_wave(mel)
        if trace is not None:
            trace.update(latent_in=feature, context=cond, latent=z, mel=mel)
        return wave
