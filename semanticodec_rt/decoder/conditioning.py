"""Decoder conditioning: token features -> UNet cross-attention contexts.

The conditional context of one decoder window is ``[acoustic F || semantic F || PE 192]`` per
token position, right-filled with the constant -1 (all 2F feature dims, not the PE) up to the
window length W.  The unconditional context for classifier-free guidance is
``[zeros(2F) || PE]``: note the padded tail is 0 there but -1 in the conditional branch, so
guidance extrapolates the padding too -- a quirk kept for exactness.
"""

from __future__ import annotations

import torch

#: the feature value of a position without a token (window padding, lost positions)
NO_TOKEN = -1.0


def fill_window(feature: torch.Tensor, window: int, fill: float = NO_TOKEN) -> torch.Tensor:
    """Right-fill ``[B, T, 2F]`` features to ``[B, window, 2F]`` with ``fill``."""
    b, t, d = feature.shape
    if t > window:
        raise ValueError(f"window holds {window} tokens, got {t}")
    if t == window:
        return feature
    pad = feature.new_full((b, window - t, d), fill)
    return torch.cat([feature, pad], dim=1)


def make_contexts(feature: torch.Tensor, pe: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Conditional and unconditional contexts for one window.

    Args:
        feature: ``[B, W, 2F]`` window features, already -1 filled.
        pe: ``[W', 192]`` positional table with ``W' >= W``.
    Returns:
        ``(cond, uncond)``, each ``[B, W, 2F + 192]``.
    """
    b, w, _ = feature.shape
    if pe.shape[0] < w:
        raise ValueError(f"positional table has {pe.shape[0]} rows, window needs {w}")
    pos = pe[:w].to(feature.dtype).unsqueeze(0).expand(b, -1, -1)
    cond = torch.cat([feature, pos], dim=-1)
    uncond = torch.cat([torch.zeros_like(feature), pos], dim=-1)
    return cond, uncond
