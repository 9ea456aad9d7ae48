"""The real-time windowing: one short window per 160 ms unit, streamed with a small lookahead.

The grid (:mod:`.unit_grid`): a unit is one 160 ms patch column (two at token rate 25); the ViT
of unit u sees a few past columns, the unit and a lookahead column; the decoder samples one
window per unit (the unit and its past) and crossfades it with the previous one.  Offline and
streamed coding run the same functions, so a stream gives exactly the offline result.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ..audio.mel import HOP as MEL_HOP
from ..config import CodecConfig, SamplerConfig
from . import unit_grid as grid
from .base import CodecParts, stream_in_blocks
from .unit_stream import RTStreamingDecoder, RTStreamingEncoder

#: units per streaming-decoder call in :meth:`UnitWindowing.decode_chunks`: one UNet batch, as
#: the offline decode batches them
DECODE_UNITS = 8


class UnitWindowing:
    """:class:`~.base.Windowing` of the rt presets (``cfg.stream`` set)."""

    name = "rt-units"
    realtime = True
    #: fewest decoder steps it can run (diffusion needs one)
    min_steps = 1
    default_windows_per_batch = DECODE_UNITS

    def __init__(self, cfg: CodecConfig):
        self.cfg = cfg
        self.unit_samples = grid.unit_samples(cfg)
        self.unit_frames = cfg.tokens_per_unit
        self.decoder_window_tokens = grid.decoder_window_tokens(cfg)

    @property
    def algorithmic_latency_ms(self) -> float:
        """A unit must be complete plus the ViT lookahead, plus the 15 ms the last 25 ms fbank
        frame of a column reaches past it, plus the decoder's crossfade hold-back."""
        cfg, st = self.cfg, self.cfg.stream
        frame_tail = (cfg.fbank.frame_length - cfg.fbank.frame_shift) / cfg.sample_rate * 1e3
        column_ms = cfg.column_samples / cfg.sample_rate * 1e3
        return (cfg.unit_columns + st.lookahead_columns) * column_ms + frame_tail + st.crossfade_ms

    def frames_for_samples(self, n_samples: int) -> int:
        return grid.units_for_samples(self.cfg, n_samples) * self.unit_frames

    # -- offline ---------------------------------------------------------------------------------
    def encode(self, parts: CodecParts, wave: torch.Tensor) -> torch.Tensor:
        return grid.encode_units_offline(parts.encoder, self.cfg, wave)

    def decode(self, parts: CodecParts, tokens: torch.Tensor, sampler: SamplerConfig, *, seed: int,
               windows_per_batch: int, progress: bool = False, separate_guidance: bool = False,
               noise=None) -> torch.Tensor:
        if noise is not None:
            raise ValueError("noise injection is only supported for the official configs")
        return grid.decode_units_offline(
            parts, tokens, seed=seed, steps=sampler.steps, eta=sampler.eta, cfg_scale=sampler.cfg_scale,
            windows_per_batch=windows_per_batch, separate_guidance=separate_guidance, progress=progress,
        )

    # -- files: streamed, in blocks --------------------------------------------------------------
    def encode_blocks(self, parts: CodecParts, blocks: Iterable[torch.Tensor],
                      on_progress=None) -> Iterator[np.ndarray]:
        return stream_in_blocks(self.stream_encoder(parts), blocks, on_progress)

    def decode_chunks(self, parts: CodecParts, chunks: Iterable[np.ndarray], n_frames: int,
                      n_samples: int | None, sampler: SamplerConfig, *, seed: int,
                      on_progress=None) -> Iterator[np.ndarray]:
        tu = self.unit_frames
        if n_frames % tu:
            raise ValueError(f"{n_frames} frames is not a whole number of {self.cfg.name} units "
                             f"({tu} frames each)")
        dec = self.stream_decoder(parts, sampler, seed=seed, n_samples=n_samples)
        step = DECODE_UNITS * tu
        pending = np.zeros((0, 2), np.int64)

        def run(ids: np.ndarray) -> np.ndarray:
            pcm = dec.push(torch.from_numpy(ids)[None])[0, 0].numpy()
            if on_progress is not None:
                on_progress(len(ids) // tu)
            return pcm

        for ids in chunks:
            pending = np.concatenate([pending, ids])
            while len(pending) >= step:
                yield run(pending[:step])
                pending = pending[step:]
        if len(pending):
            yield run(pending)
        yield dec.flush()[0, 0].numpy()

    # -- streaming -------------------------------------------------------------------------------
    def stream_encoder(self, parts: CodecParts, batch_size: int = 1):
        return RTStreamingEncoder(parts, self, batch_size=batch_size)

    def stream_decoder(self, parts: CodecParts, sampler: SamplerConfig, *, batch_size: int = 1,
                       seed: int = 0, n_samples: int | None = None):
        return RTStreamingDecoder(parts, self, sampler, batch_size=batch_size, seed=seed, n_samples=n_samples)

    # -- training --------------------------------------------------------------------------------
    def crop_samples(self, seconds: float) -> int:
        us = self.unit_samples
        return max(1, round(seconds * self.cfg.sample_rate / us)) * us

    def windows_per_crop(self, samples: int) -> int:
        return samples // self.unit_samples

    def mel_windows(self, log_mel, audio: torch.Tensor) -> torch.Tensor:
        """Window u covers the audio of units ``u + 1 - decoder_units .. u`` (zeros before the
        crop, a stream start)."""
        ws, us, hop = grid.window_samples(self.cfg), self.unit_samples, MEL_HOP
        units = audio.shape[1] // us
        mel = log_mel(F.pad(audio, (ws - us, 0)))  # [B, frames, bins]
        per_win, hop_units = ws // hop, us // hop
        wins = torch.stack([mel[:, u * hop_units : u * hop_units + per_win] for u in range(units)], 1)
        return wins.reshape(-1, 1, per_win, mel.shape[-1])

    def feature_windows(self, features: torch.Tensor, n_windows: int) -> torch.Tensor:
        return grid.unit_windows(features, self.cfg, n_windows).flatten(0, 1)
