"""DDIM sampling for the v-parameterised latent diffusion decoder.

Three pieces, kept apart so each can be tested and later fused:

* :func:`ddim_schedule` -- the sub-sampled timesteps and their alphas / sigmas, with the
  reference's dtypes (float32 alphas, float64 alphas_prev and sigmas; float32 for S = 1,
  a numpy promotion quirk of the reference, errata E4).
* :func:`ddim_step_v` -- one update from a (guided) v prediction.  ``sample(fused=True)`` runs
  guidance and this update as one kernel instead, :func:`semanticodec_rt.ops.sampler_step`
  (twin: ``ops.ref.sampler_step_ref``, the same chain with correctly rounded square roots).
* :func:`sample` -- the loop.  Classifier-free guidance runs the unconditional and
  conditional branch as ONE UNet batch (the reference makes two batch-1 calls).

Noise is injected, never drawn here: ``x_T`` and one ``[B, C, T, F]`` tensor per step (the
reference draws a fresh z at every step including the last, because sigma_last > 0 at eta 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ... import ops


@dataclass(frozen=True)
class DDIMSchedule:
    """Sub-sampled DDIM schedule, in *sampling* order reversed: index 0 is the last step (t=1).

    Attributes:
        timesteps: ``[S]`` int64 model timesteps, ascending (1, 1+c, 1+2c, ...).
        alphas: ``[S]`` float32 alpha-bar at each timestep.
        alphas_prev: ``[S]`` alpha-bar of the next-lower timestep; alpha-bar[0] for the last step
            (not 1).  float64 (float32 when S = 1, as the reference produces it).
        sigmas: ``[S]`` eta-scaled DDIM noise levels, same dtype as ``alphas_prev``.
        sqrt_one_minus_alphas: ``[S]`` float32 (kept for parity; the v-step does not use it).
    """

    timesteps: torch.Tensor
    alphas: torch.Tensor
    alphas_prev: torch.Tensor
    sigmas: torch.Tensor
    sqrt_one_minus_alphas: torch.Tensor

    def __len__(self) -> int:
        return int(self.timesteps.numel())


def ddim_timesteps(steps: int, num_timesteps: int = 1000) -> torch.Tensor:
    """Uniform DDIM timesteps ``{0, c, 2c, ...} + 1`` with ``c = T // steps``.

    When ``steps`` does not divide ``T`` the count differs from ``steps`` (30 -> 31 steps),
    exactly like the reference.
    """
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"steps must be in [1, {num_timesteps}], got {steps}")
    c = num_timesteps // steps
    ts = torch.arange(0, num_timesteps, c, dtype=torch.int64) + 1
    if int(ts[-1]) >= num_timesteps:
        # c divides T - 1 (steps 3, 9, 27, 37, 111, 333, 1000): the last timestep is T, past the
        # schedule.  The reference crashes with an IndexError there; say so clearly instead.
        raise ValueError(
            f"steps={steps} is not usable with the uniform DDIM schedule (it would need timestep "
            f"{int(ts[-1])} of {num_timesteps}); use {steps - 1} or {steps + 1}"
        )
    return ts


def trailing_timesteps(steps: int, num_timesteps: int = 1000) -> torch.Tensor:
    """Trailing grid ``floor(i T / S) - 1`` for i = 1..S, ascending; the top is ``T - 1``.

    The grids nest: the grid of ``S / r`` is every r-th point of the grid of S (the same
    formula at ``i = r j``), which progressive distillation needs (one student step spans
    exactly r teacher steps).  Below the lowest point lies the clean latent (alpha-bar 1).
    """
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"steps must be in [1, {num_timesteps}], got {steps}")
    i = torch.arange(1, steps + 1, dtype=torch.int64)
    return (i * num_timesteps) // steps - 1


def trailing_schedule(alphas_cumprod: torch.Tensor, steps: int, eta: float = 0.0) -> DDIMSchedule:
    """DDIM parameters on the :func:`trailing_timesteps` grid; the last step lands on alpha-bar 1
    (a clean latent), so ``x_prev`` of the last step is exactly its ``pred_x0``."""
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    ac = alphas_cumprod.detach().cpu().to(torch.float32)
    ts = trailing_timesteps(steps, ac.numel())
    alphas = ac[ts]
    prev = torch.cat([torch.ones(1), ac[ts[:-1]]]).to(torch.float64)
    a64 = alphas.to(torch.float64)
    sigmas = eta * torch.sqrt((1 - prev) / (1 - a64) * (1 - a64 / prev))
    return DDIMSchedule(timesteps=ts, alphas=alphas, alphas_prev=prev, sigmas=sigmas,
                        sqrt_one_minus_alphas=torch.sqrt(1.0 - alphas))


def ddim_schedule(alphas_cumprod: torch.Tensor, steps: int, eta: float = 1.0, spacing: str = "uniform") -> DDIMSchedule:
    """Build the DDIM parameters from the model's ``[T]`` float32 alpha-bar buffer.

    ``spacing="trailing"`` gives :func:`trailing_schedule` (distilled students).
    """
    if spacing == "trailing":
        return trailing_schedule(alphas_cumprod, steps, eta)
    if spacing != "uniform":
        raise ValueError(f"spacing must be 'uniform' or 'trailing', got {spacing!r}")
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    ac = alphas_cumprod.detach().cpu().to(torch.float32)
    ts = ddim_timesteps(steps, ac.numel())
    alphas = ac[ts]
    if ts.numel() > 1:
        # The reference builds alphas_prev as a numpy float64 array from float32 values.
        prev = torch.cat([ac[:1], ac[ts[:-1]]]).to(torch.float64)
    else:
        # ... but a one-element list holding a 0-d float32 tensor stays float32.
        prev = ac[:1].clone()
    a64 = alphas.to(prev.dtype)
    sigmas = eta * torch.sqrt((1 - prev) / (1 - a64) * (1 - a64 / prev))
    return DDIMSchedule(
        timesteps=ts,
        alphas=alphas,
        alphas_prev=prev,
        sigmas=sigmas,
        sqrt_one_minus_alphas=torch.sqrt(1.0 - alphas),
    )


def cfg_combine(v_cond: torch.Tensor, v_uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance: ``v_u + scale * (v_c - v_u)`` (the reference's order)."""
    return v_uncond + scale * (v_cond - v_uncond)


