"""The windowing protocol: how a codec cuts audio and tokens into the pieces its networks run on.

A codec's encoder and decoder networks see fixed-size windows; which windows, how they overlap,
how a stream is padded and ended, and therefore the latency, is the *regime*.  Each regime is one
implementation of :class:`Windowing`, and it is the only code that asks which regime a config
is in (``windowing_for`` in this package): the codec, the command line, live audio, the voice
link, eval and bench ask the windowing, never the config.

Implementations read only ``parts.cfg``, ``parts.encoder`` and ``parts.decoder`` of the codec
they are handed (:class:`CodecParts`): they run the networks, they do not call back into the
codec.

Shapes: audio ``[B, N]`` float32 at 16 kHz; tokens ``[B, L, 2]`` int64 (semantic, acoustic);
decoded audio ``[B, 1, n]`` float32.  A *frame* is one token position (2 ids).
"""

from __future__ import annotations

from typing import Iterable, Iterator, Protocol

import numpy as np
import torch
from torch import nn

from ..config import CodecConfig, SamplerConfig


class CodecParts(Protocol):
    """What a windowing uses of a codec: its config and its two networks."""

    cfg: CodecConfig
    encoder: nn.Module
    decoder: nn.Module


class Windowing(Protocol):
    """One decoder regime.  Attributes are fixed per config; methods take the codec's parts."""

    #: short name of the regime, e.g. ``"official-10.24s"`` or ``"rt-units"``
    name: str
    #: whether it can run live (a latency of a few hundred ms rather than ~10 s)
    realtime: bool
    #: input-to-output delay the windowing imposes before any compute time (ms)
    algorithmic_latency_ms: float
    #: samples of one streaming step (an rt unit; one 10.24 s window for the published model)
    unit_samples: int
    #: token positions of one streaming step
    unit_frames: int
    #: token positions one decoder window is conditioned on
    decoder_window_tokens: int
    #: decode batch size in windows when the caller gives none
    default_windows_per_batch: int
    #: fewest decoder steps ``decode`` accepts (1 for diffusion; 0 for the speech route's
    #: regression path alone)
    min_steps: int

    def frames_for_samples(self, n_samples: int) -> int:
        """Token positions that ``encode`` makes for ``n_samples`` of audio."""

    def encode(self, parts: CodecParts, wave: torch.Tensor) -> torch.Tensor:
        """``[B, N]`` 16 kHz audio on the model's device -> tokens ``[B, L, 2]`` (on that device)."""

    def decode(self, parts: CodecParts, tokens: torch.Tensor, sampler: SamplerConfig, *, seed: int,
               windows_per_batch: int, progress: bool, separate_guidance: bool,
               **options) -> torch.Tensor:
        """Checked tokens ``[B, L, 2]`` -> audio ``[B, 1, n]`` float32 on the CPU."""

    def encode_blocks(self, parts: CodecParts, blocks: Iterable[torch.Tensor],
                      on_progress=None) -> Iterator[np.ndarray]:
        """One signal given as consecutive ``[1, n]`` blocks (any sizes) -> its tokens as
        ``[m, 2]`` arrays, in order, as soon as each is ready (``on_progress(samples)`` after each
        block); the tokens of :meth:`encode` of the blocks joined."""

    def decode_chunks(self, parts: CodecParts, chunks: Iterable[np.ndarray], n_frames: int,
                      n_samples: int | None, sampler: SamplerConfig, *, seed: int,
                      on_progress=None) -> Iterator[np.ndarray]:
        """Token chunks ``[m, 2]`` of one stream of ``n_frames`` positions -> pcm ``[n]`` pieces,
        in order, cut to ``n_samples`` in total; equal to :meth:`decode` of all the tokens."""

    def stream_encoder(self, parts: CodecParts, batch_size: int = 1):
        """``push(pcm [B, n]) -> tokens [B, m, 2]``, ``flush()``, ``reset()``, ``state``."""

    def stream_decoder(self, parts: CodecParts, sampler: SamplerConfig, *, batch_size: int = 1,
                       seed: int = 0, n_samples: int | None = None):
        """``push(tokens [B, m, 2]) -> pcm [B, 1, n]``, ``flush()``, ``reset()``, ``state``."""

    # -- training: the crops a trainer cuts and the decoder windows they hold -------------------
    def crop_samples(self, seconds: float) -> int:
        """Samples of one training crop of about ``seconds``."""

    def windows_per_crop(self, samples: int) -> int:
        """Decoder windows in a crop of ``samples``."""

    def mel_windows(self, log_mel, audio: torch.Tensor) -> torch.Tensor:
        """``[B, n]`` crops -> ``[B * W, 1, frames, bins]``: the log-mel (``log_mel(audio)``) of
        the audio each decoder window covers."""

    def feature_windows(self, features: torch.Tensor, n_windows: int) -> torch.Tensor:
        """``[B, T, 2F]`` decoder features of crops -> ``[B * W, Tw, 2F]``: exactly what
        :meth:`decode` conditions each of the ``n_windows`` windows per crop on."""


def stream_in_blocks(encoder, blocks: Iterable[torch.Tensor], on_progress=None) -> Iterator[np.ndarray]:
    """Feed ``[1, n]`` blocks to a streaming ``encoder``; yield each push's tokens ``[m, 2]`` and
    the flush's (what the streaming regimes' ``encode_blocks`` do)."""
    for piece in blocks:
        yield encoder.push(piece)[0].numpy()
        if on_progress is not None:
            on_progress(piece.shape[-1])
    yield encoder.flush()[0].numpy()
