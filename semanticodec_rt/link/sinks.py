"""Where the receiver's audio goes: a WAV file cut to the stream length, or nowhere.

The stream length is known only at the end (the END packet's ``n_samples``, or without END the
frames received), and by then the decoder may have emitted more: the concealed units played
while waiting for a sender that had already stopped, and the padding of the last unit.  So
:class:`WavSink` holds back the last ``holdback`` samples and writes at :meth:`close` only what
the final length allows.  Memory: ``holdback`` samples, whatever the stream length.
"""

from __future__ import annotations

import os

import numpy as np

from ..audio.wav_writer import WavWriter

__all__ = ["WavSink", "NullSink"]


class WavSink:
    """Mono WAV written as audio comes, the last ``holdback`` samples kept until :meth:`close`.

    Args:
        path: output file (written in place; callers rename a temporary file).
        sample_rate: Hz.
        holdback: samples kept back (at least the audio a stream can overshoot its length by).
        use_float: 32-bit float samples instead of 16-bit PCM (which clips to [-1, 1]).

    Attributes:
        n_samples: samples in the file after :meth:`close`.  n_clipped: samples clipped.
    """

    def __init__(self, path: str | os.PathLike, sample_rate: int, holdback: int, use_float: bool = False):
        self._wav = WavWriter(path, use_float, sample_rate)
        self.holdback = holdback
        self._held = np.zeros(0, dtype=np.float32)

    @property
    def n_samples(self) -> int:
        return self._wav.n_samples

    @property
    def n_clipped(self) -> int:
        return self._wav.n_clipped

    def write(self, pcm: np.ndarray) -> None:
        self._held = np.concatenate([self._held, np.asarray(pcm, dtype=np.float32)])
        over = len(self._held) - self.holdback
        if over > 0:
            self._wav.write(self._held[:over])
            self._held = self._held[over:]

    def close(self, n_samples: int | None = None) -> None:
        """Write the held samples, cut or zero-padded so the file has ``n_samples`` (if given)."""
        held = self._held
        if n_samples is not None:
            need = max(0, n_samples - self.n_samples)
            held = np.concatenate([held[:need], np.zeros(max(0, need - len(held)), np.float32)])
        self._wav.write(held)
        self._held = np.zeros(0, dtype=np.float32)
        self._wav.close()


class NullSink:
    """Counts samples and drops them."""

    def __init__(self):
        self.n_samples = 0

    def write(self, pcm: np.ndarray) -> None:
        self.n_samples += len(pcm)

    def close(self, n_samples: int | None = None) -> None:
        if n_samples is not None:
            self.n_samples = min(self.n_samples, n_samples)
