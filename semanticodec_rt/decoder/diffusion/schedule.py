"""The 1000-step DDPM noise schedule of the latent diffusion decoder.

The published decoder stores twelve ``[1000]`` float32 schedule buffers in ``decoder.ckpt``.
They are derived here from the float64 beta schedule *entirely in float64* and cast to float32
at the end: deriving them in float32 instead is off by up to 2.3e-5 (errata E3), which matters
for bit-exact reproduction when a model is built from scratch.  Inference of a loaded model
uses the checkpoint's own buffers.
"""

from __future__ import annotations

import torch

from ...config import DiffusionConfig

SCHEDULE_BUFFER_NAMES = (
    "betas",
    "alphas_cumprod",
    "alphas_cumprod_prev",
    "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod",
    "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod",
    "posterior_variance",
    "posterior_log_variance_clipped",
    "posterior_mean_coef1",
    "posterior_mean_coef2",
)


def linear_betas(cfg: DiffusionConfig) -> torch.Tensor:
    """``[T]`` float64 betas: squares of a linear ramp between sqrt(start) and sqrt(end)."""
    ramp = torch.linspace(cfg.linear_start**0.5, cfg.linear_end**0.5, cfg.timesteps, dtype=torch.float64)
    return ramp**2


def make_schedule(cfg: DiffusionConfig) -> dict[str, torch.Tensor]:
    """All twelve schedule buffers, ``[T]`` float32 each, keyed by their checkpoint names.

    Standard DDPM formulas with v_posterior = 0; the posterior log-variance is clipped at
    1e-20 so its first entry is ln(1e-20) = -46.05 instead of -inf.
    """
    betas = linear_betas(cfg)
    alphas = 1.0 - betas
    ac = torch.cumprod(alphas, dim=0)
    ac_prev = torch.cat([torch.ones(1, dtype=torch.float64), ac[:-1]])
    post_var = betas * (1.0 - ac_prev) / (1.0 - ac)
    buffers = {
        "betas": betas,
        "alphas_cumprod": ac,
        "alphas_cumprod_prev": ac_prev,
        "sqrt_alphas_cumprod": ac.sqrt(),
        "sqrt_one_minus_alphas_cumprod": (1.0 - ac).sqrt(),
        "log_one_minus_alphas_cumprod": (1.0 - ac).log(),
        "sqrt_recip_alphas_cumprod": (1.0 / ac).sqrt(),
        "sqrt_recipm1_alphas_cumprod": (1.0 / ac - 1.0).sqrt(),
        "posterior_variance": post_var,
        "posterior_log_variance_clipped": post_var.clamp(min=1e-20).log(),
        "posterior_mean_coef1": betas * ac_prev.sqrt() / (1.0 - ac),
        "posterior_mean_coef2": (1.0 - ac_prev) * alphas.sqrt() / (1.0 - ac),
    }
    return {k: v.to(torch.float32) for k, v in buffers.items()}
