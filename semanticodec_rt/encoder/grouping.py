"""Patch grid -> token sequence: how the AudioMAE patches become tokens at each token rate.

The AudioMAE output (CLS dropped) is a time-major grid of ``grid_t x grid_f`` (64 x 8) patch
vectors of width D, patch index ``p = grid_f * t + f``.  A token stacks ``K = 100 / token_rate``
patches (official ``encoder.concate`` + ``concat_1x2`` / ``concat_2x2``):

* K = 1 (rate 100): identity, token index ``8 t + f``, width D;
* K = 2 (rate 50): token ``(t, k)`` = ``[patch(t, 2k) | patch(t, 2k+1)]``, index ``4 t + k``,
  width 2D;
* K = 4 (rate 25): token ``(a, b)`` = ``[patch(2a, 2b) | patch(2a, 2b+1) | patch(2a+1, 2b) |
  patch(2a+1, 2b+1)]`` (time-offset major, frequency-offset minor), index ``4 a + b``, width 4D.

Both directions are pure reshapes/permutes, so they are exact.
"""

from __future__ import annotations

import torch

# stack factor K -> (time patches, frequency patches) per token
_BLOCK = {1: (1, 1), 2: (1, 2), 4: (2, 2)}


def _block(stack_factor: int) -> tuple[int, int]:
    try:
        return _BLOCK[stack_factor]
    except KeyError:
        valid = sorted(_BLOCK)
        raise ValueError(f"stack factor must be one of {valid}, got {stack_factor}") from None


def patches_to_tokens(
    patches: torch.Tensor, stack_factor: int, grid_t: int = 64, grid_f: int = 8
) -> torch.Tensor:
    """``[B, grid_t*grid_f, D]`` patch vectors (no CLS) -> ``[B, T_w, K*D]`` token sequence.

    ``T_w = grid_t * grid_f / K``.  Ordering as in the module docstring.
    """
    bt, bf = _block(stack_factor)
    b, p, d = patches.shape
    if p != grid_t * grid_f:
        raise ValueError(f"expected {grid_t * grid_f} patches, got {p}")
    if grid_t % bt or grid_f % bf:
        raise ValueError(f"grid {grid_t}x{grid_f} does not split into {bt}x{bf} blocks")
    # [B, t-block, dt, f-block, df, D] -> [B, t-block, f-block, dt, df, D]
    x = patches.reshape(b, grid_t // bt, bt, grid_f // bf, bf, d).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, p // stack_factor, stack_factor * d)


def tokens_to_patches(
    tokens: torch.Tensor, stack_factor: int, grid_t: int = 64, grid_f: int = 8
) -> torch.Tensor:
    """Inverse of :func:`patches_to_tokens`: ``[B, T_w, K*D] -> [B, grid_t*grid_f, D]``."""
    bt, bf = _block(stack_factor)
    b, t, kd = tokens.shape
    if t * stack_factor != grid_t * grid_f or kd % stack_factor:
        raise ValueError(
            f"tokens {tuple(tokens.shape)} do not fit a {grid_t}x{grid_f} grid, K={stack_factor}"
        )
    d = kd // stack_factor
    x = tokens.reshape(b, grid_t // bt, grid_f // bf, bt, bf, d).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, grid_t * grid_f, d)


def audiomae_to_sequence(
    embed: torch.Tensor, stack_factor: int, grid_t: int = 64, grid_f: int = 8
) -> torch.Tensor:
    """AudioMAE output ``[B, 1 + P, D]`` (CLS first) -> token sequence ``[B, T_w, K*D]``."""
    return patches_to_tokens(embed[:, 1:], stack_factor, grid_t, grid_f)
