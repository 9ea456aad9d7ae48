"""How a checkpoint stores its tensors: float32, float16, or int8 with per-row scales.

The shipped default model must stay small (<= 25 MB), so :func:`pack` can store every large
weight as int8 with one float16 scale per row (symmetric, ``scale = max|row| / 127``):

* "rows" run along the last dimension when it is long (linear and LSTM weights ``[out, in]``,
  codebooks ``[K, D]`` / ``[1, K, D]``: one scale per codeword), else along everything after
  the first (convolutions ``[out, in, kh, kw]``: one scale per output channel);
* tensors under :data:`MIN_INT8_ELEMENTS` elements or with fewer than 2 dimensions (biases, norms,
  schedules, scale factors) stay float16, and so do tensors whose key starts with one of the
  ``keep_float16`` prefixes (for weights whose rounding the outputs feel most, e.g. the acoustic
  LSTM, whose error accumulates over time, and the VQ codebook it is matched against);
* buffers that only training updates (the acoustic VQ's EMA sums) are not stored at all;
  :func:`unpack` rebuilds them from the codebook, as their values never reach an output.

``unpack`` returns float32 tensors; the rounding is visible in the decoded audio only as a small
change (measured in ``tests/test_weight_storage.py`` and the model card), and the tokens of a
given file are those of the dequantized model, which is the model the checkpoint names.
"""

from __future__ import annotations

import torch

STORAGES = ("float32", "float16", "int8")
MIN_INT8_ELEMENTS = 4096
SCALE_SUFFIX = ".__int8_scale__"
#: training-only buffers and how unpack() rebuilds them from the stored tensors
TRAINING_ONLY = {
    "encoder.quantizer._codebook.embed_avg": lambda t: t["encoder.quantizer._codebook.embed"].clone(),
    "encoder.quantizer._codebook.cluster_size": lambda t: torch.ones(t["encoder.quantizer._codebook.embed"].shape[:2]),
    # the speech route's residual VQ (EMA statistics of its [S, K, D] codebooks)
    "encoder.rvq.embed_sum": lambda t: t["encoder.rvq.embed"].clone(),
    "encoder.rvq.cluster_size": lambda t: torch.ones(t["encoder.rvq.embed"].shape[:2]),
}
#: the tensor each training-only buffer is rebuilt from
_REBUILT_FROM = {k: k.rsplit(".", 1)[0] + ".embed" for k in TRAINING_ONLY}


def _rows(t: torch.Tensor) -> torch.Tensor:
    """The 2-D view whose rows share one scale (see the module docstring)."""
    if t.shape[-1] >= 64:
        return t.reshape(-1, t.shape[-1])
    return t.reshape(t.shape[0], -1)


def quantize_int8(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Float tensor -> ``(int8 tensor of t's shape, float16 scales [rows])``."""
    rows = _rows(t.detach().float())
    scale = (rows.abs().amax(dim=1) / 127.0).to(torch.float16).float()
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(rows / safe[:, None]).clamp(-127, 127).to(torch.int8)
    return q.reshape(t.shape), scale.to(torch.float16)


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return (_rows(q).float() * scale.float()[:, None]).reshape(q.shape)


def pack(tensors: dict[str, torch.Tensor], storage: str,
         keep_float16: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """State tensors (float32) -> what the file stores for ``storage``.

    ``keep_float16``: key prefixes stored as float16 instead of int8 (``storage="int8"`` only).
    """
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {STORAGES}, got {storage!r}")
    if keep_float16 and storage != "int8":
        raise ValueError(f"keep_float16 applies to int8 storage only, not {storage!r}")
    if storage == "float32":
        return dict(tensors)
    keep = tuple(keep_float16)
    out = {}
    for k, v in tensors.items():
        if not v.is_floating_point():
            out[k] = v
        elif storage == "float16":
            out[k] = v.to(torch.float16)
        elif k in TRAINING_ONLY:
            continue
        elif v.dim() >= 2 and v.numel() >= MIN_INT8_ELEMENTS and not k.startswith(keep):
            out[k], out[k + SCALE_SUFFIX] = quantize_int8(v)
        else:
            out[k] = v.to(torch.float16)
    return {k: v.contiguous() for k, v in out.items()}


def unpack(stored: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What a file stores -> float32 state tensors (int8 dequantized, dropped buffers rebuilt)."""
    out = {}
    for k, v in stored.items():
        if k.endswith(SCALE_SUFFIX):
            continue
        if v.dtype == torch.int8 and k + SCALE_SUFFIX in stored:
            out[k] = dequantize_int8(v, stored[k + SCALE_SUFFIX])
        else:
            out[k] = v.float() if v.is_floating_point() else v
    for k, rebuild in TRAINING_ONLY.items():
        if k not in out and _REBUILT_FROM[k] in out:
            out[k] = rebuild(out)
    return out
