"""Kernel entry points with backend dispatch (CUDA -> C++ -> torch reference).

Each op validates its tensors, picks a backend (see :mod:`._backend`: ``backend=`` argument,
:func:`use_backend`, ``SCRT_BACKEND=auto|ref|cpp|cuda``) and runs it. The compiled backends
compute in float32; ``ref`` computes in the inputs' (promoted) dtype, so ``backend="ref"`` with
float64 inputs gives ground truth.
"""

from __future__ import annotations

import torch

from . import _backend
from ._backend import BACKENDS, available_backends, build_info, use_backend
from .ref import nearest_centroid_ref, nearest_centroid_with_distance_ref, sampler_step_ref

__all__ = [
    "BACKENDS",
    "available_backends",
    "build_info",
    "nearest_centroid",
    "nearest_centroid_ref",
    "sampler_step",
    "sampler_step_ref",
    "use_backend",
]


def nearest_centroid(
    x: torch.Tensor,
    codebook: torch.Tensor,
    codebook_sqnorm: torch.Tensor | None = None,
    *,
    backend: str | None = None,
    return_distance: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Index of the nearest codebook row (squared Euclidean distance) for every vector of ``x``.

    Args:
        x: ``[..., D]`` queries, any floating dtype, any strides.
        codebook: ``[K, D]`` centroids, K >= 1, floating, on the device of ``x``.
        codebook_sqnorm: optional ``[K]`` precomputed ``||c||^2`` (saves one pass over the
            codebook per call when it is reused).
        backend: force ``"ref"``, ``"cpp"``, ``"cuda"`` or ``"auto"`` for this call.
        return_distance: also return the winning squared distance.
    Returns:
        ``[...]`` int64 indices on the device of ``x``, and with ``return_distance`` a tuple
        ``(indices, sqdist)``; ``sqdist`` is float32 from the compiled backends, the compute dtype
        from ``ref``. It is ``(||x||^2 + ||c||^2) - 2 x.c``, which can dip slightly below 0.

    Exact ties resolve to the lowest index on every backend. The ``cpp`` and ``cuda`` backends
    convert inputs to float32 (float64 inputs lose precision there: use ``backend="ref"`` for
    float64 arithmetic) and copy non-contiguous inputs. The ``cpp`` kernel uses
    ``torch.get_num_threads()`` threads; its result does not depend on that number. Not
    differentiable: inputs are detached.

    Raises:
        ValueError: bad shapes (dimension mismatch, empty codebook), non-floating dtypes, tensors
            on different devices, or a backend named for the wrong device.
        RuntimeError: the named backend is not built or failed to import.
    """
    _check_inputs(x, codebook, codebook_sqnorm)
    name = _backend.resolve(backend, x.device)
    lead = x.shape[:-1]
    flat = x.detach().reshape(-1, x.shape[-1])
    if flat.shape[0] == 0:
        dist_dtype = torch.float32 if name != "ref" else _ref_dtype(x, codebook, codebook_sqnorm)
        index = torch.empty(lead, dtype=torch.int64, device=x.device)
        sqdist = torch.empty(lead, dtype=dist_dtype, device=x.device)
    else:
        index, sqdist = _IMPLS[name](flat, codebook.detach(), _detach(codebook_sqnorm))
        index, sqdist = index.reshape(lead), sqdist.reshape(lead)
    return (index, sqdist) if return_distance else index


def _check_float_tensors(*named: tuple[str, torch.Tensor | None]) -> None:
    """Each given tensor is a floating torch.Tensor on the first one's device (None: absent)."""
    first_name, first = named[0]
    for name, t in named:
        if t is None:
            continue
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise ValueError(f"{name} must have a floating dtype, got {t.dtype}")
        if t.device != first.device:
            raise ValueError(f"{name} is on {t.device} but {first_name} is on {first.device}")


def _check_inputs(x: torch.Tensor, codebook: torch.Tensor, sqnorm: torch.Tensor | None) -> None:
    _check_float_tensors(("x", x), ("codebook", codebook), ("codebook_sqnorm", sqnorm))
    if x.dim() < 1:
        raise ValueError("x must have shape [..., D], got a 0-dim tensor")
    if codebook.dim() != 2:
        raise ValueError(f"codebook must have shape [K, D], got {list(codebook.shape)}")
    if codebook.shape[0] == 0:
        raise ValueError("codebook is empty (K = 0)")
    if x.shape[-1] != codebook.shape[1]:
        raise ValueError(
            f"dimension mismatch: x is [..., {x.shape[-1]}], codebook is {list(codebook.shape)}"
        )
    if sqnorm is not None and tuple(sqnorm.shape) != (codebook.shape[0],):
        raise ValueError(
            f"codebook_sqnorm must have shape [{codebook.shape[0]}], got {list(sqnorm.shape)}"
        )


def _detach(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.detach()


def _ref_dtype(*tensors: torch.Tensor | None) -> torch.dtype:
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        if t is not None:
            dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def _nearest_ref(x, codebook, sqnorm):
    dtype = _ref_dtype(x, codebook, sqnorm)
    sqnorm = None if sqnorm is None else sqnorm.to(dtype)
    return nearest_centroid_with_distance_ref(x.to(dtype), codebook.to(dtype), sqnorm)


def _f32_numpy(t: torch.Tensor):
    """Zero-copy numpy view when ``t`` already is contiguous float32, else a converted copy."""
    return t.to(torch.float32).contiguous().numpy()


def _nearest_cpp(x, codebook, sqnorm):
    mod = _backend.load("cpp")
    index, sqdist = mod.nearest_centroid(
        _f32_numpy(x),
        _f32_numpy(codebook),
        None if sqnorm is None else _f32_numpy(sqnorm),
        torch.get_num_threads(),
    )
    return torch.from_numpy(index), torch.from_numpy(sqdist)


def _nearest_cuda(x, codebook, sqnorm):
    mod = _backend.load("cuda")
    dev = x.device
    x = x.to(torch.float32).contiguous()
    codebook = codebook.to(torch.float32).contiguous()
    (n, d), k = x.shape, codebook.shape[0]
    # torch's current stream: the launches are ordered after the work that produced the inputs,
    # and the caching allocator's stream-ordered reuse keeps temporaries alive long enough.
    stream = torch.cuda.current_stream(dev).cuda_stream
    if sqnorm is None:
        sqnorm = torch.empty(k, dtype=torch.float32, device=dev)
        mod.codebook_sqnorm(codebook.data_ptr(), k, d, sqnorm.data_ptr(), stream, dev.index)
    else:
        sqnorm = sqnorm.to(torch.float32).contiguous()
    index = torch.empty(n, dtype=torch.int64, device=dev)
    sqdist = torch.empty(n, dtype=torch.float32, device=dev)
    mod.nearest_centroid(
        x.data_ptr(), codebook.data_ptr(), sqnorm.data_ptr(), n, k, d,
        index.data_ptr(), sqdist.data_ptr(), stream, dev.index,
    )
    return index, sqdist


_IMPLS = {"ref": _nearest_ref, "cpp": _nearest_cpp, "cuda": _nearest_cuda}


# ------------------------------------------------------------------ fused sampler step


def sampler_step(
    x_t: torch.Tensor,
    v_cond: torch.Tensor,
    v_uncond: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
    *,
    cfg_scale: float = 1.0,
    sqrt_ac_t: float,
    sqrt_1m_ac_t: float,
    a_prev: float,
    sigma: float = 0.0,
    mode: str = "ddim",
    backend: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One fused sampler step: guidance, v -> (x0, eps) and the DDIM or Euler update.

    The math, its order of operations and the two modes are those of
    :func:`~semanticodec_rt.ops.ref.sampler_step_ref` (``diffusion.ddim.cfg_combine`` followed
    by ``ddim_step_v``, with correctly rounded square roots); the compiled kernels do it in one
    pass over the elements.

    Args:
        x_t: ``[B, C, T, F]`` (any shape, empty included) current latent, floating, any strides.
        v_cond: v prediction, shape of ``x_t``; the guided one when ``v_uncond`` is None.
        v_uncond: unconditional v prediction, or None for no guidance.
        noise: standard normal, shape of ``x_t``; required in ``"ddim"`` mode when
            ``sigma != 0``, ignored otherwise.
        cfg_scale, sqrt_ac_t, sqrt_1m_ac_t, a_prev, sigma: the step's scalars (Python floats or
            0-d tensors), as for ``ddim_step_v``.
        mode: ``"ddim"`` or ``"euler"`` (deterministic: sigma and noise ignored).
        backend: force ``"ref"``, ``"cpp"``, ``"cuda"`` or ``"auto"`` for this call.
    Returns:
        ``(x_prev, x0)``, shaped like ``x_t``, contiguous, on its device, in the promoted dtype
        of the tensors the step reads (``noise`` only when it is used).

    The compiled backends compute in float32, whatever the input dtype, and cast the results back
    (float16 / bfloat16 inputs gain accuracy, float64 inputs lose it: use ``backend="ref"`` for
    float64 arithmetic). With float32 inputs all backends agree bit for bit: every scalar is
    rounded to float32, the two square roots are correctly rounded and every operation rounds
    once, in the same order. ``x0`` is also bit-identical to ``ddim_step_v``'s; its ``x_prev``
    can differ by the effect of one ulp in a coefficient, because ``torch.sqrt`` on the CPU is not
    always correctly rounded. Not differentiable: inputs are detached.

    Raises:
        ValueError: shapes differ, non-floating dtypes, tensors on different devices, unknown
            ``mode``, ``noise`` missing where it is needed, or a backend named for the wrong device.
        RuntimeError: the named backend is not built or failed to import.
    """
    sigma = float(sigma)
    _check_step_inputs(x_t, v_cond, v_uncond, noise, sigma, mode)
    name = _backend.resolve(backend, x_t.device)
    if mode == "euler" or sigma == 0.0:
        noise = None  # never read, so it does not take part in dtype promotion either
    tensors = [_detach(t) for t in (x_t, v_cond, v_uncond, noise)]
    dtype = _ref_dtype(*tensors)
    if x_t.numel() == 0:
        return x_t.new_empty(x_t.shape, dtype=dtype), x_t.new_empty(x_t.shape, dtype=dtype)
    scalars = dict(
        cfg_scale=float(cfg_scale),
        sqrt_ac_t=float(sqrt_ac_t),
        sqrt_1m_ac_t=float(sqrt_1m_ac_t),
        a_prev=float(a_prev),
        sigma=sigma,
    )
    return _STEP_IMPLS[name](*tensors, dtype, scalars, mode == "euler")


def _check_step_inputs(x_t, v_cond, v_uncond, noise, sigma: float, mode: str) -> None:
    named = (("x_t", x_t), ("v_cond", v_cond), ("v_uncond", v_uncond), ("noise", noise))
    _check_float_tensors(*named)
    for name, t in named[1:]:
        if t is not None and t.shape != x_t.shape:
            raise ValueError(f"{name} has shape {list(t.shape)} but x_t has {list(x_t.shape)}")
    if mode not in ("ddim", "euler"):
        raise ValueError(f"mode must be 'ddim' or 'euler', got {mode!r}")
    if mode == "ddim" and sigma != 0.0 and noise is None:
        raise ValueError("noise is required when sigma != 0 in ddim mode (eta > 0)")


def _contiguous_as(dtype: torch.dtype, *tensors: torch.Tensor | None) -> list:
    return [None if t is None else t.to(dtype).contiguous() for t in tensors]


def _step_ref(x_t, v_cond, v_uncond, noise, dtype, scalars, euler):
    tensors = _contiguous_as(dtype, x_t, v_cond, v_uncond, noise)
    return sampler_step_ref(*tensors, mode="euler" if euler else "ddim", **scalars)


def _step_cpp(x_t, v_cond, v_uncond, noise, dtype, scalars, euler):
    mod = _backend.load("cpp")
    x_prev, x0 = mod.sampler_step(
        _f32_numpy(x_t),
        _f32_numpy(v_cond),
        None if v_uncond is None else _f32_numpy(v_uncond),
        None if noise is None else _f32_numpy(noise),
        **scalars,
        euler=euler,
        num_threads=torch.get_num_threads(),
    )
    return torch.from_numpy(x_prev).to(dtype), torch.from_numpy(x0).to(dtype)


def _step_cuda(x_t, v_cond, v_uncond, noise, dtype, scalars, euler):
    mod = _backend.load("cuda")
    dev = x_t.device
    x_t, v_cond, v_uncond, noise = _contiguous_as(torch.float32, x_t, v_cond, v_uncond, noise)
    x_prev, x0 = torch.empty_like(x_t), torch.empty_like(x_t)
    mod.sampler_step(
        x_t.data_ptr(),
        v_cond.data_ptr(),
        0 if v_uncond is None else v_uncond.data_ptr(),
        0 if noise is None else noise.data_ptr(),
        x_t.numel(),
        **scalars,
        euler=euler,
        out_x_prev=x_prev.data_ptr(),
        out_x0=x0.data_ptr(),
        # torch's current stream: ordered after the work that produced the inputs (see above).
        stream=torch.cuda.current_stream(dev).cuda_stream,
        device=dev.index,
    )
    return x_prev.to(dtype), x0.to(dtype)


_STEP_IMPLS = {"ref": _step_ref, "cpp": _step_cpp, "cuda": _step_cuda}
