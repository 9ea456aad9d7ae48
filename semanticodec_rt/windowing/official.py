"""The published windowing: 10.24 s encoder windows, 10.24 s decoder windows at a 9.6 s stride.

Encoding follows the reference ``load_audio`` + ``encode`` exactly: the 16 kHz signal is padded
with zeros to whole 10.24 s segments (an exact multiple gains a whole extra segment), cut into a
normalised Kaldi fbank of ``1024 * n_segments`` frames, encoded window by window, and the tokens
are cut to the reference count (:mod:`.official_lengths`).  Decoding samples one diffusion window
of ``W = 512 / K`` token positions per 9.6 s, overlap-adds the 163 872-sample windows with a
0.64 s crossfade and applies the reference trim.

Diffusion noise is seeded per (seed, window index) instead of the reference's unseeded global RNG,
so a window decodes identically alone, in a batch or in a stream (:mod:`.official_stream`).

**Latency**: a sample cannot leave before its whole 10.24 s window has arrived, ~10.9 s in all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..audio.files import AudioSource
from ..audio.load import load_waveform
from ..config import SAMPLE_RATE, CodecConfig, FbankConfig, SamplerConfig
from ..decoder.conditioning import fill_window
from ..decoder.diffusion.noise import NoiseSource, seeded_noise
from ..encoder.fbank import extract_fbank
from . import official_lengths as lengths
from .base import CodecParts
from .checks import model_device
from .official_stream import OfficialStreamingDecoder, OfficialStreamingEncoder
from .overlap_add import overlap_add, trim_waveform


class OfficialWindowing:
    """:class:`~.base.Windowing` of the published model (``cfg.stream is None``)."""

    name = "official-10.24s"
    realtime = False
    #: fewest decoder steps it can run (diffusion needs one)
    min_steps = 1
    default_windows_per_batch = 1

    def __init__(self, cfg: CodecConfig):
        self.cfg = cfg
        # The model's own grid (the published one: 163840 samples, 512 / K positions); the
        # reference's length rules in official_lengths state the same grid as literal constants.
        self.unit_samples = cfg.window_samples
        self.unit_frames = cfg.tokens_per_window
        self.decoder_window_tokens = cfg.tokens_per_window

    @property
    def algorithmic_latency_ms(self) -> float:
        """A sample is final only when its 10.24 s encoder window (plus the 15 ms the last fbank
        frame reaches past it) is complete and the 0.64 s crossfade of its decoder window is
        resolved: ~10.9 s at best (the 2 ms/window drift and the 9.6 s vs 10.24 s grids make later
        samples wait longer)."""
        cfg = self.cfg
        frame_tail = (cfg.fbank.frame_length - cfg.fbank.frame_shift) / cfg.sample_rate * 1e3
        window = cfg.window_samples / cfg.sample_rate * 1e3
        return window + frame_tail + cfg.window_overlap_ratio * window

    def frames_for_samples(self, n_samples: int) -> int:
        return lengths.tokens_after_encode(n_samples, self.cfg.token_rate)

    # -- offline ---------------------------------------------------------------------------------
    def encode(self, parts: CodecParts, wave: torch.Tensor) -> torch.Tensor:
        times = parts.encoder.stage_times
        with times.stage("fbank"):
            mel, plan = reference_fbank(wave.cpu(), self.cfg.token_rate, self.cfg.fbank)
        tokens = parts.encoder(mel.to(wave.device))
        return tokens[:, : plan.tokens_after_encode]

    def decode(self, parts: CodecParts, tokens: torch.Tensor, sampler: SamplerConfig, *, seed: int,
               windows_per_batch: int, progress: bool = False, separate_guidance: bool = False,
               noise: NoiseSource | None = None) -> torch.Tensor:
        """Reference windowing: 10.24 s windows at a 9.6 s stride, overlap-add, trim.

        ``noise`` overrides the seeded noise per window (the golden tests inject the reference's).
        """
        b, n_tok, _ = tokens.shape
        decoder, device = parts.decoder, model_device(parts)
        windows = lengths.decoder_windows(n_tok, self.cfg.token_rate)
        if noise is None:
            noise = seeded_noise(decoder.latent_shape, seed, b, len(decoder.ddim(sampler.steps, sampler.eta)))
        outputs: list[torch.Tensor] = []
        first = 0
        with tqdm(total=len(windows), unit="window", desc="decode", disable=not progress) as bar:
            for i in range(0, len(windows), windows_per_batch):
                group = windows[i : i + windows_per_batch]
                feature = torch.cat([
                    fill_window(parts.encoder.tokens_to_feature(tokens[:, s : s + n].to(device)),
                                self.decoder_window_tokens)
                    for s, n in group
                ])
                noises = [noise(w) for w in range(first, first + len(group))]
                x_T = torch.cat([x for x, _ in noises]).to(device)

                def step_noise(k, noises=noises):
                    return torch.cat([f(k) for _, f in noises]).to(device)

                wave = decoder.generate(
                    feature, x_T, step_noise, steps=sampler.steps, eta=sampler.eta,
                    cfg_scale=sampler.cfg_scale, separate_guidance=separate_guidance,
                )
                outputs.extend(wave.float().cpu().split(b))
                first += len(group)
                bar.update(len(group))
        with decoder.stage_times.stage("overlap-add"):
            return trim_waveform(overlap_add(outputs), n_tok, self.cfg.token_rate)

    # -- files: the whole signal at once (the windows are 10.24 s anyway) --------------------------
    def encode_blocks(self, parts: CodecParts, blocks: Iterable[torch.Tensor],
                      on_progress=None) -> Iterator[np.ndarray]:
        # One offline encode of the whole 16 kHz signal, not the streaming encoder: the reference
        # subtracts the global mean of the signal before the fbank, which a stream cannot (see
        # official_stream).  So this regime holds the signal (4 bytes a sample) while it encodes.
        wave = torch.cat(list(blocks), -1)
        tokens = self.encode(parts, wave.to(model_device(parts)))
        if on_progress is not None:
            on_progress(wave.shape[-1])
        yield tokens[0].cpu().numpy()

    def decode_chunks(self, parts: CodecParts, chunks: Iterable[np.ndarray], n_frames: int,
                      n_samples: int | None, sampler: SamplerConfig, *, seed: int,
                      on_progress=None) -> Iterator[np.ndarray]:
        tokens = torch.from_numpy(np.concatenate(list(chunks)))[None]
        audio = self.decode(parts, tokens, sampler, seed=seed,
                            windows_per_batch=self.default_windows_per_batch)
        if on_progress is not None:
            on_progress(n_frames // self.unit_frames)
        yield audio[0, 0, :n_samples].numpy()

    # -- streaming -------------------------------------------------------------------------------
    def stream_encoder(self, parts: CodecParts, batch_size: int = 1):
        return OfficialStreamingEncoder(parts, self, batch_size=batch_size)

    def stream_decoder(self, parts: CodecParts, sampler: SamplerConfig, *, batch_size: int = 1,
                       seed: int = 0, n_samples: int | None = None):
        return OfficialStreamingDecoder(parts, self, sampler, batch_size=batch_size, seed=seed)

    # -- training --------------------------------------------------------------------------------
    def crop_samples(self, seconds: float) -> int:
        return self.cfg.window_samples  # one 10.24 s window, whatever was asked

    def windows_per_crop(self, samples: int) -> int:
        return 1

    def mel_windows(self, log_mel, audio: torch.Tensor) -> torch.Tensor:
        return log_mel(audio)[:, : self.cfg.window_frames].unsqueeze(1)

    def feature_windows(self, features: torch.Tensor, n_windows: int) -> torch.Tensor:
        return fill_window(features[:, : self.decoder_window_tokens], self.decoder_window_tokens)


# -- the reference load_audio pipeline ------------------------------------------------------------
def reference_fbank(wave: torch.Tensor, token_rate: int,
                    fbank_cfg: FbankConfig = FbankConfig()) -> tuple[torch.Tensor, lengths.LengthPlan]:
    """``[B, N]`` 16 kHz -> the reference's normalised fbank ``[B, 1024 * n_segments, 128]`` of
    the signal zero-padded to whole 10.24 s segments, and the length plan of ``N``.

    The last 2 frames are zero-pad rows (0.46703 after normalisation): the padded waveform yields
    ``1024 * n_seg - 2`` Kaldi frames.
    """
    n = wave.shape[-1]
    plan = lengths.plan_lengths(n, token_rate)
    padded = F.pad(wave, (0, plan.padded_samples - n))
    return extract_fbank(padded, plan.mel_target_length, fbank_cfg, sample_rate=SAMPLE_RATE), plan


@dataclass(frozen=True)
class AudioLoadInfo:
    """Bookkeeping of one :func:`load_audio` call (reference semantics).

    Attributes:
        source_sample_rate: rate of the input in Hz (before resampling).
        n_samples: input length in samples at 16 kHz (after resampling, before padding).
        token_rate: token rate the token counts refer to (100, 50 or 25).
        target_token_len: the reference float ``8 * d' / 0.16 / K`` (token positions).
        n_tokens: positions ``encode`` keeps: ``min(ceil(target_token_len), n_segments * T_w)``.
        n_segments: number of 10.24 s encoder windows after padding.
        padded_samples: ``n_segments * 163840``.
        mel_frames: ``1024 * n_segments``.
    """

    source_sample_rate: int
    n_samples: int
    token_rate: int
    target_token_len: float
    n_tokens: int
    n_segments: int
    padded_samples: int
    mel_frames: int

    @property
    def duration_s(self) -> float:
        """Input duration in seconds at 16 kHz."""
        return self.n_samples / SAMPLE_RATE

    @classmethod
    def of(cls, plan: lengths.LengthPlan, source_sample_rate: int) -> "AudioLoadInfo":
        return cls(
            source_sample_rate=source_sample_rate, n_samples=plan.n_samples, token_rate=plan.token_rate,
            target_token_len=plan.target_token_len, n_tokens=plan.tokens_after_encode,
            n_segments=plan.n_segments, padded_samples=plan.padded_samples,
            mel_frames=plan.mel_target_length,
        )


def prepare_waveform(source: AudioSource, token_rate: int = 100, *, sample_rate: int | None = None,
                     mono: str = "first", channels_first: bool = True) -> tuple[torch.Tensor, AudioLoadInfo]:
    """The reference's zero-padded 16 kHz waveform ``[1, n_segments * 163840]`` and its info.

    Args:
        source: path, or ``[N]`` / ``[C, N]`` samples (then ``sample_rate`` is required).
        token_rate: 100, 50 or 25 (only the token counts in the info depend on it).
        mono: ``"first"`` (reference, channel 0) or ``"mean"`` (downmix).
    """
    wave, sr = load_waveform(source, sample_rate=sample_rate, mono=mono, channels_first=channels_first)
    plan = lengths.plan_lengths(wave.shape[-1], token_rate)
    return F.pad(wave, (0, plan.padded_samples - plan.n_samples)), AudioLoadInfo.of(plan, sr)


def load_audio(source: AudioSource, token_rate: int = 100, *, sample_rate: int | None = None,
               mono: str = "first", channels_first: bool = True,
               fbank_cfg: FbankConfig = FbankConfig()) -> tuple[torch.Tensor, AudioLoadInfo]:
    """The reference ``load_audio``: mel ``[1, 1024 * n_segments, 128]`` (normalised) + info,
    computed by :func:`reference_fbank`, the code :meth:`OfficialWindowing.encode` runs."""
    wave, sr = load_waveform(source, sample_rate=sample_rate, mono=mono, channels_first=channels_first)
    mel, plan = reference_fbank(wave, token_rate, fbank_cfg)
    return mel, AudioLoadInfo.of(plan, sr)
