"""The few-step residual: a conditional flow over what the regression path misses.

The regression path predicts the conditional mean of the features, which is smooth (averaged
over what the tokens do not pin down).  This network learns the distribution of the residual
``r = y - y_regression`` (``F`` frames x 19 normalised continuous features of one position)
given the regression context, by flow matching on the straight path ``x_t = (1 - t) n + t r``
from Gaussian noise ``n`` (velocity target ``r - n``); sampling integrates the velocity from
t = 0 to 1 in ``steps`` Euler steps (1, 2 or 4 network calls per position).  Guidance is folded
in: the network is trained conditional only, so there is no unconditional call to mix.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """``[B]`` times in [0, 1] -> ``[B, dim]`` sinusoids."""
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=t.device) / half)
    a = 1000.0 * t[:, None] * freqs
    return torch.cat([a.sin(), a.cos()], -1)


class _Res(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc(self.norm(x))


class ResidualFlow(nn.Module):
    """Velocity ``v(x_t, t | ctx)`` for ``x`` ``[B, D]`` (D = F x 19), ``ctx`` ``[B, C]``."""

    def __init__(self, dim: int, context_dim: int, hidden: int, layers: int, t_dim: int = 64) -> None:
        super().__init__()
        self.dim, self.t_dim = dim, t_dim
        self.inp = nn.Linear(dim + context_dim + t_dim, hidden)
        self.blocks = nn.Sequential(*[_Res(hidden) for _ in range(layers)])
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        h = self.inp(torch.cat([x, ctx, time_embedding(t, self.t_dim)], -1))
        return self.out(self.blocks(h))

    def loss(self, r: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        """Flow-matching loss for residuals ``r`` ``[B, D]``."""
        n = torch.randn_like(r)
        t = torch.rand(r.shape[0], device=r.device)
        xt = (1 - t[:, None]) * n + t[:, None] * r
        return (self(xt, t, ctx) - (r - n)).pow(2).mean()

    def sample(self, ctx: torch.Tensor, noise: torch.Tensor, steps: int) -> torch.Tensor:
        """Euler integration from ``noise`` ``[B, D]`` (t = 0) to a residual (t = 1)."""
        x = noise
        for i in range(steps):
            t = torch.full((x.shape[0],), i / steps, device=x.device)
            x = x + self(x, t, ctx) / steps
        return x
