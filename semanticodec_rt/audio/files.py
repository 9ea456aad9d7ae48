"""Audio input: files (wav/flac/ogg/... via soundfile) or in-memory arrays -> float32 ``[C, N]``.

The reference reads audio with ``torchaudio.load``, which returns float32 in [-1, 1] with layout
``[C, N]``; this module returns the same thing without torchaudio.  For integer PCM files
libsndfile scales by ``1 / 2**(bits-1)`` (int16 / 32768), the same convention as torchaudio, and
FLOAT wav files are returned bit-exactly.

Channel policy (``mono``):

* ``"first"`` (default) keeps channel 0 only, exactly like the reference ``waveform[0:1]``.
  There is **no downmix** in the published code: the right channel of a stereo file is ignored.
* ``"mean"`` averages all channels (float32 mean over the channel axis); this is not what the
  published model saw, so tokens differ from the reference for stereo input.
* ``None`` keeps every channel (the reference resamples *all* channels before selecting channel
  0; :mod:`semanticodec_rt.audio.load` follows that order).

Every failure is a :class:`AudioInputError` (a ``ValueError``) with a message that names the
problem: missing file, unreadable/unsupported/corrupt file, empty audio, NaN/Inf samples.

:class:`AudioFileBlocks` reads a file block by block, with the same samples and the same errors,
for callers whose memory must not grow with the file (``encode`` of a long recording).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Union

import numpy as np
import torch

AudioSource = Union[str, os.PathLike, np.ndarray, torch.Tensor]

MONO_POLICIES = ("first", "mean")
#: frames per block of :class:`AudioFileBlocks`: 512 KiB of float32 stereo, whatever the rate
BLOCK_FRAMES = 1 << 16


class AudioInputError(ValueError):
    """Invalid audio input (missing, unreadable, empty or non-finite)."""


class AudioFileNotFoundError(AudioInputError, FileNotFoundError):
    """The audio path does not exist (also a ``FileNotFoundError`` for ``except OSError`` users)."""


def _check_waveform(wave: torch.Tensor, what: str) -> None:
    """Reject empty and non-finite audio; ``wave`` is ``[C, N]``."""
    if wave.shape[0] == 0 or wave.shape[1] == 0:
        raise _empty_error(what, list(wave.shape))
    n_bad, n_nan = _count_nonfinite(wave)
    if n_bad:
        raise _nonfinite_error(what, n_bad, n_nan)


def _count_nonfinite(wave: torch.Tensor) -> tuple[int, int]:
    """(non-finite samples, NaN among them) of ``wave``."""
    finite = torch.isfinite(wave)
    if bool(finite.all()):
        return 0, 0
    return int((~finite).sum()), int(torch.isnan(wave).sum())


def _empty_error(what: str, shape: list) -> AudioInputError:
    return AudioInputError(f"{what}: empty audio (shape [C, N] = {shape})")


def _nonfinite_error(what: str, n_bad: int, n_nan: int) -> AudioInputError:
    return AudioInputError(
        f"{what}: {n_bad} non-finite samples ({n_nan} NaN, {n_bad - n_nan} +/-Inf); audio must be finite"
    )


def apply_channel_policy(wave: torch.Tensor, mono: str | None = "first") -> torch.Tensor:
    """Reduce ``[C, N]`` to ``[1, N]`` by the channel policy (``None`` returns ``wave`` as is).

    ``"first"`` is the reference behaviour (channel 0, no downmix); ``"mean"`` downmixes.
    The input tensor is never modified.
    """
    if wave.dim() != 2:
        raise ValueError(f"expected a [C, N] waveform, got shape {list(wave.shape)}")
    if mono is None:
        return wave
    if mono == "first":
        return wave[0:1]
    if mono == "mean":
        return wave.mean(dim=0, keepdim=True)
    raise ValueError(f"mono must be one of {MONO_POLICIES} or None, got {mono!r}")


def _array_to_float32(x: np.ndarray, what: str) -> np.ndarray:
    """Float arrays -> float32; int16/int32 PCM -> float32 scaled by 1/2**(bits-1)."""
    if np.issubdtype(x.dtype, np.floating):
        return x.astype(np.float32, copy=False)
    if x.dtype == np.int16:
        return x.astype(np.float32) / 32768.0
    if x.dtype == np.int32:
        # float64 division first: int32 values do not all fit in float32's 24-bit mantissa.
        return (x.astype(np.float64) / 2147483648.0).astype(np.float32)
    raise AudioInputError(
        f"{what}: unsupported sample dtype {x.dtype} (use float, int16 or int32 samples)"
    )


def waveform_from_array(
    data: np.ndarray | torch.Tensor,
    sample_rate: int,
    *,
    channels_first: bool = True,
    mono: str | None = "first",
) -> tuple[torch.Tensor, int]:
    """In-memory samples -> (float32 ``[C, N]`` or ``[1, N]`` tensor, sample_rate in Hz).

    Args:
        data: ``[N]`` (mono) or ``[C, N]`` samples (``[N, C]`` with ``channels_first=False``,
            the soundfile layout).  Float arrays are used as is (cast to float32); int16/int32
            are scaled to [-1, 1).
        sample_rate: rate of ``data`` in Hz (required: arrays carry none).
        mono: channel policy, see the module docstring.
    Returns:
        ``(wave, sample_rate)``; ``wave`` is float32 ``[1, N]`` with a mono policy, ``[C, N]``
        without, and always a fresh copy (mutating it never touches the caller's buffer).
    """
    what = "in-memory audio"
    if sample_rate is None or int(sample_rate) != sample_rate or sample_rate <= 0:
        raise AudioInputError(f"{what}: sample_rate must be a positive integer, got {sample_rate!r}")
    sample_rate = int(sample_rate)
    if isinstance(data, torch.Tensor):
        if data.is_complex() or not (data.is_floating_point() or data.dtype in (torch.int16, torch.int32)):
            raise AudioInputError(f"{what}: unsupported tensor dtype {data.dtype}")
        data = data.detach().cpu()
        # bfloat16/float16 have no lossless numpy twin everywhere; widen to float32 in torch.
        arr = data.to(torch.float32).numpy() if data.is_floating_point() else data.numpy()
    else:
        arr = np.asarray(data)
    if arr.ndim == 1:
        arr = arr[None, :]
    elif arr.ndim == 2:
        if not channels_first:
            arr = arr.T
    else:
        raise AudioInputError(f"{what}: expected [N] or [C, N] samples, got shape {list(arr.shape)}")
    arr = _array_to_float32(arr, what)
    wave = torch.from_numpy(np.ascontiguousarray(arr)).clone()
    _check_waveform(wave, what)
    return apply_channel_policy(wave, mono), sample_rate


def read_audio_file(path: str | os.PathLike, *, mono: str | None = "first") -> tuple[torch.Tensor, int]:
    """Read an audio file with soundfile -> (float32 ``[C, N]`` / ``[1, N]``, sample_rate in Hz).

    Any format libsndfile reads works (WAV, FLAC, OGG/Vorbis, ...).  Integer PCM is scaled to
    [-1, 1) by libsndfile (int16 / 32768), like ``torchaudio.load``; FLOAT wav is bit-exact.
    """
    f, what = _open_sound_file(path)
    with f:
        data, sr = _read_frames(f, -1, what), f.samplerate
    wave = torch.from_numpy(np.ascontiguousarray(data.T))
    _check_waveform(wave, what)
    return apply_channel_policy(wave, mono), int(sr)


def _open_sound_file(path: str | os.PathLike):
    """``(soundfile.SoundFile, what)`` of an audio file; ``what`` names it in messages."""
    import soundfile as sf  # local: keep the package importable without the I/O dependency

    p = Path(path)
    what = f"audio file {str(p)!r}"
    if not p.exists():
        raise AudioFileNotFoundError(f"{what}: no such file")
    if p.is_dir():
        raise AudioInputError(f"{what}: is a directory, not an audio file")
    try:
        return sf.SoundFile(str(p)), what
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        # libsndfile reports unknown formats and truncated/corrupt headers the same way.
        raise AudioInputError(f"{what}: unsupported or corrupt audio file ({e})") from e


def _read_frames(f, frames: int, what: str) -> np.ndarray:
    """Up to ``frames`` frames (-1: all the rest) of an open SoundFile as float32 ``[n, C]``."""
    import soundfile as sf

    try:
        # always_2d gives [N, C] even for mono files; float32 is the torchaudio.load convention.
        return f.read(frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise AudioInputError(f"{what}: unsupported or corrupt audio file ({e})") from e


class AudioFileBlocks:
    """An audio file read block by block: float32 ``[C, n]`` tensors, the samples (and errors) of
    :func:`read_audio_file` with ``mono=None``, never more than ``block_frames`` frames in memory.

    Opening checks that the file exists and is readable audio; each iteration reads the file
    again from the start.  Empty and non-finite audio raise only at the end of an iteration,
    with counts over the whole file as :func:`read_audio_file` gives them; no block is yielded
    from the first non-finite one on (the rest is only counted).  :meth:`check` runs one
    iteration and returns the exact frame count, so a caller can validate a file, and learn its
    length, before it starts on the samples.

    Attributes:
        path, sample_rate (Hz), channels; ``what`` names the file in messages.
    """

    def __init__(self, path: str | os.PathLike, block_frames: int = BLOCK_FRAMES):
        if block_frames < 1:
            raise ValueError(f"block_frames must be >= 1, got {block_frames}")
        self.path, self.block_frames = path, int(block_frames)
        f, self.what = _open_sound_file(path)
        with f:
            self.sample_rate, self.channels = int(f.samplerate), int(f.channels)

    def __iter__(self) -> Iterator[torch.Tensor]:
        f, _ = _open_sound_file(self.path)
        n_frames = n_bad = n_nan = 0
        with f:
            while True:
                data = _read_frames(f, self.block_frames, self.what)
                if len(data) == 0:
                    break
                n_frames += len(data)
                block = torch.from_numpy(np.ascontiguousarray(data.T))
                bad, nan = _count_nonfinite(block)
                n_bad, n_nan = n_bad + bad, n_nan + nan
                if not n_bad:
                    yield block
        if n_frames == 0:
            raise _empty_error(self.what, [self.channels, 0])
        if n_bad:
            raise _nonfinite_error(self.what, n_bad, n_nan)

    def check(self) -> int:
        """Read the whole file once (one block at a time); its frame count if the audio is
        valid, else the :class:`AudioInputError` reading it gives."""
        n = 0
        for block in self:
            n += block.shape[1]
        return n


def read_audio(
    source: AudioSource,
    sample_rate: int | None = None,
    *,
    mono: str | None = "first",
    channels_first: bool = True,
) -> tuple[torch.Tensor, int]:
    """Read a file path, or wrap in-memory samples, as float32 ``[C, N]`` + rate (Hz).

    Args:
        source: a path (str / PathLike), or a numpy array / torch tensor of samples.
        sample_rate: required for arrays/tensors; for files it must be ``None`` or equal the
            file's rate (a guard against silently mislabelled inputs; no resampling here).
        mono: ``"first"`` (reference: channel 0), ``"mean"`` (downmix) or ``None`` (all).
        channels_first: layout of 2-D arrays (``[C, N]`` if True, ``[N, C]`` if False).
    Returns:
        ``(wave, sr)``: ``wave`` is float32 ``[1, N]`` with a mono policy, ``[C, N]`` without.
    Raises:
        AudioInputError (ValueError): missing/unsupported/corrupt file, empty audio, NaN/Inf.
    """
    if mono is not None and mono not in MONO_POLICIES:
        raise ValueError(f"mono must be one of {MONO_POLICIES} or None, got {mono!r}")
    if isinstance(source, (str, os.PathLike)):
        wave, sr = read_audio_file(source, mono=mono)
        if sample_rate is not None and int(sample_rate) != sr:
            raise AudioInputError(
                f"audio file {str(source)!r} has sample rate {sr} Hz, but {sample_rate} Hz was given"
            )
        return wave, sr
    if isinstance(source, (np.ndarray, torch.Tensor)):
        if sample_rate is None:
            raise AudioInputError("in-memory audio needs sample_rate (Hz)")
        return waveform_from_array(source, sample_rate, channels_first=channels_first, mono=mono)
    raise AudioInputError(
        f"unsupported audio source type {type(source).__name__}: pass a path, numpy array or tensor"
    )
