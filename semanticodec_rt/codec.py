"""``SemantiCodec``: audio <-> tokens, batched, through the windowing of its config.

``encode`` turns 16 kHz audio into ``[B, L, 2]`` int64 tokens (semantic, acoustic); ``decode``
turns tokens back into audio by latent diffusion, VAE and vocoder.  How audio and tokens are cut
into windows -- the published 10.24 s windows, exactly as the reference code, or the real-time
presets' 160 ms units -- is the codec's :attr:`~SemantiCodec.windowing` (:mod:`.windowing`);
this class never asks which one it holds.

Differences from the reference, all deliberate:

* batch size > 1 works (the reference reshapes to 1); all windows of all items can share one
  UNet batch;
* diffusion noise is seeded per (seed, window index) instead of the unseeded global RNG, so
  decoding is reproducible and equal for a window whatever batch or stream it is decoded in.

Build one with :func:`semanticodec_rt.load_model` (shipped default, checkpoint, published
checkpoints, preset) or :meth:`SemantiCodec.random`.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from .audio.files import AudioInputError, waveform_from_array
from .audio.load import load_waveform
from .audio.resample import resample
from .config import SAMPLE_RATE, CodecConfig, SamplerConfig, SamplerError
from .decoder.synthesis.fargan import FARGAN
from .windowing import build_decoder, build_encoder, windowing_for
from .windowing.checks import check_tokens, model_device


class SemantiCodec(nn.Module):
    """The full codec.  Build it with :func:`semanticodec_rt.load_model` or :meth:`random`.

    Args:
        cfg: configuration (sizes, token rate, sampler defaults, windowing).
        encoder: audio features -> tokens (holds the semantic codebook).
        decoder: token features -> waveform windows.
    """

    def __init__(self, cfg: CodecConfig, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.cfg = cfg
        self.encoder = encoder
        self.decoder = decoder
        #: how audio and tokens are cut into windows (the only part that knows the regime)
        self.windowing = windowing_for(cfg)
        #: names the model in bitstreams: the config hash, or the weight hash of a checkpoint
        self.model_sha = cfg.sha()
        #: seconds per stage of the last encode or decode call
        self.last_timings: dict[str, float] = {}

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def random(cls, cfg: CodecConfig, seed: int = 0, device: str | torch.device = "cpu") -> "SemantiCodec":
        """Random weights everywhere (graph checks and timing, not audio quality).

        Layers the reference zero-initialises get small random values too, so every path
        computes something.
        """
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            encoder = build_encoder(cfg)
            encoder.load_semantic_codebook(torch.randn(cfg.semantic_vocab_size, encoder.semantic_quantizer.feature_dim))
            decoder = build_decoder(cfg)
            with torch.no_grad():
                for p in decoder.parameters():
                    if p.dim() > 1 and not p.any():
                        p.normal_(0.0, 0.02)
            if hasattr(decoder, "attach_vocoder"):  # a decoder to vocoder features (the speech route)
                decoder.attach_vocoder(FARGAN.random())
        finally:
            torch.random.set_rng_state(gen_state)
        return cls(cfg, encoder, decoder).to(device).eval()

    # -- properties ------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return model_device(self)

    @property
    def sample_rate(self) -> int:
        return self.cfg.sample_rate

    @property
    def token_rate(self) -> int:
        return self.cfg.token_rate

    # -- encode ----------------------------------------------------------------------------------
    def _waveforms(self, audio, sample_rate: int | None, mono: str) -> torch.Tensor:
        """Any accepted input -> float32 ``[B, N]`` at 16 kHz (validated)."""
        if isinstance(audio, (str, os.PathLike)):
            return load_waveform(audio, mono=mono)[0]
        if not isinstance(audio, torch.Tensor):
            raise AudioInputError(f"encode takes a path or a tensor, got {type(audio).__name__}")
        if sample_rate is None:
            sample_rate = SAMPLE_RATE
        if audio.dim() == 3:
            if audio.shape[1] != 1:
                raise AudioInputError(f"expected [B, 1, N] audio, got {list(audio.shape)}")
            audio = audio[:, 0]
        if audio.dim() == 1:
            audio = audio[None]
        if audio.dim() != 2:
            raise AudioInputError(f"expected [N], [B, N] or [B, 1, N] audio, got {list(audio.shape)}")
        # Rows are batch items here, not channels: validate each as a mono signal.
        wave, _ = waveform_from_array(audio.detach().cpu(), sample_rate, mono=None)
        if sample_rate != SAMPLE_RATE:
            wave = resample(wave, sample_rate, SAMPLE_RATE)
        return wave

    @torch.inference_mode()
    def encode(self, audio, sample_rate: int | None = None, *, mono: str = "first") -> torch.Tensor:
        """Audio -> tokens.

        Args:
            audio: a path (wav/flac/ogg), or float samples ``[N]``, ``[B, N]`` or ``[B, 1, N]``
                (a batch of equal-length mono signals).
            sample_rate: rate of in-memory samples in Hz (default 16000); resampled if needed.
            mono: for files with several channels: ``"first"`` (the reference: channel 0) or
                ``"mean"`` (downmix).
        Returns:
            ``[B, L, 2]`` int64, ``[..., 0]`` semantic ids and ``[..., 1]`` acoustic ids.
            ``L = windowing.frames_for_samples(N)``: the published windowing follows the
            reference rule (``ceil(8 d' / 0.16 / K)``, see ``windowing.official_lengths``).
        """
        if mono not in ("first", "mean"):
            raise ValueError(f'mono must be "first" or "mean", got {mono!r}')
        times = self.encoder.stage_times
        times.clear()
        with times.stage("load+resample"):
            wave = self._waveforms(audio, sample_rate, mono)
        tokens = self.windowing.encode(self, wave.to(self.device))
        self.last_timings = dict(times)
        return tokens.cpu()

    # -- decode ----------------------------------------------------------------------------------
    def sampler(self, steps: int | None = None, cfg_scale: float | None = None,
                eta: float | None = None) -> SamplerConfig:
        """The model's sampler with the caller's overrides, checked against what the windowing
        can run (``steps >= windowing.min_steps``: 1 for diffusion, 0 for the speech route)."""
        s = self.cfg.sampler.resolve(steps, cfg_scale, eta)
        need = self.windowing.min_steps
        if s.steps < need:
            raise SamplerError(f"steps={s.steps}: {self.cfg.name} decodes by diffusion and needs at least {need} "
                               "step (0 steps is the speech route's regression path)")
        return s

    def check_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Validate ``[B, L, 2]`` (or ``[L, 2]``) ids; returns the batched int64 tensor."""
        return check_tokens(self.cfg, tokens)

    @torch.inference_mode()
    def decode(
        self,
        tokens: torch.Tensor,
        steps: int | None = None,
        cfg_scale: float | None = None,
        *,
        eta: float | None = None,
        seed: int = 0,
        n_samples: int | None = None,
        windows_per_batch: int | None = None,
        progress: bool = False,
        separate_guidance: bool = False,
        **windowing_options,
    ) -> torch.Tensor:
        """Tokens -> waveform ``[B, 1, n]`` at 16 kHz, float32 on the CPU.

        Args:
            tokens: ``[B, L, 2]`` from :meth:`encode` (any L >= 1; rt presets: whole units).
            steps, cfg_scale, eta: DDIM settings; default to the config's sampler (reference:
                50 steps, guidance 2.0, eta 1.0).
            seed: noise seed; window w uses noise derived from (seed, w) only.
            n_samples: cut the output to this many samples (the input length, which a
                bitstream header carries).
            windows_per_batch: decoder windows sampled together (memory vs speed); default:
                the windowing's (1 official, 8 rt).
            progress: show a progress bar over windows.
            separate_guidance: guidance as two UNet calls per step (the reference's
                formulation; for benchmarks).
            windowing_options: what only one windowing takes: ``noise=`` (official configs:
                override the noise per window; the golden tests inject the reference's).
        Returns:
            ``[B, 1, n]``: official configs n = ``int(((L/8) * 16 * 0.01 * K) * 16000)`` (the
            reference trim); rt presets n = L / T_u units of 160 ms (or 320 ms); both cut to
            ``n_samples`` when given.
        """
        tokens = self.check_tokens(tokens)
        if windows_per_batch is None:
            windows_per_batch = self.windowing.default_windows_per_batch
        if windows_per_batch < 1:
            raise ValueError(f"windows_per_batch must be >= 1, got {windows_per_batch}")
        self.decoder.stage_times.clear()
        out = self.windowing.decode(
            self, tokens, self.sampler(steps, cfg_scale, eta), seed=seed,
            windows_per_batch=windows_per_batch, progress=progress, separate_guidance=separate_guidance,
            **windowing_options,
        )
        self.last_timings = dict(self.decoder.stage_times)
        if n_samples is not None:
            out = out[..., :n_samples]
        return out.contiguous()

    # -- streaming -------------------------------------------------------------------------------
    def stream_encoder(self, batch_size: int = 1):
        """A streaming encoder: ``push(pcm [B, n]) -> tokens [B, m, 2]``, ``flush()``, ``reset()``.

        Streamed tokens equal :meth:`encode`'s for any block sizes (see the windowing).
        """
        return self.windowing.stream_encoder(self, batch_size=batch_size)

    def stream_decoder(self, batch_size: int = 1, steps: int | None = None, cfg_scale: float | None = None,
                       eta: float | None = None, seed: int = 0, n_samples: int | None = None):
        """A streaming decoder: ``push(tokens [B, m, 2]) -> pcm [B, 1, n]``, ``flush()``, ``reset()``.

        Streamed audio equals :meth:`decode` with the same sampling options.  ``n_samples`` (the
        stream length, if known) stops the output at the input length.
        """
        sampler = self.sampler(steps, cfg_scale, eta)
        return self.windowing.stream_decoder(self, sampler, batch_size=batch_size, seed=seed,
                                             n_samples=n_samples)

    def decoder_feature(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[B, T, 2]`` ids -> ``[B, T, 2F]`` decoder features ([acoustic || semantic])."""
        return self.encoder.tokens_to_feature(tokens.to(self.device))

    @torch.inference_mode()
    def roundtrip(self, audio, sample_rate: int | None = None, **decode_kwargs) -> torch.Tensor:
        """``decode(encode(audio))``."""
        return self.decode(self.encode(audio, sample_rate), **decode_kwargs)

