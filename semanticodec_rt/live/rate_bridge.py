"""Devices that do not run at 16 kHz: resampling between the device rate and the codec's.

Most sound cards and every JACK server run at 44.1 or 48 kHz, and a JACK server cannot be asked
for another rate (PortAudio refuses the stream).  So the streams open at the device's rate and
the audio is resampled on an ordinary thread -- never in the callbacks, which must not allocate
(:mod:`.engine`):

* :class:`ResampledProcessor` -- the live engine runs at the device rate; its worker hands each
  chunk down to 16 kHz, through the codec, and back up;
* :func:`resampled_capture` -- the voice link's sender loop gets 16 kHz blocks from device-rate
  capture blocks;
* :class:`ResampledPlayback` -- the voice link's decode thread writes 16 kHz audio, the ring
  holds device-rate samples.

Both directions use :class:`~semanticodec_rt.audio.resample.StreamingResampler`, the reference's
windowed-sinc resampler run block by block.  It keeps sample ``k`` of one rate aligned to time
``k / rate``, so the engine's "output sample k belongs to input sample k" still holds at the
device rate; what it adds is the wait for its kernel's right half, a bounded
:func:`resampling_lag_ms` (about 1 ms at 48 kHz).
"""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np
import torch

from ..audio.resample import StreamingResampler, reduced_rates, sinc_resample_kernel
from ..config import SAMPLE_RATE as CODEC_RATE

__all__ = ["resampling_lag_ms", "ResampledProcessor", "resampled_capture", "ResampledPlayback"]


def _lag_s(orig: int, new: int) -> float:
    """Seconds a :class:`StreamingResampler` ``orig -> new`` waits beyond a sample's own time:
    the right half of its kernel plus one block of ``orig'`` input samples (reduced rates)."""
    if orig == new:
        return 0.0
    o, _ = reduced_rates(orig, new)
    _, width = sinc_resample_kernel(orig, new)
    return (width + o) / orig


def resampling_lag_ms(device: int, rate: int = CODEC_RATE) -> float:
    """The most both resamplers of a device-rate round trip add to the latency, in ms."""
    return 1e3 * (_lag_s(device, rate) + _lag_s(rate, device))


def _push(resampler: StreamingResampler, pcm: np.ndarray) -> np.ndarray:
    """``pcm`` through ``resampler`` (equal rates pass it through unchanged)."""
    return resampler.push(torch.from_numpy(np.ascontiguousarray(pcm, np.float32))).numpy()


class ResampledProcessor:
    """A live processor made for 16 kHz, run by an engine at ``device_rate``.

    Has what :class:`~.engine.LiveEngine` reads of a processor: ``unit`` (the inner unit in
    device samples), ``algorithmic_latency_ms`` (the inner one plus :func:`resampling_lag_ms`),
    ``default_jitter_ms``, ``process``, ``warmup`` and ``stats``.
    """

    def __init__(self, inner, device_rate: int, rate: int = CODEC_RATE):
        self.inner, self.device_rate, self.rate = inner, int(device_rate), int(rate)
        self.name = inner.name
        self.unit = max(1, round(inner.unit * self.device_rate / self.rate))
        self.resampling_lag_ms = resampling_lag_ms(self.device_rate, self.rate)
        self.algorithmic_latency_ms = inner.algorithmic_latency_ms + self.resampling_lag_ms
        self.default_jitter_ms = inner.default_jitter_ms
        self._down = StreamingResampler(self.device_rate, self.rate)
        self._up = StreamingResampler(self.rate, self.device_rate)

    def process(self, pcm: np.ndarray) -> np.ndarray:
        """``[n]`` device-rate samples in -> ``[m]`` device-rate samples out (aligned by time)."""
        x = _push(self._down, pcm)
        y = self.inner.process(x) if len(x) else np.zeros(0, np.float32)
        return _push(self._up, y) if len(y) else np.zeros(0, np.float32)

    def warmup(self) -> None:
        self.inner.warmup()

    def stats(self) -> dict:
        return dict(self.inner.stats(), device_rate=self.device_rate,
                    resampling_lag_ms=round(self.resampling_lag_ms, 3))


def resampled_capture(blocks: Iterable[tuple[np.ndarray, float]], device_rate: int,
                      rate: int = CODEC_RATE) -> Iterator[tuple[np.ndarray, float]]:
    """``(pcm, captured_at)`` blocks at ``device_rate`` -> the same blocks at ``rate`` (lengths
    vary by a sample as the phases go round; a block whose samples are all still in the
    kernel's reach is held back and joins the next)."""
    down = StreamingResampler(int(device_rate), int(rate))
    for pcm, t in blocks:
        y = _push(down, pcm)
        if len(y):
            yield y, t


class ResampledPlayback:
    """A playback sink (``write``/``close``, :class:`~.streams.PlaybackSink`) at ``device_rate``
    fed with ``rate`` audio: the receiver's decode thread writes 16 kHz, the device plays 48 kHz.

    ``n_samples`` counts the samples written at ``rate`` (what the receiver's stats report).
    """

    def __init__(self, sink, device_rate: int, rate: int = CODEC_RATE):
        self.sink, self.rate = sink, int(rate)
        self._up = StreamingResampler(self.rate, int(device_rate))
        self.n_samples = 0

    def write(self, pcm: np.ndarray) -> None:
        self.n_samples += len(pcm)
        y = _push(self._up, pcm)
        if len(y):
            self.sink.write(y)

    def close(self, n_samples: int | None = None) -> None:
        self.sink.write(self._up.flush().numpy())
        self.sink.close()

    def __getattr__(self, name):  # the ring's counters (overflows, underruns, ...) for the report
        return getattr(self.sink, name)
