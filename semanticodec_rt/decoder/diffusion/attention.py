"""Transformer pieces of the latent-diffusion UNet: attention, GEGLU feed-forward, the
transformer block and the SpatialTransformer that wraps it around a feature map.

State-dict names follow the published checkpoint (``model.diffusion_model.*``):
``to_q``/``to_k``/``to_v`` (no bias), ``to_out.0`` (with bias), ``ff.net.0.proj``, ``ff.net.2``,
``norm1``..``norm3``, and ``norm``/``proj_in``/``transformer_blocks.i``/``proj_out`` on the
SpatialTransformer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def key_mask_bias(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive attention bias for a key mask.

    Args:
        mask: ``[B, L]`` key mask; a key takes part where ``mask == 1``.
        dtype: dtype of the attention scores.
    Returns:
        ``[B, 1, 1, L]`` bias: 0 for kept keys, ``-finfo(dtype).max`` elsewhere.

    The published code overwrites masked scores with ``-finfo.max``.  Adding ``-finfo.max``
    gives the same float for every score below ~1e31 in magnitude (the score vanishes in the
    rounding), so it also reproduces the corner case of a fully masked row, which the
    published code turns into a uniform average over all keys (a boolean mask would give NaN).
    In float16 (max 65504) a masked score can overflow to -inf instead; that changes nothing
    unless a whole row is masked.
    """
    neg = torch.finfo(dtype).max
    bias = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    bias = bias.masked_fill(mask != 1, -neg)
    return bias[:, None, None, :]


def zero_init_(module: nn.Module) -> None:
    """Zero every parameter of ``module`` in place (the published init of residual outputs)."""
    for p in module.parameters():
        nn.init.zeros_(p)


class Attention(nn.Module):
    """Multi-head scaled dot-product attention (self-attention when no context is given).

    Heads are contiguous slices of the channel axis (channel = head * dim_head + d).
    The softmax scale is ``dim_head ** -0.5``.
    """

    def __init__(self, query_dim: int, heads: int, dim_head: int, context_dim: int | None = None):
        super().__init__()
        inner = heads * dim_head
        kv_dim = query_dim if context_dim is None else context_dim
        self.heads = heads
        self.dim_head = dim_head
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(kv_dim, inner, bias=False)
        self.to_v = nn.Linear(kv_dim, inner, bias=False)
        # A Sequential only so the key is ``to_out.0`` as in the checkpoint (index 1 was dropout).
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim))

    def _split_heads(self, t: torch.Tensor) -> torch.Tensor:
        b, n, _ = t.shape
        return t.view(b, n, self.heads, self.dim_head).transpose(1, 2)  # [B, H, N, d]

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attend from ``x`` to ``context`` (or to ``x`` itself).

        Args:
            x: ``[B, N, query_dim]`` queries.
            context: ``[B, L, context_dim]`` keys/values source, or None for self-attention.
            mask: ``[B, L]`` key mask (keys with ``mask != 1`` are excluded), or None.
        Returns:
            ``[B, N, query_dim]``.
        """
        src = x if context is None else context
        q = self._split_heads(self.to_q(x))
        k = self._split_heads(self.to_k(src))
        v = self._split_heads(self.to_v(src))
        bias = None if mask is None else key_mask_bias(mask, q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        b, _, n, _ = out.shape
        out = out.transpose(1, 2).reshape(b, n, self.heads * self.dim_head)
        return self.to_out(out)


class GEGLU(nn.Module):
    """Gated GELU projection: ``value * gelu(gate)`` with value and gate from one Linear.

    The first half of the projection's outputs is the value, the second half the gate;
    GELU is the exact (erf) form.
    """

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, 2 * dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU feed-forward ``dim -> mult*dim -> dim`` (keys ``net.0.proj``, ``net.2``)."""

    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        inner = mult * dim
        # Index 1 is the (p = 0) dropout of the published model; kept so index 2 lines up.
        self.net = nn.Sequential(GEGLU(dim, inner), nn.Identity(), nn.Linear(inner, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    """Pre-norm block: self-attention, then attention to ``context``, then GEGLU FF.

    With ``context_dim=None`` the second attention (``attn2``) is another self-attention:
    this is the "extra self-attention layer" form of the published UNet.
    """

    def __init__(self, dim: int, heads: int, dim_head: int, context_dim: int | None = None):
        super().__init__()
        self.attn1 = Attention(dim, heads, dim_head)
        self.ff = FeedForward(dim)
        self.attn2 = Attention(dim, heads, dim_head, context_dim=context_dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``x``: ``[B, N, dim]``; ``context``: ``[B, L, context_dim]`` or None;
        ``mask``: ``[B, L]`` key mask for ``attn2`` or None.  Returns ``[B, N, dim]``."""
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), context=context, mask=mask)
        x = x + self.ff(self.norm3(x))
        return x


class SpatialTransformer(nn.Module):
    """Transformer over the positions of a ``[B, C, T, F]`` feature map, with a residual.

    GroupNorm(32, eps 1e-6) and a 1x1 conv ``proj_in``, flatten time-major into a sequence of
    T*F tokens (token index = t * F + f), ``depth`` transformer blocks, unflatten, 1x1 conv
    ``proj_out`` and add the input.
    """

    def __init__(
        self,
        channels: int,
        heads: int,
        dim_head: int,
        depth: int = 1,
        context_dim: int | None = None,
        num_groups: int = 32,
    ):
        super().__init__()
        inner = heads * dim_head
        self.context_dim = context_dim
        self.norm = nn.GroupNorm(num_groups, channels, eps=1e-6)
        self.proj_in = nn.Conv2d(channels, inner, kernel_size=1)
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(inner, heads, dim_head, context_dim=context_dim) for _ in range(depth)
        )
        self.proj_out = nn.Conv2d(inner, channels, kernel_size=1)
        zero_init_(self.proj_out)  # published init: the block starts as the identity

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``x``: ``[B, C, T, F]``; ``context``: ``[B, L, context_dim]`` or None;
        ``mask``: ``[B, L]`` key mask or None.  Returns ``[B, C, T, F]``."""
        b, _, t, f = x.shape
        h = self.proj_in(self.norm(x))
        c = h.shape[1]
        h = h.flatten(2).transpose(1, 2)  # [B, T*F, C], time-major
        for block in self.transformer_blocks:
            h = block(h, context=context, mask=mask)
        h = h.transpose(1, 2).reshape(b, c, t, f)
        return self.proj_out(h) + x
