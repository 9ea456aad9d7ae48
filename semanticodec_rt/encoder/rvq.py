"""Residual vector quantizer of the speech route's acoustic branch, and its composite ids.

``S`` stages of ``2^bits`` codewords each: stage ``s`` quantises what the earlier stages left,
``q = sum_s C_s[i_s]``.  Codebooks are EMA cluster means (no gradient), with dead codewords
restarted on random residuals of the batch, so all ``2^bits`` codes stay in use.

On the wire one token position carries a single acoustic id: the stage indices read as the
digits of one number, ``id = sum_s i_s * 2^(bits * s)`` (stage 0 in the low bits), so a
position is still ``(semantic id, acoustic id)`` and the bitstream needs no new layout.

Shapes: ``x`` ``[..., D]``; ids ``[..., S]`` int64; composite ids ``[...]`` int64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def compose_ids(ids: torch.Tensor, bits: int) -> torch.Tensor:
    """``[..., S]`` stage indices -> ``[...]`` composite ids (stage 0 in the low bits)."""
    shifts = torch.arange(ids.shape[-1], device=ids.device) * bits
    return (ids.long() << shifts).sum(-1)


def split_ids(composite: torch.Tensor, stages: int, bits: int) -> torch.Tensor:
    """Inverse of :func:`compose_ids`: ``[...]`` -> ``[..., S]``."""
    shifts = torch.arange(stages, device=composite.device) * bits
    return (composite.long()[..., None] >> shifts) & ((1 << bits) - 1)


class ResidualVQ(nn.Module):
    """``S`` EMA codebooks ``[S, K, D]``.

    Args:
        dim: D, code width.
        stages: S.
        bits: log2 K.
        decay: EMA decay of the cluster statistics.
    """

    def __init__(self, dim: int, stages: int, bits: int, decay: float = 0.99) -> None:
        super().__init__()
        self.dim, self.stages, self.bits, self.decay = dim, stages, bits, decay
        k = 1 << bits
        embed = torch.randn(stages, k, dim) * 0.1
        self.register_buffer("embed", embed)
        self.register_buffer("cluster_size", torch.ones(stages, k))
        self.register_buffer("embed_sum", embed.clone())

    @property
    def codebook_size(self) -> int:
        return 1 << self.bits

    def _nearest(self, r: torch.Tensor, s: int) -> torch.Tensor:
        e = self.embed[s]
        d = (r * r).sum(-1, keepdim=True) - 2 * r @ e.t() + (e * e).sum(-1)
        return d.argmin(-1)

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., D]`` -> stage indices ``[..., S]`` (greedy, stage by stage)."""
        r = x.detach().reshape(-1, self.dim)
        ids = []
        for s in range(self.stages):
            i = self._nearest(r, s)
            ids.append(i)
            r = r - self.embed[s][i]
        return torch.stack(ids, -1).reshape(*x.shape[:-1], self.stages)

    def dequantize(self, ids: torch.Tensor) -> torch.Tensor:
        """``[..., S]`` stage indices -> ``[..., D]`` sum of the chosen codewords."""
        return sum(F.embedding(ids[..., s], self.embed[s]) for s in range(self.stages))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass: ``(q_st, ids, commit_loss)`` with ``q_st`` the straight-through code.

        In training mode the codebooks follow the batch's residuals (EMA) and codewords that
        have gone unused are restarted on random residuals.  Always float32, also under bf16
        autocast: nearest-codeword choices and EMA sums in bf16 (8-bit mantissa) would be coarse.
        """
        with torch.autocast(x.device.type, enabled=False):
            x = x.float()
            ids = self.quantize(x)
            q = self.dequantize(ids)
            commit = F.mse_loss(x, q.detach())
            if self.training:
                self._ema_update(x.detach().reshape(-1, self.dim), ids.reshape(-1, self.stages))
            return x + (q - x).detach(), ids, commit

    @torch.no_grad()
    def _ema_update(self, x: torch.Tensor, ids: torch.Tensor) -> None:
        r = x
        k = self.codebook_size
        for s in range(self.stages):
            onehot = F.one_hot(ids[:, s], k).to(r.dtype)  # [N, K]
            count = onehot.sum(0)
            self.cluster_size[s].mul_(self.decay).add_(count, alpha=1 - self.decay)
            self.embed_sum[s].mul_(self.decay).add_(onehot.t() @ r, alpha=1 - self.decay)
            n = self.cluster_size[s].sum()
            size = (self.cluster_size[s] + 1e-5) / (n + k * 1e-5) * n  # Laplace smoothing
            self.embed[s].copy_(self.embed_sum[s] / size[:, None])
            # Restart codewords that have been (almost) unused on residuals of this batch.
            dead = self.cluster_size[s] < 0.02
            if dead.any():
                pick = torch.randint(0, r.shape[0], (int(dead.sum()),), device=r.device)
                self.embed[s][dead] = r[pick]
                self.embed_sum[s][dead] = r[pick]
                self.cluster_size[s][dead] = 1.0
            r = r - self.embed[s][ids[:, s]]
