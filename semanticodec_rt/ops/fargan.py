"""FARGAN streaming synthesis in the C++ extension (``semanticodec_rt._C.Fargan``).

The reference twin is the torch module :class:`semanticodec_rt.decoder.synthesis.fargan.FARGAN`
(float mode): same layers, same arithmetic up to the order of the sums.  There is no CUDA version:
one stream is a chain of small matrix-vector products per 2.5 ms, which a GPU would run no
faster than a CPU core (the torch twin runs batched on a GPU for training).
"""

from __future__ import annotations

import torch

from . import _backend, _f32_numpy


class FarganKernel:
    """One FARGAN stream on the CPU; its state lives in the C++ object between calls.

    Args:
        layers: ``[(weight [out, in], bias [out] or None)]`` float tensors in ``FARGAN_LAYERS``
            order (the twin's :meth:`~semanticodec_rt.decoder.synthesis.fargan.FARGAN.dense_layers`).

    Raises:
        RuntimeError: the C++ extension is not built (there is no other backend of this kernel).
    """

    def __init__(self, layers: list[tuple[torch.Tensor, torch.Tensor | None]]):
        mod = _backend.load("cpp")
        self._k = mod.Fargan([(_f32(w), None if b is None else _f32(b)) for w, b in layers])

    def prime(self, features: torch.Tensor, pcm: torch.Tensor | None = None) -> None:
        """Start a stream: ``features`` ``[5, 20]`` of the first frames, ``pcm`` ``[320]`` before."""
        self._k.prime(_f32(features), None if pcm is None else _f32(pcm))

    def synthesize(self, features: torch.Tensor) -> torch.Tensor:
        """``[T, >= 20]`` features -> ``[T * 160]`` float32 pcm at 16 kHz, continuing the stream."""
        return torch.from_numpy(self._k.synthesize(_f32(features)))

    def reset(self) -> None:
        self._k.reset()



def _f32(t: torch.Tensor):
    """A float32 C-contiguous numpy view (or copy) of a tensor on any device."""
    return _f32_numpy(t.detach().cpu())
