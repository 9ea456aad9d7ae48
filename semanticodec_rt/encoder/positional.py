"""Sinusoidal position channels appended to the decoder conditioning (official
``utils.PositionalEncoding(seq_length=512, embedding_dim=192)``).

``pe[pos, 2i] = sin(pos * w_i)``, ``pe[pos, 2i+1] = cos(pos * w_i)``,
``w_i = exp(2i * (-ln(10000) / dim))``, ``pos = 0 .. length-1``.

The golden table is bitwise reproducible only with the official float32 evaluation order
(errata E2): ``w`` = float32 exp of (float32 ``2i`` x the constant ``-ln(10000)/dim`` rounded
to float32), angle = float32 ``pos x w``.  Any other order (float64 table, ``10000^(-2i/dim)``,
...) is 1.5e-5 .. 3e-5 off, which fails the 1e-6 tolerance of everything that carries the PE.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_table(length: int = 512, dim: int = 192) -> torch.Tensor:
    """The ``[length, dim]`` float32 table, evaluated in the official float32 order."""
    if dim % 2:
        raise ValueError(f"positional width must be even, got {dim}")
    f32 = torch.float32
    pos = torch.arange(length, dtype=f32)[:, None]  # [L, 1]
    # The Python-float constant enters a float32 op, i.e. rounded to float32 first.
    step = torch.tensor(-math.log(10000.0) / dim, dtype=f32)
    omega = torch.exp(torch.arange(0, dim, 2, dtype=f32) * step)  # [dim/2]
    angle = pos * omega  # float32 product, [L, dim/2]
    table = torch.empty(length, dim, dtype=f32)
    table[:, 0::2] = torch.sin(angle)
    table[:, 1::2] = torch.cos(angle)
    return table


class PositionalEncoding(nn.Module):
    """Fixed table as a non-persistent buffer (not in any checkpoint, like the official one).

    ``forward(x [B, T, *]) -> [1, T, dim]``: the first T rows (``T <= length``).
    """

    def __init__(self, length: int = 512, dim: int = 192) -> None:
        super().__init__()
        self.length, self.dim = length, dim
        self.register_buffer("pe", sinusoidal_table(length, dim).unsqueeze(0), persistent=False)

    def reset_table(self) -> None:
        """Recompute the table (after building on the meta device, which leaves it empty)."""
        self.pe = sinusoidal_table(self.length, self.dim).unsqueeze(0).to(
            "cpu" if self.pe.is_meta else self.pe.device
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        if t > self.pe.shape[1]:
            raise ValueError(f"{t} positions exceed the table length {self.pe.shape[1]}")
        return self.pe[:, :t]
