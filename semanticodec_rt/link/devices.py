"""Live audio for ``link send --input`` / ``link recv --output``: PortAudio callback streams.

Deliberately minimal (the ``live`` command has the full device machinery): one mono callback
stream per end at 16 kHz, never a blocking ``read``/``write``.  The capture callback copies each
block into a bounded queue (a full queue drops the block and counts it); the playback callback
reads a bounded ring and plays silence when it runs dry (counted).  ``sounddevice`` is imported
only here, when a device is asked for: ``import sounddevice`` raises OSError without PortAudio.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Iterator

import numpy as np

__all__ = ["DeviceError", "capture_blocks", "PlaybackSink"]


class DeviceError(OSError):
    """No PortAudio / sounddevice, or the device refused the stream; the message says which.

    An OSError, so the command line reports it as a system refusal (exit status 1)."""


def _sounddevice():
    try:
        import sounddevice as sd
    except (ImportError, OSError) as e:  # OSError: "PortAudio library not found"
        raise DeviceError(f"device audio needs sounddevice and PortAudio (libportaudio2): {e}") from None
    return sd


def _device(text: str | None):
    """``--input``/``--output`` value: a device number, a name, or None for the default."""
    return int(text) if text is not None and text.isdigit() else text


def capture_blocks(device: str | None, block: int, sample_rate: int, stats,
                   max_blocks: int = 32) -> Iterator[tuple[np.ndarray, float]]:
    """Yield ``(pcm [block] float32, captured_at)`` from an input device until Ctrl-C.

    ``stats.input_overflows`` counts blocks dropped because the encoder fell ``max_blocks``
    behind.
    """
    sd = _sounddevice()
    blocks: queue.Queue = queue.Queue(maxsize=max_blocks)

    def callback(indata, frames, time_info, status) -> None:
        try:
            blocks.put_nowait((indata[:, 0].copy(), time.monotonic()))
        except queue.Full:
            stats.input_overflows += 1

    try:
        stream = sd.InputStream(device=_device(device), channels=1, samplerate=sample_rate,
                                blocksize=block, dtype="float32", callback=callback)
    except Exception as e:  # PortAudioError, ValueError (no such device)
        raise DeviceError(f"cannot open input device {device or '(default)'}: {e}") from None
    with stream:
        while True:
            try:
                yield blocks.get(timeout=0.5)  # a timeout keeps Ctrl-C responsive
            except queue.Empty:
                continue


class PlaybackSink:
    """The receiver's audio to an output device, through a ring of ``capacity_s`` seconds.

    Attributes:
        n_samples: samples written.  overflows: samples dropped (ring full).
        underruns: callbacks that found too little audio (the gap is played as silence).
    """

    def __init__(self, device: str | None, sample_rate: int, capacity_s: float = 2.0):
        sd = _sounddevice()
        self._ring = np.zeros(int(capacity_s * sample_rate), dtype=np.float32)
        self._start = self._count = 0  # read position, samples held
        self._lock = threading.Lock()
        self.n_samples = self.overflows = self.underruns = 0
        self.sample_rate = sample_rate
        try:
            self._stream = sd.OutputStream(device=_device(device), channels=1, samplerate=sample_rate,
                                           dtype="float32", callback=self._callback)
            self._stream.start()
        except Exception as e:
            raise DeviceError(f"cannot open output device {device or '(default)'}: {e}") from None

    def write(self, pcm: np.ndarray) -> None:
        cap = len(self._ring)
        with self._lock:
            n = min(len(pcm), cap - self._count)
            end = (self._start + self._count + np.arange(n)) % cap
            self._ring[end] = pcm[:n]
            self._count += n
            self.overflows += len(pcm) - n
        self.n_samples += len(pcm)

    def close(self, n_samples: int | None = None) -> None:
        """Let the ring play out (at most its length), then stop the stream."""
        deadline = time.monotonic() + len(self._ring) / self.sample_rate + 0.5
        while self._count and time.monotonic() < deadline:
            time.sleep(0.02)
        self._stream.stop()
        self._stream.close()

    def _callback(self, outdata, frames, time_info, status) -> None:
        cap = len(self._ring)
        with self._lock:
            n = min(frames, self._count)
            outdata[:n, 0] = self._ring[(self._start + np.arange(n)) % cap]
            self._start = (self._start + n) % cap
            self._count -= n
        outdata[n:, 0] = 0.0
        if n < frames:
            self.underruns += 1
