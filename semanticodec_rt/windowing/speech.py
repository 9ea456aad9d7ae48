"""The speech route's windowing: one token position per 40 ms, decoded to vocoder features.

Time grid (``cfg.speech`` set): position u owns samples ``[640 u, 640 u + 640)`` and fbank
frames ``4u .. 4u + 3``, whose last one reads 240 samples (15 ms) past it; the encoder runs
position by position with a carried state (:class:`~..encoder.speech_encoder.EncoderState`); the
decoder emits the audio of position u once position ``u + lookahead`` has arrived, and at the
end of a stream reads the last positions with silent features standing in for those that never
come.  Offline coding runs the very same per-position steps as a stream, so a stream gives
exactly the offline tokens and audio whatever its block sizes.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np
import torch

from ..config import CodecConfig, SamplerConfig
from ..encoder.speech_encoder import EncoderState
from .base import CodecParts, stream_in_blocks
from .checks import check_missing, check_pcm, check_stream_tokens, model_device

#: samples the last fbank frame of a position reads past it
TAIL = 240


class SpeechWindowing:
    """:class:`~.base.Windowing` of the speech route."""

    name = "speech-units"
    realtime = True
    #: fewest decoder steps it can run (the regression path alone)
    min_steps = 0
    default_windows_per_batch = 1

    def __init__(self, cfg: CodecConfig):
        self.cfg = cfg
        sp = cfg.speech
        self.unit_samples = sp.unit_frames * cfg.fbank.frame_shift  # 640
        self.unit_frames = 1
        self.decoder_window_tokens = 1 + sp.lookahead_units
        self.history = sp.xcorr_max_lag

    @property
    def algorithmic_latency_ms(self) -> float:
        """The position itself (40 ms), the 15 ms its last frame reads past it, and the
        decoder's lookahead (40 ms per position)."""
        sp, sr = self.cfg.speech, self.cfg.sample_rate
        return (self.unit_samples * (1 + sp.lookahead_units) + TAIL) / sr * 1e3

    def frames_for_samples(self, n_samples: int) -> int:
        return -(-n_samples // self.unit_samples)

    # -- the per-position steps ------------------------------------------------------------------
    def encode_position(self, encoder, chunk: torch.Tensor, history: torch.Tensor, state: EncoderState):
        """``chunk`` ``[B, 640 + 240]`` (the position and its tail), ``history`` ``[B, 256]`` ->
        ``(tokens [B, 2], state)``."""
        return encoder.step(encoder.frames(chunk, history), state)

    def decode_position(self, parts: CodecParts, feats: torch.Tensor, state, sampler: SamplerConfig,
                        seed: int) -> torch.Tensor:
        """One position's token features ``[B, D]`` -> pcm ``[B, n]`` (0 or 640 samples)."""
        return parts.decoder.step(feats, state, steps=sampler.steps, seed=seed)

    def finish_decode(self, parts: CodecParts, state, sampler: SamplerConfig, seed: int) -> torch.Tensor:
        return parts.decoder.finish(state, steps=sampler.steps, seed=seed)

    # -- offline ---------------------------------------------------------------------------------
    def encode(self, parts: CodecParts, wave: torch.Tensor) -> torch.Tensor:
        enc = SpeechStreamEncoder(parts, self, batch_size=wave.shape[0])
        return torch.cat([enc.push(wave), enc.flush()], 1)

    def decode(self, parts: CodecParts, tokens: torch.Tensor, sampler: SamplerConfig, *, seed: int,
               windows_per_batch: int, progress: bool = False, separate_guidance: bool = False,
               noise=None) -> torch.Tensor:
        if noise is not None:
            raise ValueError("noise injection is only supported for the official configs")
        dec = SpeechStreamDecoder(parts, self, sampler, batch_size=tokens.shape[0], seed=seed)
        return torch.cat([dec.push(tokens.cpu()), dec.flush()], -1)

    # -- files: streamed, in blocks --------------------------------------------------------------
    def encode_blocks(self, parts: CodecParts, blocks: Iterable[torch.Tensor],
                      on_progress=None) -> Iterator[np.ndarray]:
        return stream_in_blocks(self.stream_encoder(parts), blocks, on_progress)

    def decode_chunks(self, parts: CodecParts, chunks: Iterable[np.ndarray], n_frames: int,
                      n_samples: int | None, sampler: SamplerConfig, *, seed: int,
                      on_progress=None) -> Iterator[np.ndarray]:
        dec = self.stream_decoder(parts, sampler, seed=seed, n_samples=n_samples)
        for ids in chunks:
            if len(ids):
                yield dec.push(torch.from_numpy(np.array(ids, dtype=np.int64))[None])[0, 0].numpy()
                if on_progress is not None:
                    on_progress(len(ids))
        yield dec.flush()[0, 0].numpy()

    # -- streaming -------------------------------------------------------------------------------
    def stream_encoder(self, parts: CodecParts, batch_size: int = 1):
        return SpeechStreamEncoder(parts, self, batch_size=batch_size)

    def stream_decoder(self, parts: CodecParts, sampler: SamplerConfig, *, batch_size: int = 1,
                       seed: int = 0, n_samples: int | None = None):
        return SpeechStreamDecoder(parts, self, sampler, batch_size=batch_size, seed=seed, n_samples=n_samples)

    # -- training (the latent-diffusion trainers' crops do not apply) ---------------------------
    def crop_samples(self, seconds: float) -> int:
        return max(1, round(seconds * self.cfg.sample_rate / self.unit_samples)) * self.unit_samples

    def windows_per_crop(self, samples: int) -> int:
        return samples // self.unit_samples

    def mel_windows(self, log_mel, audio: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("the speech route has no mel VAE: train it with `train speech`")

    def feature_windows(self, features: torch.Tensor, n_windows: int) -> torch.Tensor:
        raise NotImplementedError("the speech route has no latent diffusion: train it with `train speech`")


class SpeechStreamEncoder:
    """``push(pcm [B, n]) -> tokens [B, m, 2]``; ``flush()`` ends the stream (zero padding)."""

    def __init__(self, parts: CodecParts, windowing: SpeechWindowing, batch_size: int = 1):
        self.parts, self.windowing, self.batch_size = parts, windowing, batch_size
        self.reset()

    @property
    def algorithmic_latency_ms(self) -> float:
        return self.windowing.algorithmic_latency_ms

    def reset(self) -> None:
        b = self.batch_size
        self.pending = torch.zeros(b, 0)  # samples from the next position's start on
        self.history = torch.zeros(b, self.windowing.history)
        self.enc_state = EncoderState()
        self.n_samples = 0
        self.n_tokens = 0
        self.finished = False

    @property
    def state(self) -> dict:
        return {"n_samples": self.n_samples, "n_tokens": self.n_tokens, "pending": self.pending.shape[1],
                "finished": self.finished}

    def push(self, pcm: torch.Tensor) -> torch.Tensor:
        if self.finished:
            raise RuntimeError("stream already flushed (call reset)")
        pcm = check_pcm(pcm, self.batch_size).float().cpu()
        self.pending = torch.cat([self.pending, pcm], 1)
        self.n_samples += pcm.shape[1]
        return self._encode(final=False)

    def flush(self) -> torch.Tensor:
        if self.finished:
            raise RuntimeError("stream already flushed (call reset)")
        out = self._encode(final=True)
        self.finished = True
        return out

    def _encode(self, final: bool) -> torch.Tensor:
        w = self.windowing
        us, need = w.unit_samples, w.unit_samples + TAIL
        total = w.frames_for_samples(self.n_samples) if final else None
        out = []
        while True:
            if final:
                if self.n_tokens >= total:
                    break
                if self.pending.shape[1] < need:
                    self.pending = torch.nn.functional.pad(self.pending, (0, need - self.pending.shape[1]))
            elif self.pending.shape[1] < need:
                break
            chunk = self.pending[:, :need]
            dev = model_device(self.parts)
            tok, self.enc_state = w.encode_position(self.parts.encoder, chunk.to(dev), self.history.to(dev),
                                                    self.enc_state)
            out.append(tok.cpu())
            self.history = torch.cat([self.history, self.pending[:, :us]], 1)[:, -w.history:]
            self.pending = self.pending[:, us:]
            self.n_tokens += 1
        if not out:
            return torch.zeros(self.batch_size, 0, 2, dtype=torch.int64)
        return torch.stack(out, 1)


class SpeechStreamDecoder:
    """``push(tokens [B, m, 2]) -> pcm [B, 1, n]``; ``flush()`` emits the held-back positions."""

    def __init__(self, parts: CodecParts, windowing: SpeechWindowing, sampler: SamplerConfig,
                 batch_size: int = 1, seed: int = 0, n_samples: int | None = None):
        self.parts, self.windowing, self.sampler = parts, windowing, sampler
        self.batch_size, self.seed, self.n_samples = batch_size, int(seed), n_samples
        self.reset()

    @property
    def algorithmic_latency_ms(self) -> float:
        return self.windowing.algorithmic_latency_ms

    def reset(self) -> None:
        self.dec_state = self.parts.decoder.new_state(self.batch_size)
        self.last_feats = None  # the last position's token features (what a missing one repeats)
        self.emitted = 0
        self.finished = False

    @property
    def state(self) -> dict:
        return {"position": self.dec_state.position, "emitted": self.emitted, "finished": self.finished}

    def push(self, tokens: torch.Tensor, missing: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, m, 2]`` ids -> new audio ``[B, 1, n]``.  ``missing`` (optional ``[B, m]`` bool)
        marks positions lost on the way (their ids are ignored): they repeat the token features
        of the position before them (silence at a stream start), the simplest concealment that
        keeps the voice going through a short gap."""
        if self.finished:
            raise RuntimeError("stream already flushed (call reset)")
        if tokens.dim() == 2:
            tokens = tokens[None]
        tokens = check_stream_tokens(self.windowing.cfg, tokens, self.batch_size)
        missing = check_missing(missing, tokens.shape[:2])
        dev = model_device(self.parts)
        feats = self.parts.encoder.tokens_to_feature(tokens.to(dev))
        pcm = []
        for i in range(tokens.shape[1]):
            f = feats[:, i]
            if bool(missing[:, i].any()):
                held = self.last_feats if self.last_feats is not None else torch.zeros_like(f)
                f = torch.where(missing[:, i, None].to(dev), held, f)
            self.last_feats = f
            pcm.append(self.windowing.decode_position(self.parts, f, self.dec_state, self.sampler, self.seed))
        return self._limit(torch.cat(pcm, -1) if pcm else torch.zeros(self.batch_size, 0))

    def flush(self, n_samples: int | None = None) -> torch.Tensor:
        if self.finished:
            raise RuntimeError("stream already flushed (call reset)")
        if n_samples is not None:
            self.n_samples = n_samples
        pcm = self.windowing.finish_decode(self.parts, self.dec_state, self.sampler, self.seed)
        self.finished = True
        return self._limit(pcm)

    def _limit(self, pcm: torch.Tensor) -> torch.Tensor:
        pcm = pcm.float().cpu()
        if self.n_samples is not None:
            pcm = pcm[:, : max(0, self.n_samples - self.emitted)]
        self.emitted += pcm.shape[1]
        return pcm[:, None]

