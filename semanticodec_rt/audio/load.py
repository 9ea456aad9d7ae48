"""The reference ``SemantiCodec.load_audio`` pipeline: audio -> padded 16 kHz wave -> fbank.

Order of operations (each step as in the published code):

1. read the file (or wrap the given samples) as float32 ``[C, N]``;
2. if the rate is not 16 kHz, resample **all** channels (windowed sinc, see
   :mod:`.resample`);
3. channel policy: the reference keeps channel 0 (``"first"``, no downmix); ``"mean"`` is an
   opt-in downmix that the published model never saw;
4. length bookkeeping on the 16 kHz length ``N`` (:mod:`.lengths`): ``target_token_len``,
   the tokens ``encode`` keeps, the number of 10.24 s segments;
5. right-pad with zeros to ``n_segments * 163840`` samples (always at least one zero: an exact
   multiple of 163840 gains a whole extra segment);
6. normalised Kaldi fbank padded/cut to ``1024 * n_segments`` frames -> ``[1, 1024*n_seg, 128]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import SAMPLE_RATE, FbankConfig
from ..windowing import official_lengths as lengths
from .files import AudioSource, apply_channel_policy, read_audio
from ..encoder.fbank import extract_fbank
from .resample import resample


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


def load_waveform(
    source: AudioSource,
    *,
    sample_rate: int | None = None,
    mono: str = "first",
    channels_first: bool = True,
) -> tuple[torch.Tensor, int]:
    """Steps 1-3: mono float32 ``[1, N]`` at 16 kHz, and the source rate in Hz."""
    if mono is None:
        raise ValueError('loading needs a channel policy: mono="first" or "mean"')
    wave, sr = read_audio(source, sample_rate, mono=None, channels_first=channels_first)
    if sr != SAMPLE_RATE:
        wave = resample(wave, sr, SAMPLE_RATE)  # all channels first, as the reference does
    return apply_channel_policy(wave, mono), sr


def prepare_waveform(
    source: AudioSource,
    token_rate: int = 100,
    *,
    sample_rate: int | None = None,
    mono: str = "first",
    channels_first: bool = True,
) -> tuple[torch.Tensor, AudioLoadInfo]:
    """Steps 1-5: the zero-padded 16 kHz waveform ``[1, n_segments * 163840]`` and its info.

    Args:
        source: path, or ``[N]`` / ``[C, N]`` samples (then ``sample_rate`` is required).
        token_rate: 100, 50 or 25 (only the token counts in the info depend on it).
        mono: ``"first"`` (reference, channel 0) or ``"mean"`` (downmix).
    """
    wave, sr = load_waveform(source, sample_rate=sample_rate, mono=mono, channels_first=channels_first)
    n = wave.shape[-1]
    plan = lengths.plan_lengths(n, token_rate)
    wave = F.pad(wave, (0, lengths.segment_padding(n)))
    info = AudioLoadInfo(
        source_sample_rate=sr,
        n_samples=n,
        token_rate=token_rate,
        target_token_len=plan.target_token_len,
        n_tokens=plan.tokens_after_encode,
        n_segments=plan.n_segments,
        padded_samples=plan.padded_samples,
        mel_frames=plan.mel_target_length,
    )
    return wave, info


def load_audio(
    source: AudioSource,
    token_rate: int = 100,
    *,
    sample_rate: int | None = None,
    mono: str = "first",
    channels_first: bool = True,
    fbank_cfg: FbankConfig = FbankConfig(),
) -> tuple[torch.Tensor, AudioLoadInfo]:
    """The reference ``load_audio``: mel ``[1, 1024 * n_segments, 128]`` (normalised) + info.

    The last 2 frames of the mel are zero-pad rows (0.46703 after normalisation), because the
    padded waveform yields ``1024 * n_seg - 2`` Kaldi frames.  See :func:`prepare_waveform` for
    the arguments.
    """
    wave, info = prepare_waveform(
        source, token_rate, sample_rate=sample_rate, mono=mono, channels_first=channels_first
    )
    mel = extract_fbank(wave, info.mel_frames, fbank_cfg, sample_rate=SAMPLE_RATE)  # [1, T, 128]
    return mel, info
