"""Acoustic vector quantizer: the EMA Euclidean codebook of the published acoustic branch.

Official: ``VectorQuantize(dim=F, codebook_size=8192, decay=0.9, commitment_weight=1.0,
codebook_dim=None, use_cosine_sim=False)`` from vector-quantize-pytorch.  It has no trainable
parameters; its state is four buffers under ``_codebook`` (keys exactly as ``encoder.ckpt``):

* ``_codebook.initted``     0-d bool (vq-pytorch 1.32; older versions stored float ``[1]``,
  which ``load_state_dict`` still accepts into the 0-d buffer);
* ``_codebook.cluster_size`` ``[1, K]`` EMA counts (training only);
* ``_codebook.embed_avg``   ``[1, K, F]`` EMA sums (training only);
* ``_codebook.embed``       ``[1, K, F]`` the lookup table.

Inference: ``idx = argmin_j ||x - E_j||^2`` with ``E = embed[0]``, and the quantized value is
``E[idx]`` (project in/out are identities because codebook_dim = dim).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import ops


class EMACodebook(nn.Module):
    """Buffer holder with the vector-quantize-pytorch ``EuclideanCodebook`` layout (one head)."""

    def __init__(self, dim: int, codebook_size: int) -> None:
        super().__init__()
        embed = torch.randn(1, codebook_size, dim)
        # Registration order = official state-dict order.
        self.register_buffer("initted", torch.tensor(True))
        self.register_buffer("cluster_size", torch.zeros(1, codebook_size))
        self.register_buffer("embed_avg", embed.clone())
        self.register_buffer("embed", embed)


class AcousticVQ(nn.Module):
    """Euclidean VQ over ``F``-dim acoustic features with a ``K``-entry EMA codebook.

    Args:
        dim: F.
        codebook_size: K (8192 officially).
        decay: EMA decay of the codebook updates (0.9 officially); kept for training code,
            inference never updates the codebook.
        commitment_weight: commitment loss weight (1.0 officially), for training code.
    """

    def __init__(
        self, dim: int, codebook_size: int, decay: float = 0.9, commitment_weight: float = 1.0
    ) -> None:
        super().__init__()
        self.dim = dim
        self.codebook_size = codebook_size
        self.decay = decay
        self.commitment_weight = commitment_weight
        self._codebook = EMACodebook(dim, codebook_size)

    @property
    def embed(self) -> torch.Tensor:
        """``[K, F]`` lookup table (view of ``_codebook.embed[0]``)."""
        return self._codebook.embed[0]

    @torch.no_grad()
    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, T, F]`` features -> ``[B, T]`` int64 nearest-codeword indices."""
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"expected features [B, T, {self.dim}], got {tuple(x.shape)}")
        b, t, f = x.shape
        embed = self.embed
        # The reference casts to float32 for the distance whatever the model dtype.
        flat = x.reshape(b * t, f).to(torch.float32)
        return ops.nearest_centroid(flat, embed.to(torch.float32)).reshape(b, t)

    def dequantize(self, ids: torch.Tensor) -> torch.Tensor:
        """``[B, T]`` int64 indices -> ``[B, T, F]`` codewords ``E[ids]``."""
        return F.embedding(ids, self.embed)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, codebook_size={self.codebook_size}, decay={self.decay}"
