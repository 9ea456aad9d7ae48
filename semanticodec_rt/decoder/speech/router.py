"""Which route voices a token position: the speech route or the general-audio route.

The choice costs no bits: it is read off the tokens the decoder already has.  A small GRU over
positions turns each position's token features into the logit of "this is music or effects,
not speech" (trained on the clip classes of the streams, :mod:`...lab.train.speech_stages`'
``router`` stage).  A decision is taken with hysteresis (enter the general route above
:data:`ENTER`, leave it below :data:`LEAVE`) so a position near the boundary does not flip the
route back and forth, and each switch fades from one route's waveform to the other's over
``fade_units`` positions, sample by sample (:func:`fade_weights`): nothing is cut, so nothing
clicks.

Everything is a function of the token sequence and the stream's own past, so a streamed decode
equals an offline one.

Shapes: ``step(cond [B, in], h) -> (logit [B], h)``; :class:`RouteState` per stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

#: probability of "general is better" above which the general route is entered...
ENTER = 0.6
#: ...and below which it is left
LEAVE = 0.4
ROUTES = ("auto", "speech", "general")


class RouteClassifier(nn.Module):
    """Args: in_dim (token feature width), hidden (GRU width)."""

    def __init__(self, in_dim: int, hidden: int) -> None:
        super().__init__()
        self.inp = nn.Linear(in_dim, hidden)
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.out = nn.Linear(hidden, 1)

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        """``[B, U, in]`` -> logits ``[B, U]`` (position u sees positions 0..u)."""
        h, _ = self.gru(torch.tanh(self.inp(cond)))
        return self.out(h)[..., 0]

    def step(self, cond: torch.Tensor, h: torch.Tensor | None):
        """One position ``[B, in]`` -> ``(logit [B], h)``."""
        y, h = self.gru(torch.tanh(self.inp(cond))[:, None], h)
        return self.out(y[:, 0])[:, 0], h


@dataclass
class RouteState:
    """One stream's router: its GRU state, the route in force (per batch item: 1.0 general,
    0.0 speech) and the general route's weight at the last sample emitted."""

    h: torch.Tensor | None = None
    general: torch.Tensor | None = None  # [B] bool
    weight: torch.Tensor | None = None  # [B] float


def decide(prob: torch.Tensor, state: RouteState, mode: str) -> torch.Tensor:
    """Update ``state.general`` from ``prob [B]`` with hysteresis (``mode`` "auto"), or force a
    route; returns the route in force ``[B]`` bool."""
    if mode not in ROUTES:
        raise ValueError(f"route must be one of {ROUTES}, got {mode!r}")
    if mode != "auto":
        state.general = torch.full_like(prob, mode == "general", dtype=torch.bool)
        return state.general
    if state.general is None:
        state.general = prob > 0.5
    else:
        state.general = torch.where(state.general, prob >= LEAVE, prob > ENTER)
    return state.general


def fade_weights(state: RouteState, target: torch.Tensor, frames: int, fade_frames: int) -> torch.Tensor:
    """The general route's weight for each of the next ``frames`` steps (samples, as the decoder
    uses it) ``[B, F]``: from where it stands towards ``target`` (0 or 1) by ``1 / fade_frames``
    per step (a linear fade over ``fade_frames`` steps; a stream's first step takes the target
    at once)."""
    t = target.float()
    if state.weight is None:
        state.weight = t
    ramp = torch.arange(1, frames + 1, dtype=t.dtype) / max(1, fade_frames)
    delta = (t - state.weight)[:, None]
    w = state.weight[:, None] + delta.sign() * torch.minimum(ramp[None], delta.abs())
    state.weight = w[:, -1]
    return w
