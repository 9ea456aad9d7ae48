"""The regression paths: token features -> per-frame vocoder inputs, one GRU step per position.

Per position u the input is the decoder feature of the tokens (semantic centroid || acoustic
code); a GRU runs over positions; the output for position u is read from the GRU states of u
and of ``u + lookahead`` (the decoder waits for ``lookahead`` later positions) and holds ``F``
rows of ``width`` numbers, one per 10 ms frame.

* :class:`FeatureRegressor` -- the speech route's rows: the 19 continuous FARGAN features (18
  cepstral coefficients and the pitch correlation, normalised) and the logits of the
  categorical pitch;
* :class:`MelRegressor` -- the general route's rows: 64-bin log-mel frames.

``forward`` takes whole sequences (training; position u < U - lookahead), ``step`` one
position with the GRU state (inference, offline and streamed alike).
"""

from __future__ import annotations

import torch
from torch import nn

#: continuous outputs per frame: cepstrum c0..c17 and the pitch correlation
CONTINUOUS = 19


class PositionRegressor(nn.Module):
    """Args: in_dim (token feature width), hidden (GRU width), unit_frames (F), width (numbers
    per frame), lookahead (positions the output waits for).  Subclasses split the rows
    (:meth:`_read`)."""

    def __init__(self, in_dim: int, hidden: int, unit_frames: int, width: int, lookahead: int) -> None:
        super().__init__()
        self.unit_frames, self.width, self.lookahead = unit_frames, width, lookahead
        self.inp = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU())
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.context_dim = 2 * hidden
        self.head = nn.Sequential(
            nn.Linear(self.context_dim, hidden), nn.GELU(),
            nn.Linear(hidden, unit_frames * width),
        )

    def _read(self, ctx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (self.head(ctx).unflatten(-1, (self.unit_frames, self.width)),)

    def context(self, h: torch.Tensor) -> torch.Tensor:
        """GRU states ``[B, U, H]`` -> per-position context ``[B, U - lookahead, 2H]``."""
        la = self.lookahead
        return torch.cat([h[:, : h.shape[1] - la], h[:, la:]], -1)

    def forward(self, cond: torch.Tensor, h0: torch.Tensor | None = None):
        """``[B, U, in]`` -> ``(*rows, ctx [B, U', 2H])`` with ``U' = U - lookahead`` (rows: see
        the subclass)."""
        h, _ = self.gru(self.inp(cond), h0)
        return self.read(self.context(h))

    def read(self, ctx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Per-position context ``[..., 2H]`` -> ``(*rows, ctx)``."""
        return (*self._read(ctx), ctx)

    def step(self, cond: torch.Tensor, state, read: bool = True):
        """One position ``[B, in]`` -> ``(out or None, state)``; ``out`` is ``(*rows, ctx)`` of
        position ``u - lookahead`` (rows ``[B, F, ...]``) once that many positions have arrived
        (``read=False``: ``(ctx,)`` only; :meth:`read` gives the rows when they are wanted).  ``state`` is
        ``(h [1, B, H], recent states [B, <= lookahead, H])``, None at a stream start."""
        h, recent = (None, None) if state is None else state
        y, h = self.gru(self.inp(cond)[:, None], h)
        hist = y if recent is None else torch.cat([recent, y], 1)
        out = None
        if hist.shape[1] > self.lookahead:
            ctx = torch.cat([hist[:, 0], hist[:, -1]], -1)
            out = self.read(ctx) if read else (ctx,)
            hist = hist[:, 1:]
        return out, (h, hist)


class FeatureRegressor(PositionRegressor):
    """The speech route's path.  Args as :class:`PositionRegressor` with ``pitch_bins`` (P) for
    ``width``; rows ``(cont [.., F, 19], logits [.., F, P])``."""

    def __init__(self, in_dim: int, hidden: int, unit_frames: int, pitch_bins: int, lookahead: int) -> None:
        super().__init__(in_dim, hidden, unit_frames, CONTINUOUS + pitch_bins, lookahead)
        self.pitch_bins = pitch_bins

    def _read(self, ctx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        (y,) = super()._read(ctx)
        return y[..., :CONTINUOUS], y[..., CONTINUOUS:]


class MelRegressor(PositionRegressor):
    """The general route's path: rows ``(mel [.., F, n_mels],)`` of raw log-mel
    (:mod:`semanticodec_rt.audio.mel` units).

    Position u's rows are the frames ``F u + shift .. F u + F - 1 + shift``: ``shift`` frames
    (20 ms at the default 2) later than the position's own, which its lookahead has already
    seen.  The iSTFT vocoder's 40 ms windows (:mod:`..synthesis.istft_vocoder`) start 15 ms
    before their own 10 ms frame, so the last samples of a position are also touched by the
    next position's first two frames; with them in hand the position's 640 samples are final in
    the same step as FARGAN's: the route adds no latency.
    """

    def __init__(self, in_dim: int, hidden: int, unit_frames: int, n_mels: int, lookahead: int,
                 shift: int) -> None:
        super().__init__(in_dim, hidden, unit_frames, n_mels, lookahead)
        self.shift = shift
