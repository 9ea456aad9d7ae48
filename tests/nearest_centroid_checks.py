"""Shared by the nearest-centroid tests: random and tied problems, and the float64 judge.

Float32 kernels may legitimately pick a different index than float64 when two centroids are
closer than float32 rounding can tell apart, so results are judged by *distances*: the chosen
centroid's exact distance must be within a rigorous float32 error bound of the best one. Exact
ties (duplicated centroids) have no such excuse and must return the lowest index.
"""

from __future__ import annotations

import functools

import torch
from kernel_backends import U32

from semanticodec_rt.ops.ref import pairwise_sqdist_f64


def fp32_error_bound(x: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """[N] float64 bound on |fp32 (||x||^2 + ||c||^2 - 2 x.c) - exact| over all centroids.

    Each of the three D-term sums errs by at most gamma_D times its sum of |terms| (any order),
    and the two final additions add one rounding each: in all gamma_{D+2} (||x|| + ||c||)^2.
    """
    d = x.shape[-1]
    gamma = (d + 2) * U32 / (1 - (d + 2) * U32)
    xn = x.double().norm(dim=-1).cpu()
    cn = codebook.double().norm(dim=-1).max().cpu()
    return gamma * (xn + cn) ** 2


def check_against_f64(x, codebook, index, sqdist) -> None:
    """Chosen centroid is optimal up to float32 rounding; sqdist is its distance up to rounding."""
    x = x.reshape(-1, x.shape[-1]).cpu()
    index, sqdist = index.reshape(-1).cpu(), sqdist.reshape(-1).cpu().double()
    k = codebook.shape[0]
    assert index.dtype == torch.int64
    assert bool(((index >= 0) & (index < k)).all()), "index out of range"
    d64 = pairwise_sqdist_f64(x, codebook)
    tol = fp32_error_bound(x, codebook)
    sorted_d = d64.topk(min(2, k), dim=-1, largest=False).values
    best = sorted_d[:, 0]
    chosen = d64.gather(1, index[:, None])[:, 0]
    bad = chosen > best + 2 * tol
    rows = bad.nonzero()[:5, 0].tolist()
    assert not rows, f"rows {rows}: chosen {chosen[rows]} vs best {best[rows]} (+ {2 * tol[rows]})"
    err = (sqdist - chosen).abs()
    worst = int(err.argmax())
    assert bool((err <= tol).all()), f"sqdist off by {err[worst]:.3g} > bound {tol[worst]:.3g}"
    if k > 1:  # where float32 can separate the two best, the float64 winner must be chosen
        clear = (sorted_d[:, 1] - best) > 2 * tol
        assert torch.equal(index[clear], d64.argmin(-1)[clear])


@functools.lru_cache(maxsize=None)
def random_problem(n: int, k: int, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(n * 1_000_003 + k * 1009 + d)
    return torch.randn(n, d, generator=g), torch.randn(k, d, generator=g)


def tied_codebook(d: int) -> tuple[torch.Tensor, dict[int, list[int]]]:
    """[4097, d] codebook with groups of identical rows: leader index -> its later copies.

    Copies sit in the same register tile, across cache-block and thread-chunk boundaries, and in
    the last (tail) row.
    """
    g = torch.Generator().manual_seed(7)
    codebook = torch.randn(4097, d, generator=g)
    groups = {5: [6, 7, 8, 2053, 4096], 1027: [1028], 2999: [3000, 4095], 4093: [4094]}
    for leader, copies in groups.items():
        codebook[copies] = codebook[leader].clone()
    return codebook, groups
