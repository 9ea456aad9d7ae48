"""Torch reference twins of the compiled kernels.  These are the specification: readable,
dtype-generic (run them in float64 to get ground truth), and used when no extension is built."""

from __future__ import annotations

import math

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


def sampler_step_ref(
    x_t: torch.Tensor,
    v_cond: torch.Tensor,
    v_uncond: torch.Tensor | None,
    noise: torch.Tensor | None,
    *,
    cfg_scale: float,
    sqrt_ac_t: float,
    sqrt_1m_ac_t: float,
    a_prev: float,
    sigma: float,
    mode: str = "ddim",
) -> tuple[torch.Tensor, torch.Tensor]:
    """One sampler step from a v prediction: guidance, v -> (x0, eps), then the update.

    Args:
        x_t: ``[...]`` current latent (``[B, C, T, F]`` in the sampler).
        v_cond: v prediction of the conditional branch, shape of ``x_t``.
        v_uncond: unconditional branch, or None for no guidance (``v = v_cond``).
        noise: standard normal, shape of ``x_t``; used only by ``"ddim"`` with ``sigma != 0``.
        cfg_scale: guidance scale (unused without ``v_uncond``).
        sqrt_ac_t, sqrt_1m_ac_t: sqrt(alpha-bar_t) and sqrt(1 - alpha-bar_t).
        a_prev: alpha-bar of the target timestep.
        sigma: DDIM noise level of the step (0 for eta 0).
        mode: ``"ddim"``, or ``"euler"``: the deterministic step, which ignores ``sigma`` and
            ``noise`` (see below).
    Returns:
        ``(x_prev, x0)`` in the dtype of ``x_t``.

    The chain, in the order of ``diffusion.ddim.cfg_combine`` then ``ddim_step_v``, every scalar
    a 0-d tensor of ``x_t``'s dtype as there::

        v      = v_uncond + cfg_scale * (v_cond - v_uncond)
        eps    = sqrt_ac_t * v + sqrt_1m_ac_t * x_t
        x0     = sqrt_ac_t * x_t - sqrt_1m_ac_t * v
        x_prev = sqrt(a_prev) * x0 + sqrt((1 - a_prev) - sigma * sigma) * eps  [+ sigma * noise]

    One deliberate difference: the two square roots are correctly rounded (IEEE) in that dtype,
    like the ``std::sqrt`` with which both compiled kernels derive their coefficients on the host,
    so that every backend agrees bit for bit. ``torch.sqrt`` on the CPU is not always correctly
    rounded (the torch 2.13 CPU build measured here is 1 ulp off for about a fifth of float32
    arguments), so ``ddim_step_v``'s ``x_prev`` can differ from this one by the effect of that
    coefficient ulp; ``x0`` and every other operation round identically.

    ``"euler"`` is the same update with sigma = 0: ``x_prev = sqrt(a_prev) x0 + sqrt(1 - a_prev)
    eps``. That is exactly one Euler step of the probability-flow ODE ``d xbar / d s = eps`` in
    the variables ``xbar = x / sqrt(a)``, ``s = sqrt((1 - a) / a)`` (DDIM with eta 0).

    Raises:
        ValueError: unknown ``mode``, or ``"ddim"`` with ``sigma != 0`` and no ``noise``.
    """
    if mode not in ("ddim", "euler"):
        raise ValueError(f"mode must be 'ddim' or 'euler', got {mode!r}")
    noisy = mode == "ddim" and sigma != 0.0
    if noisy and noise is None:
        raise ValueError("noise is required when sigma != 0 in ddim mode (eta > 0)")
    # Scalars are computed on the CPU (no device sync), then moved next to the data.
    sa, s1, ap, sg = (
        torch.tensor(s, dtype=x_t.dtype) for s in (sqrt_ac_t, sqrt_1m_ac_t, a_prev, sigma)
    )
    if mode == "euler":
        sg = torch.zeros_like(sg)
    c_x0, c_eps = _sqrt_rn(ap), _sqrt_rn((1.0 - ap) - sg * sg)
    sa, s1, sg, c_x0, c_eps = (c.to(x_t.device) for c in (sa, s1, sg, c_x0, c_eps))
    v = v_cond if v_uncond is None else v_uncond + cfg_scale * (v_cond - v_uncond)
    eps = sa * v + s1 * x_t
    x0 = sa * x_t - s1 * v
    x_prev = c_x0 * x0 + c_eps * eps
    if noisy:
        x_prev = x_prev + sg * noise
    return x_prev, x0


def _sqrt_rn(t: torch.Tensor) -> torch.Tensor:
    """Correctly rounded square root of a 0-d CPU tensor, in its dtype (NaN below 0).

    ``math.sqrt`` is correctly rounded in float64, and rounding that once more to float32,
    float16 or bfloat16 (at most 24 significant bits) is still correctly rounded, since
    53 >= 2 * 24 + 2 (double rounding is innocuous for square roots).
    """
    v = t.item()
    return torch.tensor(math.sqrt(v) if v >= 0 else math.nan, dtype=t.dtype)
