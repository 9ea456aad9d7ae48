"""Deterministic diffusion noise per decoder window.

The noise of window ``w`` of a stream with seed ``s`` depends only on ``(s, w)``: the same
window decoded offline, streamed, or inside a batch gets the same ``x_T`` and the same per-step
noise.  That makes streamed == offline testable and decoding reproducible, where the reference
draws from the global torch RNG without a seed.
"""

from __future__ import annotations

from typing import Callable

import torch

_MASK63 = (1 << 63) - 1


def window_seed(seed: int, window_index: int) -> int:
    """Mix (stream seed, window index) into one 63-bit generator seed (splitmix64 finaliser)."""
    z = (int(seed) * 0x9E3779B97F4A7C15 + int(window_index) + 0x632BE59BD9B4E019) & ((1 << 64) - 1)
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & ((1 << 64) - 1)
    return (z ^ (z >> 31)) & _MASK63


def window_noise(seed: int, window_index: int, shape: tuple[int, ...], n_steps: int) -> torch.Tensor:
    """``[n_steps + 1, *shape]`` float32 standard normal: ``[0]`` is x_T, ``[1 + i]`` step i's z.

    Drawn on the CPU so every device gets identical numbers.
    """
    gen = torch.Generator(device="cpu").manual_seed(window_seed(seed, window_index))
    return torch.randn((n_steps + 1, *shape), generator=gen, dtype=torch.float32)


# window index -> (x_T [B, C, T, F], step i -> noise [B, C, T, F])
NoiseSource = Callable[[int], tuple[torch.Tensor, Callable[[int], torch.Tensor]]]


def seeded_noise(latent_shape: tuple[int, ...], seed: int, batch: int, n_steps: int) -> NoiseSource:
    """The default noise of a windowed decode: window w draws from (seed, w) only, the same for
    every batch item, whatever batch or stream the window is decoded in."""
    shape = (1, *latent_shape)

    def source(w: int):
        z = window_noise(seed, w, shape, n_steps).expand(-1, batch, *shape[1:])
        return z[0], lambda i: z[1 + i]

    return source
