"""Kernel entry points with backend dispatch (CUDA -> C++ -> torch reference).

Each op validates its tensors, picks a backend (see :mod:`._backend`: ``backend=`` argument,
:func:`use_backend`, ``SCRT_BACKEND=auto|ref|cpp|cuda``) and runs it. The compiled backends
compute in float32; ``ref`` computes in the inputs' (promoted) dtype, so ``backend="ref"`` with
float64 inputs gives ground truth.
"""

from __future__ import annotations

import torch

from . import _backend
from ._backend import BACKENDS, available_backends, use_backend
from .ref import nearest_centroid_ref, nearest_centroid_with_distance_ref

__all__ = [
    "BACKENDS",
    "available_backends",
    "nearest_centroid",
    "nearest_centroid_ref",
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


def _check_inputs(x: torch.Tensor, codebook: torch.Tensor, sqnorm: torch.Tensor | None) -> None:
    for name, t in (("x", x), ("codebook", codebook), ("codebook_sqnorm", sqnorm)):
        if t is None:
            continue
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise ValueError(f"{name} must have a floating dtype, got {t.dtype}")
        if t.device != x.device:
            raise ValueError(f"{name} is on {t.device} but x is on {x.device}")
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
