"""Audio in: a file or samples -> mono float32 ``[1, N]`` at 16 kHz, as the reference reads it.

Order of operations (each step as in the published code):

1. read the file (or wrap the given samples) as float32 ``[C, N]``;
2. if the rate is not 16 kHz, resample **all** channels (windowed sinc, see
   :mod:`.resample`);
3. channel policy: the reference keeps channel 0 (``"first"``, no downmix); ``"mean"`` is an
   opt-in downmix that the published model never saw.

Files go through these steps block by block (:class:`FileWaveform`): the streaming resampler
gives the samples of the whole-signal one bit for bit, and the channel policy acts on each
sample alone, so a file coded block by block gives the tokens of the file read whole, in memory
that does not grow with its duration or sample rate.

The published model's padding and fbank (the rest of the reference ``load_audio``) belong to its
windowing: :func:`semanticodec_rt.windowing.official.load_audio`.
"""

from __future__ import annotations

import os
from typing import Iterator

import torch

from ..config import SAMPLE_RATE
from .files import (
    BLOCK_FRAMES, MONO_POLICIES, AudioFileBlocks, AudioInputError, AudioSource, apply_channel_policy,
    read_audio,
)
from .resample import StreamingResampler, resample, resampled_length


class FileWaveform:
    """An audio file as mono float32 ``[1, n]`` blocks at 16 kHz: steps 1-3 one block at a time.

    Iterating reads the file from the start (``block_frames`` frames per read; blocks of about
    ``block_frames * 16000 / rate`` samples come out); the blocks joined equal
    ``load_waveform(path, mono=mono)[0]``.  Errors are :func:`load_waveform`'s: a missing or
    unreadable file when the object is made, empty or non-finite audio at the end of an
    iteration (see :class:`~.files.AudioFileBlocks`).  :meth:`check` reads the file once first,
    so those come before any work on the samples, and sets ``n_samples``.

    Args:
        path: the audio file (any format libsndfile reads).
        mono: ``"first"`` (the reference: channel 0) or ``"mean"`` (downmix).
        sample_rate: ``None``, or the rate the caller expects (Hz): another rate is an error.
        block_frames: frames per read.

    Attributes:
        source_rate: the file's rate in Hz.  channels: its channel count.
        n_samples: 16 kHz samples in all, after :meth:`check` (else ``None``).
    """

    def __init__(self, path: str | os.PathLike, *, mono: str = "first", sample_rate: int | None = None,
                 block_frames: int = BLOCK_FRAMES):
        if mono is None:
            raise ValueError('loading needs a channel policy: mono="first" or "mean"')
        if mono not in MONO_POLICIES:
            raise ValueError(f"mono must be one of {MONO_POLICIES}, got {mono!r}")
        self.path, self.mono = path, mono
        self.blocks = AudioFileBlocks(path, block_frames)
        self.source_rate, self.channels = self.blocks.sample_rate, self.blocks.channels
        if sample_rate is not None and int(sample_rate) != self.source_rate:
            raise AudioInputError(
                f"audio file {str(path)!r} has sample rate {self.source_rate} Hz, but {sample_rate} Hz was given"
            )
        self.n_samples: int | None = None

    def check(self) -> "FileWaveform":
        """Read the whole file once, without resampling: raise for empty or non-finite audio now,
        and set ``n_samples``.  Returns ``self``."""
        self.n_samples = resampled_length(self.blocks.check(), self.source_rate, SAMPLE_RATE)
        return self

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self.iter_blocks()

    def iter_blocks(self, max_samples: int | None = None) -> Iterator[torch.Tensor]:
        """The ``[1, n]`` blocks, ``max_samples`` of them at most; the rest of the file is still
        read and checked (not resampled), so a bad sample past the cut raises as before."""
        resampler = StreamingResampler(self.source_rate, SAMPLE_RATE, exact=True)
        left = max_samples
        for block in self.blocks:
            if left is not None and left <= 0:
                continue  # past the cut: read on only to check the rest of the file
            y = apply_channel_policy(resampler.push(block), self.mono)
            if left is not None:
                y, left = y[:, :left], left - y.shape[1]
            if y.shape[1]:
                yield y
        if left is not None and left <= 0:
            return
        y = resampler.flush()
        if y.shape[-1]:
            y = apply_channel_policy(y, self.mono)
            yield y if left is None else y[:, :left]
        if self.n_samples is not None and max_samples is None and resampler.n_out != self.n_samples:
            raise AudioInputError(f"audio file {str(self.path)!r} changed while it was read "
                                  f"({resampler.n_out} samples at 16 kHz, {self.n_samples} before)")

    def read(self, max_samples: int | None = None) -> torch.Tensor:
        """All the blocks (the first ``max_samples`` samples at most) as one ``[1, N]`` tensor."""
        pieces = list(self.iter_blocks(max_samples))
        return torch.cat(pieces, 1) if pieces else torch.zeros(1, 0)


def load_waveform(
    source: AudioSource,
    *,
    sample_rate: int | None = None,
    mono: str = "first",
    channels_first: bool = True,
) -> tuple[torch.Tensor, int]:
    """Steps 1-3: mono float32 ``[1, N]`` at 16 kHz, and the source rate in Hz (a file is read
    block by block: only the 16 kHz result is held whole)."""
    if mono is None:
        raise ValueError('loading needs a channel policy: mono="first" or "mean"')
    if isinstance(source, (str, os.PathLike)):
        stream = FileWaveform(source, mono=mono, sample_rate=sample_rate)
        return stream.read(), stream.source_rate
    wave, sr = read_audio(source, sample_rate, mono=None, channels_first=channels_first)
    if sr != SAMPLE_RATE:
        wave = resample(wave, sr, SAMPLE_RATE)  # all channels first, as the reference does
    return apply_channel_policy(wave, mono), sr
