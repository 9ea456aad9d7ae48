"""Decoded audio out: a mono WAV written block by block (``decode``, ``roundtrip``, ``link recv``)."""

from __future__ import annotations

import os

import numpy as np

from ..config import SAMPLE_RATE
from .finite import zero_nonfinite

__all__ = ["WavWriter"]


class WavWriter:
    """Mono WAV written block by block; 16-bit PCM clips to [-1, 1] and counts it; NaN and
    infinities are written as silence and counted (never as full-scale samples).

    Args:
        path: the file (created or truncated).
        use_float: 32-bit float samples instead of 16-bit PCM.
        sample_rate: Hz (default the codec's 16 kHz).

    Raises:
        OSError: the file cannot be created or written (no space left, no permission): one
            line, no libsndfile traceback.

    Attributes:
        n_samples: samples written.  n_clipped: samples clipped to [-1, 1] (PCM only).
        n_nonfinite: NaN or infinite samples, written as 0.
    """

    def __init__(self, path: str | os.PathLike, use_float: bool, sample_rate: int = SAMPLE_RATE):
        import soundfile as sf

        self.subtype = "FLOAT" if use_float else "PCM_16"
        self.path = path
        try:
            self._f = sf.SoundFile(str(path), "w", samplerate=sample_rate, channels=1,
                                   subtype=self.subtype, format="WAV")
        except sf.SoundFileError as e:
            raise OSError(f"{path}: cannot write a WAV file ({e})") from None
        self.n_samples = 0
        self.n_clipped = 0
        self.n_nonfinite = 0

    def write(self, pcm) -> None:
        """Append ``[n]`` samples: a numpy array or a torch tensor (any device)."""
        if hasattr(pcm, "detach"):
            pcm = pcm.detach().cpu().numpy()
        x, bad = zero_nonfinite(np.asarray(pcm).astype(np.float32, copy=False))
        self.n_nonfinite += bad
        if self.subtype == "PCM_16":
            over = int(np.count_nonzero(np.abs(x) > 1.0))
            if over:
                self.n_clipped += over
                x = np.clip(x, -1.0, 1.0)
        try:
            self._f.write(x)
        except (RuntimeError, OSError) as e:  # libsndfile's errors: disk full, file gone
            raise OSError(f"{self.path}: cannot write the WAV file ({e})") from None
        self.n_samples += len(x)

    def close(self) -> None:
        try:
            self._f.close()
        except (RuntimeError, OSError) as e:
            raise OSError(f"{self.path}: cannot finish the WAV file ({e})") from None

    def __enter__(self) -> "WavWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
