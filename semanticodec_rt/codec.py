"""``SemantiCodec``: audio <-> tokens with the published model's semantics, batched.

``encode`` turns 16 kHz audio into ``[B, L, 2]`` int64 tokens (semantic, acoustic) exactly as the
reference does (same padding, 10.24 s encoder windows, same token count rule).  ``decode`` turns
tokens back into audio: decoder windows of W tokens overlapping by 0.64 s, one DDIM sampling
per window (classifier-free guidance as one batch), VAE + HiFi-GAN, overlap-add and trim.

Differences from the reference, all deliberate:

* batch size > 1 works (the reference reshapes to 1); all windows of all items can share one
  UNet batch;
* diffusion noise is seeded per (seed, window index) instead of the unseeded global RNG, so
  decoding is reproducible and equal for a window whatever batch or stream it is decoded in.
"""

from __future__ import annotations

import os
from typing import Callable

import torch
from torch import nn

from .decoder.conditioning import fill_window
from .config import SAMPLE_RATE, CodecConfig, official_config
from .decoder.latent_diffusion import LatentDiffusionDecoder
from .decoder.diffusion.noise import window_noise
from .encoder.codec_encoder import SemantiCodecEncoder
from .windowing import official_lengths as lengths
from .audio.files import AudioInputError, waveform_from_array
from .encoder.fbank import extract_fbank
from .audio.load import load_waveform
from .audio.resample import resample
from .windowing.overlap_add import overlap_add, trim_waveform
from .windowing import units as rt_compute

# window index -> (x_T [B, C, T, F], step i -> noise [B, C, T, F])
NoiseSource = Callable[[int], tuple[torch.Tensor, Callable[[int], torch.Tensor]]]


