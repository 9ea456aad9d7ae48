"""The speech route's semantic ViT: causal, one token per 40 ms fbank patch, streamable.

A patch is one token position's ``unit_frames`` fbank frames x 128 bins (4 x 128 = 512 values),
projected to the ViT width.  Each layer lets a position attend to itself and the ``context``
positions before it (sliding-window causal attention) with a learned per-head bias for every
distance 0..context, instead of absolute positions: a position's output does not depend on
where the stream started, and a stream can carry a fixed-size key/value cache per layer.

* :meth:`CausalViT.forward` -- whole sequences ``[B, U, P]`` at once (training);
* :meth:`CausalViT.step` -- one position ``[B, P]`` with the per-layer caches (inference: the
  offline and the streamed encoder both run this, so they give the same floats).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .vit import Mlp


class WindowAttention(nn.Module):
    """Causal multi-head attention over the last ``context + 1`` positions, distance bias."""

    def __init__(self, dim: int, heads: int, context: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads, self.context = heads, context
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.distance_bias = nn.Parameter(torch.zeros(heads, context + 1))

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        return qkv.unbind(0)  # each [B, H, N, hd]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, U, D] -> [B, U, D]``; position u sees ``u - context .. u``."""
        b, n, d = x.shape
        q, k, v = self._split(x)
        i = torch.arange(n, device=x.device)
        dist = i[:, None] - i[None, :]  # [U, U] query - key
        allowed = (dist >= 0) & (dist <= self.context)
        bias = self.distance_bias[:, dist.clamp(0, self.context)]  # [H, U, U]
        bias = bias.masked_fill(~allowed, float("-inf"))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias[None].to(q.dtype))
        return self.proj(y.transpose(1, 2).reshape(b, n, d))

    def step(self, x: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor] | None):
        """One position ``[B, 1, D]`` -> ``([B, 1, D], new cache)``; the cache holds the keys
        and values ``[B, H, <= context, hd]`` of the positions before it."""
        b, _, d = x.shape
        q, k, v = self._split(x)
        if cache is not None:
            k = torch.cat([cache[0], k], 2)
            v = torch.cat([cache[1], v], 2)
        m = k.shape[2]  # keys at distances m - 1 .. 0
        bias = self.distance_bias[:, torch.arange(m - 1, -1, -1, device=x.device)]  # [H, m]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias[None, :, None, :].to(q.dtype))
        keep = self.context
        new_cache = (k[:, :, -keep:], v[:, :, -keep:]) if keep else None
        return self.proj(y.transpose(1, 2).reshape(b, 1, d)), new_cache


class WindowBlock(nn.Module):
    """Pre-norm transformer block with :class:`WindowAttention`."""

    def __init__(self, dim: int, heads: int, context: int, mlp_ratio: float, eps: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = WindowAttention(dim, heads, context)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))

    def step(self, x: torch.Tensor, cache):
        a, cache = self.attn.step(self.norm1(x), cache)
        x = x + a
        return x + self.mlp(self.norm2(x)), cache


class CausalViT(nn.Module):
    """Patches ``[B, U, P]`` -> features ``[B, U, D]`` (final LayerNorm).

    Args:
        patch_dim: P = unit_frames x fbank bins.
        dim, depth, heads, mlp_ratio, eps: transformer sizes (:class:`~..config.ViTConfig`).
        context: past positions each layer attends to.
    """

    def __init__(self, patch_dim: int, dim: int, depth: int, heads: int, context: int,
                 mlp_ratio: float = 4.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.patch_embed = nn.Linear(patch_dim, dim)
        self.blocks = nn.ModuleList(WindowBlock(dim, heads, context, mlp_ratio, eps) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(patches)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)

    def step(self, patch: torch.Tensor, caches: list | None) -> tuple[torch.Tensor, list]:
        """One position ``[B, P]`` -> ``([B, D], caches)``; ``caches`` None at a stream start."""
        x = self.patch_embed(patch)[:, None]
        caches = caches if caches is not None else [None] * len(self.blocks)
        new = []
        for blk, c in zip(self.blocks, caches):
            x, c = blk.step(x, c)
            new.append(c)
        return self.norm(x)[:, 0], new
