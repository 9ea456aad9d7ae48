"""Acoustic encoder: a (Bi)LSTM over ``[AudioMAE feature | semantic centroid]`` + a bias-free
projection back to F.  Its output is what the acoustic VQ quantizes.

Official (``AudioMAEConditionQuantResEncoder``): ``nn.LSTM(2F, hidden 2F, L layers,
batch_first, bidirectional)`` with standard gates, zero initial state and no dropout, then
``Linear(4F -> F, bias=False)`` on ``[forward | backward]`` outputs.  L = 4 / 3 / 2 for token
rates 100 / 50 / 25.

The checkpoint keeps both layers at the encoder ROOT (``encoder.*``,
``encoder_output_linear.weight``), so :class:`SemantiCodecEncoder` adopts the two modules built
here as its own children and runs them through :func:`run_acoustic`; :class:`AcousticEncoder`
is the same pair as a standalone module (same relative key names).
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import AcousticConfig


def lstm_hidden(feature_dim: int, cfg: AcousticConfig) -> int:
    """LSTM width: ``cfg.hidden``, or 2F like the published model when it is None."""
    return cfg.hidden if cfg.hidden is not None else 2 * feature_dim


def build_acoustic_lstm(feature_dim: int, cfg: AcousticConfig) -> nn.LSTM:
    """``nn.LSTM(2F -> H, cfg.lstm_layers, batch_first, bidirectional=cfg.bidirectional)``."""
    return nn.LSTM(
        input_size=2 * feature_dim,
        hidden_size=lstm_hidden(feature_dim, cfg),
        num_layers=cfg.lstm_layers,
        bias=True,
        batch_first=True,
        bidirectional=cfg.bidirectional,
    )


def build_acoustic_projection(feature_dim: int, cfg: AcousticConfig) -> nn.Linear:
    """Bias-free ``Linear(2H -> F)`` (``H -> F`` for a unidirectional LSTM); H = 2F officially."""
    directions = 2 if cfg.bidirectional else 1
    return nn.Linear(directions * lstm_hidden(feature_dim, cfg), feature_dim, bias=False)


def run_acoustic(
    lstm: nn.LSTM, projection: nn.Linear, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``x [B, T, 2F]`` (already -1 marked) -> (LSTM out ``[B, T, 4F]``, projection ``[B, T, F]``).

    The LSTM starts from zero state for every call: windows are encoded independently.
    """
    hidden, _ = lstm(x)
    return hidden, projection(hidden)


class AcousticEncoder(nn.Module):
    """Standalone ``encoder`` (LSTM) + ``encoder_output_linear`` pair.

    Args:
        feature_dim: F.
        cfg: LSTM depth and direction (:class:`AcousticConfig`).
    """

    def __init__(self, feature_dim: int, cfg: AcousticConfig) -> None:
        super().__init__()
        self.encoder = build_acoustic_lstm(feature_dim, cfg)
        self.encoder_output_linear = build_acoustic_projection(feature_dim, cfg)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, T, 2F] -> ([B, T, 4F], [B, T, F])`` (see :func:`run_acoustic`)."""
        return run_acoustic(self.encoder, self.encoder_output_linear, x)
