"""Torch reference twins of the compiled kernels.  These are the specification: readable,
dtype-generic (run them in float64 to get ground truth), and used when no extension is built."""

from __future__ import annotations

import torch


def nearest_centroid_ref(
    x: torch.Tensor, codebook: torch.Tensor, codebook_sqnorm: torch.Tensor | None = None
) -> torch.Tensor:
    """Index of the nearest codebook row for every row of ``x`` (squared Euclidean distance).

    Args:
        x: ``[N, D]`` queries.
        codebook: ``[K, D]`` centroids, same dtype as ``x``.
        codebook_sqnorm: optional ``[K]`` precomputed ``||c||^2``.
    Returns:
        ``[N]`` int64 indices; exact ties resolve to the lowest index.

    The distance is evaluated as ``(||x||^2 + ||c||^2) - 2 x.c`` in the input dtype, the same
    formula and order as the published k-means lookup, so float32 near-ties round the same way.
    """
    return nearest_centroid_with_distance_ref(x, codebook, codebook_sqnorm)[0]


def nearest_centroid_with_distance_ref(
    x: torch.Tensor, codebook: torch.Tensor, codebook_sqnorm: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`nearest_centroid_ref` that also returns the winning distance.

    Returns:
        ``([N] int64 indices, [N] distances in the input dtype)``; the distance is the value the
        formula gave (it can be slightly negative through rounding).
    """
    if codebook_sqnorm is None:
        codebook_sqnorm = (codebook * codebook).sum(-1)
    x_sqnorm = (x * x).sum(-1, keepdim=True)
    dist = (x_sqnorm + codebook_sqnorm[None, :]) - 2.0 * (x @ codebook.t())
    # torch.min returns the first minimal index on ties (documented behaviour).
    best = dist.min(dim=-1)
    return best.indices, best.values


def pairwise_sqdist_f64(x: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Ground truth for tests: ``[N, K]`` float64 squared distances ``||x_n - c_k||^2``.

    Computed in float64 on the CPU through the same expansion. Its rounding error, about
    ``D * 2^-53 * (||x|| + ||c||)^2``, is some 10^-9 of any float32 kernel's error bound, so it can
    judge float32 results. Materialises ``[N, K]``: keep N * K modest.
    """
    x64 = x.detach().to(device="cpu", dtype=torch.float64)
    c64 = codebook.detach().to(device="cpu", dtype=torch.float64)
    x_sqnorm = (x64 * x64).sum(-1, keepdim=True)
    c_sqnorm = (c64 * c64).sum(-1)[None, :]
    return ((x_sqnorm + c_sqnorm) - 2.0 * (x64 @ c64.t())).clamp_min_(0.0)
