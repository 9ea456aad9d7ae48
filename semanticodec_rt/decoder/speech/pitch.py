"""Categorical pitch: FARGAN's pitch feature ``f18`` on a grid of bins, and back.

``f18`` is a log2 scale: period ``round(256 / 2^(f18 + 1.5))`` samples, so the periods FARGAN
uses (32..256 samples, 500..62.5 Hz) span ``f18`` in [-1.5, 1.5], three octaves.  A regression
head would average the two candidates of an octave error into a pitch between them; a softmax
over bins keeps them apart, and the decoder reads the pitch off the most likely bin (refined by
the probability-weighted mean of its neighbours).
"""

from __future__ import annotations

import torch

F18_MIN, F18_MAX = -1.5, 1.5


def bin_width(bins: int) -> float:
    return (F18_MAX - F18_MIN) / bins


def f18_to_bin(f18: torch.Tensor, bins: int) -> torch.Tensor:
    """``f18`` (any shape) -> the index of its bin, int64 in ``0 .. bins - 1``."""
    idx = torch.floor((f18 - F18_MIN) / bin_width(bins))
    return idx.clamp(0, bins - 1).long()


def bin_centres(bins: int, device=None) -> torch.Tensor:
    return F18_MIN + (torch.arange(bins, device=device, dtype=torch.float32) + 0.5) * bin_width(bins)


def soft_targets(f18: torch.Tensor, bins: int, sigma_bins: float = 1.0) -> torch.Tensor:
    """``[...]`` -> ``[..., bins]``: a Gaussian around the true value (the bins next to it are
    not as wrong as an octave away)."""
    c = bin_centres(bins, f18.device)
    d = (f18[..., None] - c) / (sigma_bins * bin_width(bins))
    w = torch.exp(-0.5 * d * d)
    return w / w.sum(-1, keepdim=True).clamp_min(1e-12)


def decode_pitch(logits: torch.Tensor, radius: int = 2) -> torch.Tensor:
    """``[..., bins]`` logits -> ``f18`` ``[...]``: the arg-max bin, refined by the
    probability-weighted mean of the bins within ``radius`` of it."""
    bins = logits.shape[-1]
    p = torch.softmax(logits, -1)
    top = p.argmax(-1, keepdim=True)
    offs = torch.arange(-radius, radius + 1, device=logits.device)
    idx = (top + offs).clamp(0, bins - 1)
    w = p.gather(-1, idx) * ((top + offs >= 0) & (top + offs < bins))
    c = bin_centres(bins, logits.device)[idx]
    return (w * c).sum(-1) / w.sum(-1).clamp_min(1e-12)
