"""Streaming encode/decode for the published 10.24 s windowing (:class:`.official.OfficialWindowing`).

The official model is window-level and non-causal (architecture notes §18): every encoder token
depends on its whole 10.24 s audio window (bidirectional ViT, BiLSTM), every decoded sample on
its whole 10.24 s decoder window of tokens (UNet attention), and adjacent decoder windows are
crossfaded over 0.64 s.  Streaming cannot change that; what it can do is run each window as
soon as the data it depends on has arrived, and give *exactly* the offline result:

* :class:`OfficialStreamingEncoder` -- pcm blocks in, the tokens of every completed 10.24 s
  encoder window out; ``flush`` applies the reference end-of-file padding and token count.
  Equals :meth:`SemantiCodec.encode` (see the class docstring for the one, documented
  float-rounding difference: the global-mean subtraction).
* :class:`OfficialStreamingDecoder` -- token positions in, audio out, one decoder window
  (W tokens, stride W - W/16) as soon as its W tokens are there, overlap-added incrementally
  with the reference fades; ``flush`` decodes the remainder window and applies the reference
  trim.  Equals :meth:`SemantiCodec.decode` with the same ``steps/cfg_scale/eta/seed``.

**Latency.**  ``algorithmic_latency_ms`` is the windowing's (10895 ms): an
encoder window needs 10.24 s of audio plus the 15 ms the last fbank frame reaches past it, and
a decoded sample is final only when its 0.64 s crossfade is resolved.  The official windowing
cannot give less than ~10 s, whatever the compute speed (use an rt preset for low latency).
Later samples wait longer (up to ~20 s: the 9.6 s decoder stride is not aligned with the
10.24 s encoder windows), and compute time comes on top.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..config import SamplerConfig
from ..decoder.conditioning import fill_window
from ..decoder.diffusion.noise import seeded_noise
from ..encoder.fbank import kaldi_fbank, normalize, pad_or_cut
from . import official_lengths as lengths
from .checks import check_pcm, check_stream_tokens, model_device
from .overlap_add import _fade, numpy_linspace, overlap_samples


class StreamFinishedError(ValueError, RuntimeError):
    """``push``/``flush`` after ``flush`` without ``reset()`` (a ValueError and a RuntimeError)."""


def _check_batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    return batch_size


# ---------------------------------------------------------------------------------------------
# Encoder
# ---------------------------------------------------------------------------------------------


@dataclass
class SampleBufferState:
    """Frontend stage: samples not yet consumed by a window.

    ``chunks`` concatenated are the samples ``[start, start + n)`` of the stream (``[B, k]``
    float32 each; kept as a list so that tiny pushes do not re-copy the whole buffer).
    ``start`` is always ``163840 * window_index``; the buffer never holds more than one window
    plus the 240-sample frame tail once a ``push`` has returned.
    """

    chunks: list[torch.Tensor] = field(default_factory=list)
    start: int = 0  # absolute index (16 kHz samples) of the first buffered sample
    n: int = 0  # buffered samples

    def samples(self) -> torch.Tensor:
        """The buffered samples as one ``[B, n]`` tensor (consolidates the chunk list)."""
        if len(self.chunks) > 1:
            self.chunks = [torch.cat(self.chunks, dim=-1)]
        return self.chunks[0]

    def drop(self, k: int) -> None:
        """Forget the first ``k`` buffered samples."""
        buf = self.samples()[:, k:]
        self.chunks = [buf.clone()]  # clone: do not pin the consumed samples in memory
        self.start += k
        self.n -= k


@dataclass
class WindowEncoderState:
    """Window stage: the next 10.24 s encoder window to run (windows are independent)."""

    window_index: int = 0


@dataclass
class TokenEmitterState:
    """Output stage: token positions emitted so far, and whether the stream is finished."""

    emitted: int = 0
    finished: bool = False


@dataclass
class OfficialEncoderState:
    """All state of an :class:`OfficialStreamingEncoder`, one object per stage."""

    buffer: SampleBufferState
    window: WindowEncoderState
    emitter: TokenEmitterState
    n_samples: int = 0  # samples pushed so far


class OfficialStreamingEncoder:
    """Streaming :meth:`SemantiCodec.encode` for the published 10.24 s windowing.

    **Latency: the official windowing cannot give less than ~10 s.**  Tokens come in whole
    10.24 s windows (T_w = 512 / 256 / 128 positions at rates 100 / 50 / 25): window w is
    encoded when samples ``[0, 163840 (w + 1) + 240)`` have been pushed (its 1024 fbank frames
    of 400 samples every 160 reach 240 samples past its end).  The first token therefore leaves
    10.255 s after the stream starts, plus compute time.  ``algorithmic_latency_ms`` reports the
    windowing's end-to-end figure (``OfficialWindowing.algorithmic_latency_ms``, ~10.9 s).

    Semantics (streamed == offline, for any block sizes):

    * window w = samples ``[163840 w, 163840 (w + 1))``; its fbank is computed from exactly
      ``163840 + 240`` samples, normalised, and encoded with ``encoder.encode_window`` -- the
      same per-window computation as ``codec.encode``;
    * ``flush`` with N samples in total pads with zeros to ``n_segments(N) * 163840`` (the
      reference rule: an exact multiple of 163840 gains a whole extra zero segment), encodes
      the remaining 1 or 2 windows (the last window's last 2 fbank rows are the reference's
      zero-pad rows, ``pad_or_cut``), and emits up to ``tokens_after_encode(N)`` positions in
      total;
    * before ``flush`` the emitted count never exceeds ``tokens_after_encode(n_samples)`` (a
      non-decreasing function of N, so no later data can make an emitted token surplus): with
      ``n_samples >= 163840 (w + 1) + 240`` we have ``d' > d >= 10.24 (w + 1)``, so
      ``ceil(target_token_len) > (w + 1) T_w`` and ``n_segments >= w + 2``.  ``push`` checks it.

    **The one difference from ``codec.encode``**: the reference subtracts the global mean of the
    whole (padded) waveform before the fbank.  A stream has no global mean, so the streaming
    fbank uses ``kaldi_fbank(..., subtract_mean=False)``.  Kaldi removes each 400-sample
    frame's own mean right after, which cancels any constant offset, so the two agree exactly in
    real arithmetic and differ only by float32 rounding: about half of the normalised fbank
    values differ, by up to ~1e-4 (low-energy bins, where the log amplifies the rounding).  The
    streaming fbank of a window is otherwise bitwise the offline one without the mean step.  A
    token id can flip only at a near-tie of two codewords; none did in the tests (all ids
    equal, tones + noise with and without a DC offset, rates 100 / 50 / 25).

    Other differences: an empty stream (``flush`` with N = 0) returns ``[B, 0, 2]`` where
    ``codec.encode`` raises on empty audio; pcm must already be 16 kHz float (no resampling, no
    files).

    Build it with ``codec.stream_encoder()`` (or :func:`semanticodec_rt.StreamingEncoder`).

    Args:
        parts: the codec (its ``cfg``, ``encoder`` and ``decoder``).
        windowing: its :class:`~.official.OfficialWindowing`.
        batch_size: B streams advanced in lockstep (every ``push`` carries B equal-length rows).
    """

    def __init__(self, parts, windowing, batch_size: int = 1):
        self.parts = parts
        self.cfg = parts.cfg
        self.windowing = windowing
        self.batch_size = _check_batch_size(batch_size)
        self.window_samples = windowing.unit_samples  # 163840
        # Samples the last frame of a window reaches past its end: 400 - 160 = 240.
        self.frame_tail = self.cfg.fbank.frame_length - self.cfg.fbank.frame_shift
        self.tokens_per_window = windowing.unit_frames
        self.reset()

    # -- public ----------------------------------------------------------------------------------
    @property
    def algorithmic_latency_ms(self) -> float:
        """Input-to-output delay the windowing imposes (~10.9 s; before any compute time)."""
        return self.windowing.algorithmic_latency_ms

    @property
    def n_samples(self) -> int:
        """Samples pushed so far (per batch item)."""
        return self._n_samples

    @property
    def n_tokens(self) -> int:
        """Token positions emitted so far (per batch item)."""
        return self._emitter.emitted

    @property
    def state(self) -> OfficialEncoderState:
        """The per-stage state objects (live objects: read, do not modify)."""
        return OfficialEncoderState(
            buffer=self._buffer, window=self._window, emitter=self._emitter, n_samples=self._n_samples
        )

    def reset(self) -> None:
        """Forget everything; the next ``push`` starts a new stream."""
        self._buffer = SampleBufferState()
        self._window = WindowEncoderState()
        self._emitter = TokenEmitterState()
        self._n_samples = 0

    @torch.inference_mode()
    def push(self, pcm: torch.Tensor) -> torch.Tensor:
        """``[B, n]`` (``[n]`` when B = 1) float samples at 16 kHz, any ``n >= 0``.

        Returns the new tokens ``[B, m, 2]`` int64 (m a multiple of T_w, usually 0).
        Raises ValueError for a wrong shape/dtype, NaN/Inf samples, or a finished stream;
        a rejected block leaves the stream unchanged.
        """
        self._check_open()
        pcm = check_pcm(pcm, self.batch_size)
        if pcm.shape[-1]:
            self._buffer.chunks.append(pcm.clone())  # the caller may reuse its block buffer
            self._buffer.n += pcm.shape[-1]
            self._n_samples += pcm.shape[-1]
        out = []
        need = self.window_samples + self.frame_tail
        while self._buffer.n >= need:
            samples = self._buffer.samples()[:, :need]
            raw = kaldi_fbank(samples, self.cfg.fbank, subtract_mean=False)
            out.append(self._encode_mel(normalize(raw, self.cfg.fbank)))
            self._buffer.drop(self.window_samples)
        tokens = self._emit(out)
        bound = lengths.tokens_after_encode(self._n_samples, self.cfg.token_rate)
        if self._emitter.emitted > bound:  # cannot happen (see the class docstring)
            raise AssertionError(f"emitted {self._emitter.emitted} tokens > bound {bound}")
        return tokens

    @torch.inference_mode()
    def flush(self) -> torch.Tensor:
        """End of stream: the remaining tokens ``[B, m, 2]``; the stream is then finished.

        Total emitted = ``tokens_after_encode(n_samples)``, equal to ``codec.encode``'s count
        (0 for an empty stream, where ``codec.encode`` raises).
        """
        self._check_open()
        self._emitter.finished = True
        n = self._n_samples
        if n == 0:
            return self._emit([])
        total = lengths.tokens_after_encode(n, self.cfg.token_rate)
        n_seg = lengths.n_segments(n)
        w0 = self._window.window_index
        n_left = n_seg - w0  # 1 or 2 windows (the last one always holds the padding)
        buf = self._buffer.samples() if self._buffer.n else torch.zeros(self.batch_size, 0)
        # The reference pads the file to n_seg * 163840 samples; the buffer starts at window w0.
        padded = torch.nn.functional.pad(buf, (0, n_left * self.window_samples - buf.shape[-1]))
        raw = kaldi_fbank(padded, self.cfg.fbank, subtract_mean=False)  # 1024 n_left - 2 frames
        mel = normalize(pad_or_cut(raw, self.cfg.window_frames * n_left), self.cfg.fbank)
        f = self.cfg.window_frames
        out = [self._encode_mel(mel[:, i * f : (i + 1) * f]) for i in range(n_left)]
        self._buffer = SampleBufferState(start=n_seg * self.window_samples)
        return self._emit(out, limit=total)

    # -- internals -------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._emitter.finished:
            raise StreamFinishedError("stream already flushed: call reset() to start a new one")

    def _encode_mel(self, mel: torch.Tensor) -> torch.Tensor:
        tokens = self.parts.encoder.encode_window(mel.to(model_device(self.parts))).tokens
        self._window.window_index += 1
        return tokens.cpu()

    def _emit(self, pieces: list[torch.Tensor], limit: int | None = None) -> torch.Tensor:
        if pieces:
            tokens = torch.cat(pieces, dim=1)
        else:
            tokens = torch.zeros(self.batch_size, 0, 2, dtype=torch.int64)
        if limit is not None:
            tokens = tokens[:, : max(0, limit - self._emitter.emitted)]
        self._emitter.emitted += tokens.shape[1]
        return tokens.contiguous()


# ---------------------------------------------------------------------------------------------
# Decoder
# ---------------------------------------------------------------------------------------------


@dataclass
class TokenBufferState:
    """Input stage: tokens not yet consumed, from the next window's start on.

    ``tokens[:, 0]`` is stream position ``start`` (= ``next_window_start``); ``n_tokens`` counts
    all positions pushed so far.
    """

    tokens: torch.Tensor  # [B, k, 2] int64
    start: int = 0
    n_tokens: int = 0


@dataclass
class WindowSchedulerState:
    """Window stage: index and first token position of the next decoder window."""

    window_index: int = 0
    next_window_start: int = 0


@dataclass
class OverlapAddState:
    """Output stage: overlap-added samples not yet emitted, and the emitted count.

    ``tail`` holds output samples ``[emitted, emitted + tail_len)``; its last 10240 samples are
    the newest window's end, which the next window's crossfade will still change.
    """

    tail: torch.Tensor | None = None  # [B, 1, k] float32
    emitted: int = 0  # samples output so far (per batch item)
    finished: bool = False


@dataclass
class OfficialDecoderState:
    """All state of an :class:`OfficialStreamingDecoder`, one object per stage."""

    tokens: TokenBufferState
    windows: WindowSchedulerState
    overlap_add: OverlapAddState


class OfficialStreamingDecoder:
    """Streaming :meth:`SemantiCodec.decode` for the published 10.24 s windowing.

    **Latency: the official windowing cannot give less than ~10 s.**  Audio comes one decoder
    window at a time: window k (tokens ``[s_k, s_k + W)``, ``s_k = k (W - W/16)``, W = 512 /
    256 / 128 positions = 10.24 s) is sampled once its W tokens are there, and of its 163872
    samples the last 10240 (0.64 s) are held back until the next window's crossfade (or
    ``flush``) resolves them.  The first sample leaves after 10.24 s of tokens, plus compute
    time (one full diffusion sampling per window).  ``algorithmic_latency_ms`` reports the
    windowing's end-to-end figure (``OfficialWindowing.algorithmic_latency_ms``, ~10.9 s).

    Semantics (streamed == offline, for any chunking of the tokens):

    * a window's content does not depend on later tokens: the full window ``tokens[s, s + W)``
      is the same whether it is a middle window or the last one (``s + W == L``);
    * per window: ``encoder.tokens_to_feature``, -1 fill to W, the noise ``codec.decode`` uses for
      (seed, window index), ``decoder.generate`` with batch B -- the same calls as
      ``codec.decode`` (``windows_per_batch=1``);
    * incremental overlap-add with the reference fades (float64 ``numpy_linspace``, bitwise the
      computation of :func:`overlap_add`);
    * the output never passes ``trim_length(n_tokens_so_far)``, a lower bound of the final
      trim, so the trim at ``flush`` only ever cuts samples not yet emitted;
    * ``flush`` samples the remainder window ``tokens[s:]`` (if ``decoder_windows(L)`` has
      one), mixes it, and emits up to ``trim_length(L)``: the concatenated output equals
      ``codec.decode(all tokens, steps, cfg_scale, eta=eta, seed=seed)``.

    Difference: an empty stream (``flush`` with L = 0) returns ``[B, 1, 0]`` where
    ``codec.decode`` raises ValueError (no tokens to decode).

    Build it with ``codec.stream_decoder()`` (or :func:`semanticodec_rt.StreamingDecoder`).

    Args:
        parts: the codec (its ``cfg``, ``encoder`` and ``decoder``).
        windowing: its :class:`~.official.OfficialWindowing`.
        sampler: DDIM settings (the model's defaults with the caller's overrides).
        batch_size: B streams advanced in lockstep.
        seed: noise seed, as ``codec.decode(seed=...)``.
    """

    def __init__(self, parts, windowing, sampler: SamplerConfig, batch_size: int = 1, seed: int = 0):
        self.parts = parts
        self.cfg = parts.cfg
        self.windowing = windowing
        self.batch_size = _check_batch_size(batch_size)
        self.sampler = sampler
        self.steps, self.cfg_scale, self.eta = sampler.steps, sampler.cfg_scale, sampler.eta
        self.seed = int(seed)
        rate = self.cfg.token_rate
        self.window_tokens = windowing.decoder_window_tokens  # W
        self.stride = self.window_tokens - lengths.decoder_window_overlap_tokens(rate)
        self.overlap = overlap_samples()  # 10240
        n_steps = len(parts.decoder.ddim(self.steps, self.eta))  # also validates steps / eta
        self._noise = seeded_noise(parts.decoder.latent_shape, self.seed, self.batch_size, n_steps)
        self._fade_in = numpy_linspace(0.0, 1.0, self.overlap)
        self._fade_out = numpy_linspace(1.0, 0.0, self.overlap)
        self.reset()

    # -- public ----------------------------------------------------------------------------------
    @property
    def algorithmic_latency_ms(self) -> float:
        """Input-to-output delay the windowing imposes (~10.9 s; before any compute time)."""
        return self.windowing.algorithmic_latency_ms

    @property
    def n_tokens(self) -> int:
        """Token positions pushed so far (per batch item)."""
        return self._tokens.n_tokens

    @property
    def n_samples(self) -> int:
        """Samples emitted so far (per batch item)."""
        return self._oa.emitted

    @property
    def state(self) -> OfficialDecoderState:
        """The per-stage state objects (live objects: read, do not modify)."""
        return OfficialDecoderState(tokens=self._tokens, windows=self._sched, overlap_add=self._oa)

    def reset(self) -> None:
        """Forget everything; the next ``push`` starts a new stream."""
        self._tokens = TokenBufferState(tokens=torch.zeros(self.batch_size, 0, 2, dtype=torch.int64))
        self._sched = WindowSchedulerState()
        self._oa = OverlapAddState()

    @torch.inference_mode()
    def push(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[B, m, 2]`` integer ids (``m >= 0``; ``[m, 2]`` when B = 1) -> pcm ``[B, 1, n]``.

        Raises ValueError for a wrong shape/dtype, ids out of range or a finished stream; a
        rejected chunk leaves the stream unchanged.
        """
        self._check_open()
        tokens = check_stream_tokens(self.cfg, tokens, self.batch_size)
        tb = self._tokens
        if tokens.shape[1]:
            tb.tokens = torch.cat([tb.tokens, tokens], dim=1)
            tb.n_tokens += tokens.shape[1]
        w = self.window_tokens
        while tb.tokens.shape[1] >= w:
            self._add_window(self._generate(tb.tokens[:, :w]))
            self._advance()
        return self._emit(lengths.trim_length(tb.n_tokens, self.cfg.token_rate), hold=self.overlap)

    @torch.inference_mode()
    def flush(self) -> torch.Tensor:
        """End of stream: the remaining pcm ``[B, 1, n]``; the stream is then finished.

        All output together equals ``codec.decode(all tokens, ...)`` (``[B, 1, 0]`` in total for
        an empty stream, where ``codec.decode`` raises).
        """
        self._check_open()
        self._oa.finished = True
        tb, sched = self._tokens, self._sched
        n_tok = tb.n_tokens
        windows = lengths.decoder_windows(n_tok, self.cfg.token_rate)
        # Every full window with s + W <= L was sampled by push; at most the remainder is left.
        left = windows[sched.window_index :]
        if len(left) > 1 or (left and left[0][0] != sched.next_window_start):
            raise AssertionError(f"window schedule out of step: {left} at {sched}")
        if left:
            self._add_window(self._generate(tb.tokens))
            self._advance()
        out = self._emit(lengths.trim_length(n_tok, self.cfg.token_rate), hold=0)
        self._oa.tail = None
        tb.tokens = tb.tokens[:, :0]
        return out

    # -- internals -------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._oa.finished:
            raise StreamFinishedError("stream already flushed: call reset() to start a new one")

    def _generate(self, window_tokens: torch.Tensor) -> torch.Tensor:
        """One decoder window ``[B, T <= W, 2]`` -> ``[B, 1, 163872]`` float32 on the CPU.

        The same calls, in the same order and with the same shapes, as ``codec.decode`` with
        ``windows_per_batch=1``.
        """
        parts, device = self.parts, model_device(self.parts)
        x_T, step = self._noise(self._sched.window_index)
        x_T = torch.cat([x_T]).to(device)

        def step_noise(i):
            return torch.cat([step(i)]).to(device)

        feat = parts.encoder.tokens_to_feature(window_tokens.to(device))
        feature = torch.cat([fill_window(feat, self.window_tokens)])
        wave = parts.decoder.generate(
            feature, x_T, step_noise, steps=self.steps, eta=self.eta, cfg_scale=self.cfg_scale
        )
        return wave.float().cpu()

    def _advance(self) -> None:
        """Move the schedule to the next window and drop the tokens only earlier windows used."""
        tb, sched = self._tokens, self._sched
        sched.window_index += 1
        sched.next_window_start += self.stride
        drop = min(self.stride, tb.tokens.shape[1])
        tb.tokens = tb.tokens[:, drop:].clone()
        tb.start += drop

    def _add_window(self, wave: torch.Tensor) -> None:
        """Overlap-add one window into the pending output (bitwise :func:`overlap_add`)."""
        oa, ov = self._oa, self.overlap
        if oa.tail is None:
            oa.tail = wave
            return
        body, end = oa.tail[..., :-ov], oa.tail[..., -ov:]
        mixed = _fade(end, self._fade_out) + _fade(wave[..., :ov], self._fade_in)
        oa.tail = torch.cat([body, mixed, wave[..., ov:]], dim=-1)

    def _emit(self, bound: int, hold: int) -> torch.Tensor:
        """Emit pending samples, keeping ``hold`` back and never passing ``bound`` in total."""
        oa = self._oa
        if oa.tail is None:
            return torch.zeros(self.batch_size, 1, 0)
        k = max(0, min(oa.tail.shape[-1] - hold, bound - oa.emitted))
        out = oa.tail[..., :k].contiguous()
        oa.tail = oa.tail[..., k:].clone()
        oa.emitted += k
        return out


__all__ = [
    "OfficialStreamingEncoder",
    "OfficialStreamingDecoder",
    "OfficialEncoderState",
    "OfficialDecoderState",
    "SampleBufferState",
    "WindowEncoderState",
    "TokenEmitterState",
    "TokenBufferState",
    "WindowSchedulerState",
    "OverlapAddState",
    "StreamFinishedError",
]
