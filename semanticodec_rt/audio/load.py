"""Audio in: a file or samples -> mono float32 ``[1, N]`` at 16 kHz, as the reference reads it.

Order of operations (each step as in the published code):

1. read the file (or wrap the given samples) as float32 ``[C, N]``;
2. if the rate is not 16 kHz, resample **all** channels (windowed sinc, see
   :mod:`.resample`);
3. channel policy: the reference keeps channel 0 (``"first"``, no downmix); ``"mean"`` is an
   opt-in downmix that the published model never saw.

The published model's padding and fbank (the rest of the reference ``load_audio``) belong to its
windowing: :func:`semanticodec_rt.windowing.official.load_audio`.
"""

from __future__ import annotations

import torch

from ..config import SAMPLE_RATE
from .files import AudioSource, apply_channel_policy, read_audio
from .resample import resample


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