def ddim_step_v(
    x_t: torch.Tensor,
    v: torch.Tensor,
    sqrt_ac_t: float,
    sqrt_1m_ac_t: float,
    a_prev: float,
    sigma: float,
    noise: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One DDIM update from a v prediction (reference twin of the fused step kernel).

    Args:
        x_t: ``[B, C, T, F]`` current latent.
        v: ``[B, C, T, F]`` (guided) v prediction.
        sqrt_ac_t, sqrt_1m_ac_t: sqrt(alpha-bar_t) and sqrt(1 - alpha-bar_t) from the model's
            1000-step float32 buffers at the integer timestep t.
        a_prev: alpha-bar of the target timestep.
        sigma: DDIM noise level of this step.
        noise: ``[B, C, T, F]`` standard normal, required when ``sigma > 0``.
    Returns:
        ``(x_prev, pred_x0)``, both ``[B, C, T, F]``.

    All scalars are applied as float32 tensors, as the reference broadcasts them.
    """
    f32 = dict(dtype=x_t.dtype, device=x_t.device)
    sa, s1 = torch.tensor(sqrt_ac_t, **f32), torch.tensor(sqrt_1m_ac_t, **f32)
    ap, sg = torch.tensor(a_prev, **f32), torch.tensor(sigma, **f32)
    eps = sa * v + s1 * x_t
    pred_x0 = sa * x_t - s1 * v
    dir_xt = (1.0 - ap - sg**2).sqrt() * eps
    x_prev = ap.sqrt() * pred_x0 + dir_xt
    if sigma != 0.0:
        if noise is None:
            raise ValueError("noise is required when sigma > 0 (eta > 0)")
        x_prev = x_prev + sg * noise
    return x_prev, pred_x0


# A denoiser maps (x [B,C,T,F], t [B] int64, context [B,L,D]) -> v [B,C,T,F].
Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def sample(
    denoiser: Denoiser,
    cond: torch.Tensor,
    uncond: torch.Tensor | None,
    x_T: torch.Tensor,
    schedule: DDIMSchedule,
    sqrt_alphas_cumprod: torch.Tensor,
    sqrt_one_minus_alphas_cumprod: torch.Tensor,
    cfg_scale: float = 2.0,
    step_noise: Callable[[int], torch.Tensor] | None = None,
    callback: Callable[[dict], None] | None = None,
    separate_guidance: bool = False,
    fused: bool = False,
) -> torch.Tensor:
    """Run the DDIM loop from ``x_T`` down to the final latent.

    Args:
        denoiser: the v-prediction network.
        cond: ``[B, L, D]`` conditional context.
        uncond: ``[B, L, D]`` unconditional context; ignored when ``cfg_scale == 1``.
        x_T: ``[B, C, T, F]`` initial noise.
        schedule: from :func:`ddim_schedule`.
        sqrt_alphas_cumprod, sqrt_one_minus_alphas_cumprod: the model's ``[1000]`` buffers.
        cfg_scale: guidance scale; 1 disables guidance (one branch only).
        step_noise: ``i -> [B, C, T, F]`` noise for sampling step ``i`` (0 = first step, the
            highest t).  Needed when any sigma is non-zero.
        callback: called after each step with ``{"i", "t", "x", "pred_x0", "v"}``.
        separate_guidance: run the two guidance branches as two UNet calls (uncond, then
            cond), the reference's formulation; kept for benchmarks.
        fused: do guidance and the update with the fused kernel :func:`ops.sampler_step`
            (backend chosen as for every op) instead of :func:`cfg_combine` +
            :func:`ddim_step_v`. Same math and rounding order; only ``x_prev`` may move by about
            one float32 ulp per step, where ``torch.sqrt`` is not correctly rounded (see
            :func:`ops.ref.sampler_step_ref`).
    Returns:
        ``[B, C, T, F]`` final latent (pre-VAE, still scaled by the model's scale_factor).
    """
    guided = uncond is not None and cfg_scale != 1.0
    if guided:
        if uncond.shape != cond.shape:
            raise ValueError(f"uncond {tuple(uncond.shape)} and cond {tuple(cond.shape)} differ")
        # One batch: [uncond ; cond].  The reference's two batch-1 calls give the same result
        # up to float32 reassociation inside the UNet.
        ctx = torch.cat([uncond, cond], dim=0)
    else:
        ctx = cond
    sac = sqrt_alphas_cumprod.detach().cpu().to(torch.float32)
    s1m = sqrt_one_minus_alphas_cumprod.detach().cpu().to(torch.float32)
    alphas_prev = schedule.alphas_prev.tolist()
    sigmas = schedule.sigmas.tolist()
    x = x_T
    n = len(schedule)
    batch = x.shape[0]
    for i in range(n):
        index = n - 1 - i
        t = int(schedule.timesteps[index])
        t_vec = torch.full((2 * batch if guided else batch,), t, dtype=torch.int64, device=x.device)
        if guided and separate_guidance:
            half = t_vec[:batch]
            out = torch.cat([denoiser(x, half, uncond), denoiser(x, half, cond)], dim=0)
        else:
            out = denoiser(torch.cat([x, x], dim=0) if guided else x, t_vec, ctx)
        v_u, v_c = out.chunk(2, dim=0) if guided else (None, out)
        sigma = float(np.float32(sigmas[index]))
        noise = step_noise(i) if (sigma != 0.0 and step_noise is not None) else None
        a_prev = float(np.float32(alphas_prev[index]))
        if fused:
            x, pred_x0 = ops.sampler_step(
                x, v_c, v_u, noise, cfg_scale=cfg_scale, sqrt_ac_t=float(sac[t]),
                sqrt_1m_ac_t=float(s1m[t]), a_prev=a_prev, sigma=sigma,
            )
        else:
            v = v_c if v_u is None else cfg_combine(v_c, v_u, cfg_scale)
            x, pred_x0 = ddim_step_v(x, v, float(sac[t]), float(s1m[t]), a_prev, sigma, noise)
        if callback is not None:
            callback({"i": i, "t": t, "x": x, "pred_x0": pred_x0, "v": out})
    return x