class SemantiCodec(nn.Module):
    """The full codec.  Build it with :meth:`from_official` or :meth:`random`.

    Args:
        cfg: configuration (sizes, token rate, sampler defaults).
        encoder: audio features -> tokens (holds the semantic codebook).
        decoder: token features -> waveform windows.
    """

    def __init__(self, cfg: CodecConfig, encoder: SemantiCodecEncoder, decoder: LatentDiffusionDecoder):
        super().__init__()
        self.cfg = cfg
        self.encoder = encoder
        self.decoder = decoder
        #: names the model in bitstreams: the config hash, or the weight hash of a checkpoint
        self.model_sha = cfg.sha()
        #: seconds per stage of the last encode or decode call
        self.last_timings: dict[str, float] = {}

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_official(
        cls,
        checkpoint_dir: str | os.PathLike | None = None,
        token_rate: int = 100,
        semantic_vocab_size: int = 32768,
        *,
        config: CodecConfig | None = None,
        device: str | torch.device = "cpu",
        download: bool = False,
    ) -> "SemantiCodec":
        """Load the published checkpoints from the reference folder layout.

        Args:
            checkpoint_dir: folder holding ``semanticodec_tokenrate_{R}/{encoder,decoder}.ckpt``
                and ``codebook_idx/...``; ``None`` with ``download=True`` fetches them through
                ``huggingface_hub`` (optional, needs the network).
            token_rate, semantic_vocab_size: which published model.
            config: override the architecture (tests use reduced widths); its token rate and
                vocab then win.
        Raises:
            CheckpointMismatchError: a key is missing, unexpected or mis-shaped (names them).
        """
        from .weights import official

        cfg = config or official_config(token_rate, semantic_vocab_size)
        if checkpoint_dir is None:
            if not download:
                raise ValueError("give checkpoint_dir, or download=True to fetch from the hub")
            checkpoint_dir = official.download_official(cfg)
        enc_path, dec_path, cb_path = official.official_paths(checkpoint_dir, cfg)
        codebook = official.read_codebook(cb_path, cfg.feature_dim)
        cfg = official.config_for_codebook(cfg, codebook)
        encoder = official.load_official_encoder(enc_path, cfg, codebook)
        decoder = official.load_official_decoder(dec_path, cfg)
        return cls(cfg, encoder, decoder).to(device).eval()

    @classmethod
    def random(cls, cfg: CodecConfig, seed: int = 0, device: str | torch.device = "cpu") -> "SemantiCodec":
        """Random weights everywhere (graph checks and timing, not audio quality).

        Layers the reference zero-initialises get small random values too, so every path
        computes something.
        """
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            encoder = SemantiCodecEncoder(cfg, with_mae_decoder=False)
            encoder.load_semantic_codebook(torch.randn(cfg.semantic_vocab_size, cfg.feature_dim))
            decoder = LatentDiffusionDecoder(cfg, with_vae_encoder=False)
            with torch.no_grad():
                for p in decoder.parameters():
                    if p.dim() > 1 and not p.any():
                        p.normal_(0.0, 0.02)
        finally:
            torch.random.set_rng_state(gen_state)
        return cls(cfg, encoder, decoder).to(device).eval()

    # -- properties ------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.decoder.scale_factor.device

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
            ``L`` follows the reference rule (``ceil(8 d' / 0.16 / K)``, see ``frontend.lengths``).
        """
        if mono not in ("first", "mean"):
            raise ValueError(f'mono must be "first" or "mean", got {mono!r}')
        times = self.encoder.stage_times
        times.clear()
        with times.stage("load+resample"):
            wave = self._waveforms(audio, sample_rate, mono)
        n = wave.shape[-1]
        if self.cfg.stream is not None:  # streaming-native preset: its own grid, no 10.24 s padding
            tokens = rt_compute.encode_units_offline(self.encoder, self.cfg, wave.to(self.device))
            self.last_timings = dict(times)
            return tokens.cpu()
        plan = lengths.plan_lengths(n, self.token_rate)
        with times.stage("fbank"):
            wave = torch.nn.functional.pad(wave, (0, plan.padded_samples - n))
            mel = extract_fbank(wave, plan.mel_target_length, self.cfg.fbank, sample_rate=SAMPLE_RATE)
        tokens = self.encoder(mel.to(self.device))
        self.last_timings = dict(times)
        return tokens[:, : plan.tokens_after_encode].cpu()

    # -- decode ----------------------------------------------------------------------------------
    def check_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Validate ``[B, L, 2]`` (or ``[L, 2]``) ids; returns the batched int64 tensor."""
        if not isinstance(tokens, torch.Tensor):
            raise ValueError(f"tokens must be a tensor, got {type(tokens).__name__}")
        if tokens.dim() == 2:
            tokens = tokens[None]
        if tokens.dim() != 3 or tokens.shape[-1] != 2:
            raise ValueError(f"tokens must be [B, L, 2], got {list(tokens.shape)}")
        if tokens.is_floating_point() or tokens.dtype == torch.bool:
            raise ValueError(f"tokens must be integers, got {tokens.dtype}")
        if tokens.shape[1] == 0:
            raise ValueError("no tokens to decode (L = 0)")
        tokens = tokens.long()
        for i, (name, size) in enumerate(
            (("semantic", self.cfg.semantic_vocab_size), ("acoustic", self.cfg.acoustic.codebook_size))
        ):
            ids = tokens[..., i]
            lo, hi = int(ids.min()), int(ids.max())
            if lo < 0 or hi >= size:
                raise ValueError(f"{name} ids must be in [0, {size}), got range [{lo}, {hi}]")
        return tokens

    @torch.inference_mode()
    def decode(
        self,
        tokens: torch.Tensor,
        steps: int | None = None,
        cfg_scale: float | None = None,
        *,
        eta: float | None = None,
        seed: int = 0,
        noise: NoiseSource | None = None,
        windows_per_batch: int = 1,
        progress: bool = False,
        n_samples: int | None = None,
        separate_guidance: bool = False,
    ) -> torch.Tensor:
        """Tokens -> waveform ``[B, 1, n]`` at 16 kHz, float32 on the CPU.

        Args:
            tokens: ``[B, L, 2]`` from :meth:`encode` (any L >= 1).
            steps, cfg_scale, eta: DDIM settings; default to the config's sampler (reference:
                50 steps, guidance 2.0, eta 1.0).
            seed: noise seed; window w uses noise derived from (seed, w) only.
            noise: override the noise per window (official configs; tests inject the
                reference's noise).
            windows_per_batch: decoder windows sampled together (memory vs speed).
            progress: show a progress bar over windows.
            n_samples: cut the output to this many samples (the input length, which a
                bitstream header carries).
            separate_guidance: guidance as two UNet calls per step (the reference's
                formulation; for benchmarks).
        Returns:
            ``[B, 1, n]``: official configs n = ``int(((L/8) * 16 * 0.01 * K) * 16000)`` (the
            reference trim); rt presets n = L / T_u units of 160 ms (or 320 ms); both cut to
            ``n_samples`` when given.
        """
        tokens = self.check_tokens(tokens)
        s = self.cfg.sampler
        steps = s.steps if steps is None else int(steps)
        cfg_scale = s.cfg_scale if cfg_scale is None else float(cfg_scale)
        eta = s.eta if eta is None else float(eta)
        if windows_per_batch < 1:
            raise ValueError(f"windows_per_batch must be >= 1, got {windows_per_batch}")
        self.decoder.stage_times.clear()
        if self.cfg.stream is not None:
            if noise is not None:
                raise ValueError("noise injection is only supported for the official configs")
            out = rt_compute.decode_units_offline(
                self, tokens, seed=seed, steps=steps, eta=eta, cfg_scale=cfg_scale,
                windows_per_batch=max(windows_per_batch, 8), separate_guidance=separate_guidance,
            )
        else:
            out = self._decode_official(
                tokens, steps, eta, cfg_scale, seed, noise, windows_per_batch, progress, separate_guidance
            )
        self.last_timings = dict(self.decoder.stage_times)
        if n_samples is not None:
            out = out[..., :n_samples]
        return out.contiguous()

    def _decode_official(self, tokens, steps, eta, cfg_scale, seed, noise, windows_per_batch, progress,
                         separate_guidance=False):
        """The reference windowing: 10.24 s windows at a 9.6 s stride, overlap-add, trim."""
        b, n_tok, _ = tokens.shape
        windows = lengths.decoder_windows(n_tok, self.token_rate)
        n_steps = len(self.decoder.ddim(steps, eta))
        if noise is None:
            noise = self._seeded_noise(seed, b, n_steps)
        outputs: list[torch.Tensor] = []
        groups = [windows[i : i + windows_per_batch] for i in range(0, len(windows), windows_per_batch)]
        bar = _progress(len(windows), progress)
        first = 0
        for group in groups:
            idx = range(first, first + len(group))
            feats = [self.decoder_feature(tokens[:, start : start + length]) for start, length in group]
            noises = [noise(w) for w in idx]
            x_T = torch.cat([x for x, _ in noises]).to(self.device)

            def step_noise(i, noises=noises):
                return torch.cat([f(i) for _, f in noises]).to(self.device)

            feature = torch.cat([fill_window(f, self.cfg.tokens_per_window) for f in feats])
            wave = self.decoder.generate(
                feature, x_T, step_noise, steps=steps, eta=eta, cfg_scale=cfg_scale,
                separate_guidance=separate_guidance,
            )
            outputs.extend(wave.float().cpu().split(b))
            first += len(group)
            bar.update(len(group))
        bar.close()
        with self.decoder.stage_times.stage("overlap-add"):
            return trim_waveform(overlap_add(outputs), n_tok, self.token_rate)

    def decoder_feature(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[B, T, 2]`` ids -> ``[B, T, 2F]`` decoder features ([acoustic || semantic])."""
        return self.encoder.tokens_to_feature(tokens.to(self.device))

    def _seeded_noise(self, seed: int, batch: int, n_steps: int) -> NoiseSource:
        shape = (1, *self.decoder.latent_shape)

        def source(w: int):
            z = window_noise(seed, w, shape, n_steps).expand(-1, batch, *shape[1:])
            return z[0], lambda i: z[1 + i]

        return source

    @torch.inference_mode()
    def roundtrip(self, audio, sample_rate: int | None = None, **decode_kwargs) -> torch.Tensor:
        """``decode(encode(audio))``."""
        return self.decode(self.encode(audio, sample_rate), **decode_kwargs)


def _progress(total: int, enabled: bool):
    """A tqdm bar when enabled and available, else a no-op with the same methods."""
    if enabled:
        try:
            from tqdm import tqdm

            return tqdm(total=total, unit="window", desc="decode")
        except ImportError:  # pragma: no cover - tqdm is a dependency
            pass
    return _NoBar()


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass
