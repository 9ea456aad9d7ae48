"""Progressive distillation on the trailing grid (Salimans & Ho 2022; guidance folded in as in
Meng et al. 2023), as pure functions of tensors.

A student that samples in ``S`` steps learns from a teacher that samples in ``r S``: from the
same noisy latent ``z_t`` at a student grid point, the teacher's ``r`` DDIM (eta 0) steps reach
``z_s``; the student's target is the one v whose single DDIM step from ``z_t`` lands on ``z_s``
exactly.  Both grids are :func:`~semanticodec_rt.decoder.diffusion.ddim.trailing_timesteps`, which nest,
so the teacher's r steps start and end on student grid points.

Notation: ``a`` is alpha-bar; a DDIM (eta 0) step of a v prediction from alpha-bar ``a_t`` to
``a_s`` is ``z_s = c_z z_t + c_v v`` with

    c_z = sqrt(a_s a_t) + sqrt((1 - a_s)(1 - a_t)),    c_v = sqrt((1 - a_s) a_t) - sqrt(a_s (1 - a_t)),

(from ``x0 = sqrt(a_t) z - sqrt(1 - a_t) v`` and ``eps = sqrt(1 - a_t) z + sqrt(a_t) v``).
``c_v < 0`` whenever ``a_s > a_t``, so the target below is always defined.
"""

from __future__ import annotations

from typing import Callable

import torch

from ...decoder.diffusion.ddim import trailing_timesteps


def grid_alphas(alphas_cumprod: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(t [S] int64, a [S + 1] float64)``: the trailing grid and alpha-bar at each point, with
    ``a[0] = 1`` for the clean latent below the grid (``a[i]`` belongs to ``t[i - 1]``)."""
    t = trailing_timesteps(steps, alphas_cumprod.numel())
    a = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod.detach().cpu().double()[t]])
    return t, a


def _coefs(a_t: torch.Tensor, a_s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    c_z = (a_s * a_t).sqrt() + ((1 - a_s) * (1 - a_t)).sqrt()
    c_v = ((1 - a_s) * a_t).sqrt() - (a_s * (1 - a_t)).sqrt()
    return c_z, c_v


def _view(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return x.to(like).view(-1, *([1] * (like.dim() - 1)))


def ddim_v_step(z: torch.Tensor, v: torch.Tensor, a_t: torch.Tensor, a_s: torch.Tensor) -> torch.Tensor:
    """One DDIM (eta 0) step ``[B, ...]`` from per-item alpha-bars ``a_t -> a_s`` (``[B]``)."""
    c_z, c_v = _coefs(a_t, a_s)
    return _view(c_z, z) * z + _view(c_v, z) * v


def target_v(z_t: torch.Tensor, z_s: torch.Tensor, a_t: torch.Tensor, a_s: torch.Tensor) -> torch.Tensor:
    """The v that takes ``z_t`` to ``z_s`` in one :func:`ddim_v_step` (inverse of that step)."""
    c_z, c_v = _coefs(a_t, a_s)
    return (z_s - _view(c_z, z_t) * z_t) / _view(c_v, z_t)


def teacher_walk(
    teacher: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    z: torch.Tensor,
    index: torch.Tensor,
    ratio: int,
    t_grid: torch.Tensor,
    a_grid: torch.Tensor,
) -> torch.Tensor:
    """``ratio`` teacher steps down the fine grid from per-item positions ``index`` (``[B]``, in
    ``ratio .. S``; position i is ``t_grid[i - 1]``, position 0 the clean latent).

    ``teacher(z, t) -> v`` sees int64 timesteps ``[B]`` (guidance, if any, inside it).
    Returns ``z`` at positions ``index - ratio``.
    """
    for m in range(ratio):
        i = index - m
        v = teacher(z, t_grid[i - 1].to(z.device))
        z = ddim_v_step(z, v, a_grid[i], a_grid[i - 1])
    return z
