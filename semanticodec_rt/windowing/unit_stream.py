"""Streaming encoder and decoder of the real-time unit grid (:class:`.units.UnitWindowing`).

State is explicit and per stage (see :mod:`.unit_grid` for the time grid):

* :class:`FbankState` -- samples not yet cut into 25 ms frames, and the frames of the
  current, incomplete 160 ms column;
* :class:`ContextState` -- the ring of normalised columns the ViT window needs
  (``context + unit + lookahead`` columns);
* :class:`LSTMState` -- the acoustic LSTM's ``(h, c)`` across units;
* :class:`DecoderState` -- token positions of the incomplete unit (and which are missing), the
  features of the past units a decoder window needs, and the crossfade tail held back from the
  output.

Streamed output equals :meth:`SemantiCodec.encode` / ``decode`` for any block sizes: both run
the functions of :mod:`.unit_grid` and the noise of unit u depends on (seed, u) only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..config import SamplerConfig
from ..decoder.conditioning import NO_TOKEN
from . import unit_grid as rc
from .checks import check_missing, check_pcm, check_stream_tokens, model_device


@dataclass
class FbankState:
    samples: torch.Tensor  # [B, n] from sample 160 * next_frame on
    next_frame: int = 0
    pending: torch.Tensor | None = None  # [B, k < 16, 128] frames of the open column


@dataclass
class ContextState:
    columns: list[torch.Tensor] = field(default_factory=list)  # each [B, 16, 128]
    first_column: int = 0  # stream index of columns[0] (negative: leading silence)


@dataclass
class LSTMState:
    hc: tuple[torch.Tensor, torch.Tensor] | None = None


@dataclass
class DecoderState:
    tokens: torch.Tensor  # [B, k < T_u, 2] positions of the incomplete unit
    missing: torch.Tensor  # [B, k] bool: which of them have no token (see push)
    history: torch.Tensor | None = None  # [B, <= (D-1) T_u, 2F] features of past units
    tail: torch.Tensor | None = None  # [B, 1, xf] held-back crossfade samples
    next_unit: int = 0
    emitted: int = 0  # samples output so far


class RTStreamingEncoder:
    """pcm blocks of any size in, token positions out (whole units, ``T_u`` positions each).

    Build it with ``codec.stream_encoder()`` (or :func:`semanticodec_rt.StreamingEncoder`).
    """

    def __init__(self, parts, windowing, batch_size: int = 1):
        self.parts, self.cfg, self.windowing, self.batch_size = parts, parts.cfg, windowing, batch_size
        self.reset()

    @property
    def algorithmic_latency_ms(self) -> float:
        return self.windowing.algorithmic_latency_ms

    def reset(self) -> None:
        b, cfg = self.batch_size, self.cfg
        self.fbank = FbankState(samples=torch.zeros(b, 0))
        ctx = cfg.stream.context_columns
        sil = torch.full((b, cfg.vit.patch, cfg.fbank.num_mel_bins), rc.silence_row(cfg))
        self.context = ContextState(columns=[sil] * ctx, first_column=-ctx)
        self.lstm = LSTMState()
        self.next_unit = 0
        self.n_samples = 0
        self.n_tokens = 0
        self.finished = False

    @property
    def state(self) -> dict:
        return {"fbank": self.fbank, "context": self.context, "lstm": self.lstm, "next_unit": self.next_unit}

    @torch.inference_mode()
    def push(self, pcm: torch.Tensor) -> torch.Tensor:
        """``[B, n]`` (or ``[n]``) float 16 kHz samples -> new tokens ``[B, m, 2]`` int64."""
        if self.finished:
            raise RuntimeError("stream already flushed: call reset() to start a new one")
        pcm = check_pcm(pcm, self.batch_size)
        self.n_samples += pcm.shape[-1]
        self._add_samples(pcm)
        return self._encode_ready(last_unit=None)

    @torch.inference_mode()
    def flush(self) -> torch.Tensor:
        """End of stream: pad with silence, emit the remaining units."""
        if self.finished:
            raise RuntimeError("stream already flushed: call reset() to start a new one")
        cfg = self.cfg
        units = rc.units_for_samples(cfg, self.n_samples)
        cols = units * cfg.unit_columns
        # Zeros up to the end of the last column's last frame, exactly as the offline path pads.
        need = cols * cfg.column_samples + rc.tail_samples(cfg) - cfg.fbank.frame_shift * self.fbank.next_frame
        have = self.fbank.samples.shape[-1]
        if need > have:
            self._add_samples(torch.zeros(self.batch_size, need - have))
        sil = torch.full_like(self.context.columns[0], rc.silence_row(cfg))
        self.context.columns += [sil] * cfg.stream.lookahead_columns  # silence past the end
        out = self._encode_ready(last_unit=units - 1)
        self.finished = True
        return out

    # -- internals -------------------------------------------------------------------------------
    def _add_samples(self, pcm: torch.Tensor) -> None:
        cfg, st = self.cfg, self.fbank
        buf = torch.cat([st.samples, pcm.to(torch.float32)], dim=-1)
        hop, flen = cfg.fbank.frame_shift, cfg.fbank.frame_length
        n_frames = 0 if buf.shape[-1] < flen else 1 + (buf.shape[-1] - flen) // hop
        if n_frames:
            frames = rc.frames_from_samples(cfg, buf[:, : (n_frames - 1) * hop + flen])
            st.pending = frames if st.pending is None else torch.cat([st.pending, frames], dim=1)
            buf = buf[:, n_frames * hop :]
            st.next_frame += n_frames
        st.samples = buf
        per_col = cfg.vit.patch
        while st.pending is not None and st.pending.shape[1] >= per_col:
            self.context.columns.append(st.pending[:, :per_col])
            st.pending = st.pending[:, per_col:]

    def _encode_ready(self, last_unit: int | None) -> torch.Tensor:
        cfg, ctx = self.cfg, self.context
        st = cfg.stream
        w_cols = st.context_columns + cfg.unit_columns + st.lookahead_columns
        windows, units = [], []
        while last_unit is None or self.next_unit <= last_unit:
            u = self.next_unit
            start = u * cfg.unit_columns - st.context_columns - ctx.first_column
            if start + w_cols > len(ctx.columns):
                break
            windows.append(torch.stack(ctx.columns[start : start + w_cols], dim=1))
            units.append(u)
            self.next_unit += 1
        if not windows:
            return torch.zeros(self.batch_size, 0, 2, dtype=torch.int64)
        # Keep only the columns a later window can still need.
        drop = self.next_unit * cfg.unit_columns - st.context_columns - ctx.first_column
        if drop > 0:
            del ctx.columns[:drop]
            ctx.first_column += drop
        b = self.batch_size
        flat = torch.stack(windows, dim=1).reshape(b * len(windows), w_cols, cfg.vit.patch, -1)
        enc = self.parts.encoder
        rep = rc.semantic_features(enc, cfg, flat.to(model_device(self.parts))).reshape(b, len(windows) * cfg.tokens_per_unit, -1)
        tokens, self.lstm.hc = rc.acoustic_step(enc, rep, self.lstm.hc)
        self.n_tokens += tokens.shape[1]
        return tokens.cpu()


class RTStreamingDecoder:
    """Token positions in (any count), audio out: one decoder window per completed unit.

    Build it with ``codec.stream_decoder()`` (or :func:`semanticodec_rt.StreamingDecoder`).

    Args:
        parts: the codec (its ``cfg``, ``encoder`` and ``decoder``).
        windowing: its :class:`~.units.UnitWindowing`.
        sampler: DDIM settings (the model's defaults with the caller's overrides).
        seed: noise seed; unit u draws from (seed, u) only.
        n_samples: the stream length when known (e.g. from a bitstream header): never emit past it.
    """

    def __init__(self, parts, windowing, sampler: SamplerConfig, batch_size: int = 1, seed: int = 0,
                 n_samples: int | None = None):
        self.parts, self.cfg, self.windowing = parts, parts.cfg, windowing
        self.batch_size, self.seed = batch_size, int(seed)
        self.n_samples = n_samples
        self.steps, self.cfg_scale, self.eta = sampler.steps, sampler.cfg_scale, sampler.eta
        self.reset()

    @property
    def algorithmic_latency_ms(self) -> float:
        return self.windowing.algorithmic_latency_ms

    def reset(self) -> None:
        b = self.batch_size
        self.dec = DecoderState(tokens=torch.zeros(b, 0, 2, dtype=torch.int64),
                                missing=torch.zeros(b, 0, dtype=torch.bool))
        self.finished = False

    @property
    def state(self) -> DecoderState:
        return self.dec

    @torch.inference_mode()
    def push(self, tokens: torch.Tensor, missing: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, m, 2]`` ids -> new audio ``[B, 1, n]`` float32 (16 kHz).

        ``missing`` (optional ``[B, m]`` bool) marks positions that have no token, e.g. lost on a
        network link: their decoder features become :data:`~semanticodec_rt.decoder.conditioning.NO_TOKEN`
        (-1), the value the windows before the stream start are filled with, so the model reads
        them as "no token" rather than as some id.  Their ids are ignored (but must be in range).
        """
        if self.finished:
            raise RuntimeError("stream already flushed: call reset() to start a new one")
        tokens = check_stream_tokens(self.cfg, tokens, self.batch_size)
        missing = check_missing(missing, tokens.shape[:2])
        st, tu = self.dec, self.cfg.tokens_per_unit
        buf = torch.cat([st.tokens, tokens], dim=1)
        mask = torch.cat([st.missing, missing], dim=1)
        n_units = buf.shape[1] // tu
        st.tokens, st.missing = buf[:, n_units * tu :], mask[:, n_units * tu :]
        if n_units == 0:
            return torch.zeros(self.batch_size, 1, 0)
        feats = self.parts.encoder.tokens_to_feature(buf[:, : n_units * tu].to(model_device(self.parts)))
        mask = mask[:, : n_units * tu]
        if mask.any():
            feats = feats.masked_fill(mask[..., None].to(feats.device), NO_TOKEN)
        return self._decode_units(feats, n_units)

    @torch.inference_mode()
    def flush(self, n_samples: int | None = None) -> torch.Tensor:
        """End of stream: the held-back tail.

        Without a known length the output is whole units (up to 160 ms, 320 ms at rate 25, of
        padding past the input); ``n_samples`` here or at construction cuts the total to it.
        """
        if self.finished:
            raise RuntimeError("stream already flushed: call reset() to start a new one")
        st = self.dec
        if st.tokens.shape[1]:
            raise ValueError(
                f"stream ends inside a unit: {st.tokens.shape[1]} of {self.cfg.tokens_per_unit} positions"
            )
        self.finished = True
        out = st.tail if st.tail is not None else torch.zeros(self.batch_size, 1, 0)
        st.tail = None
        if n_samples is not None:
            self.n_samples = n_samples
        return self._limit(out)

    def _limit(self, pcm: torch.Tensor) -> torch.Tensor:
        """Cut ``pcm`` so the total output never passes ``n_samples``; count what is emitted."""
        if self.n_samples is not None:
            pcm = pcm[..., : max(0, self.n_samples - self.dec.emitted)]
        self.dec.emitted += pcm.shape[-1]
        return pcm

    def _decode_units(self, feats: torch.Tensor, n_units: int) -> torch.Tensor:
        cfg, st = self.cfg, self.dec
        tu = cfg.tokens_per_unit
        keep = (rc.decoder_units(cfg) - 1) * tu
        hist = feats.new_zeros(feats.shape[0], 0, feats.shape[2]) if st.history is None else st.history
        allf = torch.cat([hist, feats], dim=1)
        units = list(range(st.next_unit, st.next_unit + n_units))
        out, st.tail = rc.decode_unit_group(
            self.parts, allf, hist.shape[1], units, st.tail,
            seed=self.seed, steps=self.steps, eta=self.eta, cfg_scale=self.cfg_scale,
        )
        st.history = allf[:, allf.shape[1] - keep :] if keep else None
        st.next_unit += n_units
        return self._limit(torch.cat(out, dim=-1))

