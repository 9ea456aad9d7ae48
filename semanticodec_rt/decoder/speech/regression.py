"""The regression path: token features -> vocoder features, one GRU step per token position.

Per position u the input is the decoder feature of the tokens (semantic centroid || acoustic
code); a GRU runs over positions; the output for position u is read from the GRU states of u
and of ``u + lookahead`` (the decoder waits for ``lookahead`` later positions), and holds, for
each of the position's ``F`` 10 ms frames, the 19 continuous features (18 cepstral coefficients
and the pitch correlation, normalised) and the logits of the categorical pitch.

* :meth:`FeatureRegressor.forward` -- whole sequences (training); position u < U - lookahead;
* :meth:`FeatureRegressor.step` -- one position with the GRU state (inference, offline and
  streamed alike).
"""

from __future__ import annotations

import torch
from torch import nn

#: continuous outputs per frame: cepstrum c0..c17 and the pitch correlation
CONTINUOUS = 19


class FeatureRegressor(nn.Module):
    """Args: in_dim (token feature width), hidden (GRU width), unit_frames (F), pitch_bins,
    lookahead (positions the output waits for)."""

    def __init__(self, in_dim: int, hidden: int, unit_frames: int, pitch_bins: int, lookahead: int) -> None:
        super().__init__()
        self.unit_frames, self.pitch_bins, self.lookahead = unit_frames, pitch_bins, lookahead
        self.inp = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU())
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.context_dim = 2 * hidden
        self.head = nn.Sequential(
            nn.Linear(self.context_dim, hidden), nn.GELU(),
            nn.Linear(hidden, unit_frames * (CONTINUOUS + pitch_bins)),
        )

    def _read(self, ctx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.head(ctx).unflatten(-1, (self.unit_frames, CONTINUOUS + self.pitch_bins))
        return y[..., :CONTINUOUS], y[..., CONTINUOUS:]

    def context(self, h: torch.Tensor) -> torch.Tensor:
        """GRU states ``[B, U, H]`` -> per-position context ``[B, U - lookahead, 2H]``."""
        la = self.lookahead
        return torch.cat([h[:, : h.shape[1] - la], h[:, la:]], -1)

    def forward(self, cond: torch.Tensor, h0: torch.Tensor | None = None):
        """``[B, U, in]`` -> ``(cont [B, U', F, 19], logits [B, U', F, P], ctx [B, U', 2H])``
        with ``U' = U - lookahead``."""
        h, _ = self.gru(self.inp(cond), h0)
        ctx = self.context(h)
        cont, logits = self._read(ctx)
        return cont, logits, ctx

    def step(self, cond: torch.Tensor, state):
        """One position ``[B, in]`` -> ``(out or None, state)``; ``out`` is ``(cont, logits, ctx)``
        of position ``u - lookahead`` once that many positions have arrived.  ``state`` is
        ``(h [1, B, H], recent states [B, <= lookahead, H])``, None at a stream start."""
        h, recent = (None, None) if state is None else state
        y, h = self.gru(self.inp(cond)[:, None], h)
        hist = y if recent is None else torch.cat([recent, y], 1)
        out = None
        if hist.shape[1] > self.lookahead:
            ctx = torch.cat([hist[:, 0], hist[:, -1]], -1)
            cont, logits = self._read(ctx)
            out = (cont, logits, ctx)
            hist = hist[:, 1:]
        return out, (h, hist)
