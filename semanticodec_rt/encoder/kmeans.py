"""Semantic quantizer: nearest k-means centroid of each AudioMAE token feature.

The published model ships the semantic codebook as a separate ``.npy`` file ``[N, F]``
(``codebook_idx/combine_{T_w}_audioset_dominate/codebook_{vocab/2}_0.npy``); it is NOT part of
``encoder.ckpt``.  N is read from the file: the file name carries half the vocab size and the
true row count could not be verified, so it is never assumed.  Lookup (official
``quant_mem_efficient``): ``argmin_j (||r||^2 + ||c_j||^2) - 2 r.c_j`` in float32, exact ties to
the lowest index; dequantisation is the row lookup ``C[idx]``.
"""

from __future__ import annotations

import os
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import ops

CodebookSource = Union[str, os.PathLike, np.ndarray, torch.Tensor]


def read_codebook(source: CodebookSource, feature_dim: int) -> torch.Tensor:
    """A semantic codebook as contiguous float32 ``[N, F]``; N is whatever the source holds.

    Args:
        source: official ``.npy`` path, numpy array or tensor.
        feature_dim: the F the model needs.
    Raises:
        ValueError: not 2-D, wrong F, no rows, not floating point, or non-finite values.
    """
    if isinstance(source, torch.Tensor):
        array = source.detach().cpu()
    else:
        if not isinstance(source, np.ndarray):
            source = np.load(os.fspath(source), allow_pickle=False)
        array = torch.from_numpy(np.ascontiguousarray(source))
    if array.dim() != 2:
        raise ValueError(f"semantic codebook must be 2-D [N, F], got {tuple(array.shape)}")
    n, f = array.shape
    if f != feature_dim:
        raise ValueError(f"semantic codebook has F={f}, the model needs F={feature_dim}")
    if n == 0:
        raise ValueError("semantic codebook has no rows")
    if not array.is_floating_point():
        raise ValueError(f"semantic codebook must hold floats, got {array.dtype}")
    codebook = array.to(torch.float32).contiguous()
    if not torch.isfinite(codebook).all():
        raise ValueError("semantic codebook contains non-finite values")
    return codebook


class SemanticQuantizer(nn.Module):
    """Holds the ``[N, F]`` float32 semantic codebook as a non-persistent buffer.

    Args:
        feature_dim: F, the token feature width (768 x stack factor officially).
        codebook: optional source passed to :meth:`load_codebook` (``.npy`` path, array or
            tensor).  Without it the quantizer is empty until a codebook is loaded.
    """

    def __init__(self, feature_dim: int, codebook: CodebookSource | None = None) -> None:
        super().__init__()
        self.feature_dim = feature_dim
        # Non-persistent: the official checkpoint does not carry the codebook.
        self.register_buffer("codebook", torch.zeros(0, feature_dim), persistent=False)
        self.register_buffer("codebook_sqnorm", torch.zeros(0), persistent=False)
        if codebook is not None:
            self.load_codebook(codebook)

    @property
    def num_centroids(self) -> int:
        """N (0 until a codebook is loaded)."""
        return self.codebook.shape[0]

    def load_codebook(self, source: CodebookSource) -> None:
        """Load the ``[N, F]`` codebook from a ``.npy`` path, an array or a tensor.

        Raises:
            ValueError: not 2-D, wrong F, no rows, or non-finite values.
        """
        codebook = read_codebook(source, self.feature_dim)
        # A module built on the meta device (checkpoint loading) gets real CPU tensors here.
        device = "cpu" if self.codebook.is_meta else self.codebook.device
        self.codebook = codebook.to(device)
        # ||c||^2 computed once, with the same formula the lookup would use.
        self.codebook_sqnorm = (self.codebook * self.codebook).sum(-1)

    def _require_codebook(self) -> None:
        if self.num_centroids == 0:
            raise RuntimeError("no semantic codebook loaded (call load_codebook)")

    @torch.no_grad()
    def quantize(self, r: torch.Tensor) -> torch.Tensor:
        """``[B, T, F]`` features -> ``[B, T]`` int64 centroid indices."""
        self._require_codebook()
        if r.dim() != 3 or r.shape[-1] != self.feature_dim:
            raise ValueError(f"expected features [B, T, {self.feature_dim}], got {tuple(r.shape)}")
        b, t, f = r.shape
        x = r.reshape(b * t, f).to(self.codebook.dtype)
        return ops.nearest_centroid(x, self.codebook, self.codebook_sqnorm).reshape(b, t)

    def dequantize(self, ids: torch.Tensor) -> torch.Tensor:
        """``[B, T]`` int64 indices -> ``[B, T, F]`` centroids ``C[ids]``."""
        self._require_codebook()
        return F.embedding(ids, self.codebook)

    def extra_repr(self) -> str:
        return f"feature_dim={self.feature_dim}, num_centroids={self.num_centroids}"
