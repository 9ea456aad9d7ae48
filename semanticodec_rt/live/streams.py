"""One-way device audio for an ordinary thread: capture into blocks, and a playback sink.

The voice link (``link send --input``, ``link recv --output``) has no worker of the
:class:`~.engine.LiveEngine` kind: its sender loop wants the microphone as a sequence of
blocks, its decode thread wants to hand audio to the speaker.  Both meet the audio thread in an
SPSC ring (:mod:`.ringbuffer`), like the engine, under the same rule for the callbacks (see
:mod:`.engine`): they never wait and never allocate an array; what does not fit is dropped and
counted.  Waiting happens only on the ordinary thread's side: :meth:`CaptureRing.read` sleeps
until a block is there.

* :class:`CaptureRing` -- the capture callback writes each device block into a sample ring and
  one ``(ring position, time)`` record into a small record ring; the consumer reads fixed-size
  blocks, each stamped with the time its last sample was captured.  A full ring drops the whole
  device block (``overruns``), so the consumer sees a gap rather than a torn block.
* :class:`PlaybackRing` -- the producer writes what fits (the rest is ``overflows``); the
  playback callback copies from the ring into the device buffer and plays silence for what is
  missing (``underruns`` once playback has started).
* :func:`capture_blocks` and :class:`PlaybackSink` open and start the device streams around
  them through :func:`.devices.callback_stream` (``sounddevice`` is imported only then).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Iterator

import numpy as np

from ..audio.finite import zero_nonfinite
from . import devices
from .devices import AudioUnavailable
from .ringbuffer import SPSCRing

__all__ = ["CaptureRing", "PlaybackRing", "capture_blocks", "PlaybackSink"]

_REC = 2  # capture record: sample ring write position after the block, callback time


class CaptureRing:
    """Capture callback -> fixed-size blocks for one consumer thread.

    Args:
        block: samples per block the consumer reads (device blocks may have any size).
        sample_rate: Hz (only for how long :meth:`read` sleeps).
        max_blocks: consumer blocks the ring holds (at least; the capacity is a power of two)
            before the callback drops what the consumer has not read.
        max_poll_s: longest sleep of :meth:`read` between looks at the ring.
        clock: the callback's time source (only for a block whose record was lost).

    Attributes written by the callback only: ``callbacks`` (device blocks seen), ``overruns`` /
    ``overrun_samples`` (device blocks dropped, ring full: the consumer fell behind), ``xruns``
    (blocks PortAudio flagged), ``lost_records`` (record ring full: a block's time is taken from
    a later device block).
    """

    def __init__(self, block: int, sample_rate: int, max_blocks: int = 32, max_poll_s: float = 0.05,
                 clock=time.monotonic):
        if block < 1:
            raise ValueError(f"block must be >= 1 sample, got {block}")
        self.block, self.sample_rate = int(block), int(sample_rate)
        self.max_poll_s, self.clock = max_poll_s, clock
        self.samples = SPSCRing(max_blocks * self.block)
        # One record per device block; device blocks are rarely under 16 samples (1 ms), so this
        # is full only long after the sample ring is, and then only a timestamp is late.
        self.records = SPSCRing(self.samples.capacity // 16 + 64, np.float64, (_REC,))
        self._row = np.zeros((1, _REC))  # preallocated: the callback allocates no arrays
        self.callbacks = self.overruns = self.overrun_samples = self.xruns = self.lost_records = 0
        self._pending: deque[tuple[int, float]] = deque()  # consumer side: records not yet passed

    # -- audio thread ---------------------------------------------------------------------------
    def on_input(self, block: np.ndarray, t: float, xrun: bool = False) -> None:
        """The capture callback: ``block`` ``[n]`` float32 captured; ``t`` = callback start time (s)."""
        n = len(block)
        self.callbacks += 1
        if xrun:
            self.xruns += 1
        ring = self.samples
        if ring.write(block) != n:  # all or nothing: the consumer fell behind, drop the block
            self.overruns += 1
            self.overrun_samples += n
            return
        row = self._row
        row[0, 0], row[0, 1] = ring.write_pos, t
        if not self.records.write(row):
            self.lost_records += 1

    # -- consumer thread ------------------------------------------------------------------------
    def poll(self) -> tuple[np.ndarray, float] | None:
        """The next block, or ``None`` if fewer than ``block`` samples are queued (never waits).

        Returns ``(pcm [block] float32, captured_at)``: a new array, and the callback time of the
        device block that brought its last sample (the consumer's lag is measured from it).
        """
        if self.samples.available() < self.block:
            return None
        pcm = self.samples.read(self.block)
        return pcm, self._time_of(self.samples.read_pos)

    def read(self) -> tuple[np.ndarray, float]:
        """The next block (see :meth:`poll`), sleeping until it has been captured."""
        while True:
            got = self.poll()
            if got is not None:
                return got
            # Sleep about as long as the missing samples take to arrive; a short cap keeps
            # Ctrl-C and a late device responsive.  (No event to wait on: setting one takes a
            # lock, which the callback must not.)
            missing = self.block - self.samples.available()
            time.sleep(min(self.max_poll_s, max(1e-3, missing / self.sample_rate)))

    def _time_of(self, end: int) -> float:
        """Callback time of the device block holding sample ``end - 1``."""
        for pos, t in self.records.read():
            self._pending.append((int(pos), float(t)))
        while self._pending and self._pending[0][0] < end:
            self._pending.popleft()
        if self._pending:
            return self._pending[0][1]
        return self.clock()  # its record was lost: now is the best later bound


class PlaybackRing:
    """One producer thread -> the playback callback, through a ring of ``capacity_s`` seconds.

    Args:
        sample_rate: Hz.
        capacity_s: seconds of audio the ring holds (at least; the capacity is a power of two).

    Attributes written by the producer only: ``n_samples`` (samples given to :meth:`write`),
    ``overflows`` (samples dropped, ring full), ``nonfinite`` (NaN/inf samples, queued as silence).  By the callback only: ``callbacks``, ``played``
    (samples from the ring), ``underruns`` / ``underrun_samples`` (callbacks that ran dry after
    playback had started, and the silence they played), ``xruns``.
    """

    def __init__(self, sample_rate: int, capacity_s: float = 2.0):
        self.sample_rate = int(sample_rate)
        self.ring = SPSCRing(max(1, int(capacity_s * self.sample_rate)))
        self.n_samples = self.overflows = self.nonfinite = 0
        self.callbacks = self.played = self.underruns = self.underrun_samples = self.xruns = 0

    # -- producer thread ------------------------------------------------------------------------
    def write(self, pcm: np.ndarray) -> None:
        """Queue ``pcm`` ``[n]`` float32; what does not fit is dropped (counted), never waited for.

        Dropping keeps the delay bounded by the ring: a burst after a stall would otherwise stay
        in the ring as latency for the rest of the stream.
        """
        pcm, bad = zero_nonfinite(np.asarray(pcm, np.float32))
        self.nonfinite += bad  # played as silence, never as full-scale samples
        n = self.ring.write(pcm, partial=True)
        self.overflows += len(pcm) - n
        self.n_samples += len(pcm)

    # -- audio thread ---------------------------------------------------------------------------
    def on_output(self, out: np.ndarray, t: float, xrun: bool = False) -> None:
        """The playback callback: fill ``out`` ``[n]`` float32 in place; ``t`` = callback start time (s)."""
        n = len(out)
        self.callbacks += 1
        if xrun:
            self.xruns += 1
        got = self.ring.read_into(out)
        if got < n:
            out[got:] = 0.0
            if self.played:  # silence before the first audio is waiting, not an underrun
                self.underruns += 1
                self.underrun_samples += n - got
        self.played += got


def capture_blocks(device: str | None, block: int, sample_rate: int, stats=None, max_blocks: int = 32,
                   clock=time.monotonic) -> Iterator[tuple[np.ndarray, float]]:
    """Yield ``(pcm [block] float32, captured_at)`` from an input device until the caller stops.

    Args:
        device: ``--input``: a device number or name; ``None``: the default.
        block: samples per yielded block (also the device block asked for).
        sample_rate: Hz.
        stats: if given, ``stats.input_overflows`` follows the device blocks dropped because the
            consumer fell ``max_blocks`` behind (:attr:`CaptureRing.overruns`).
        clock: time source of ``captured_at`` (the sender's clock).

    The stream opens at the first ``next()`` and closes when the generator ends (an exception
    such as Ctrl-C in the consumer's wait, or ``close()``).  Raises :class:`~.devices.AudioUnavailable`
    without PortAudio or when the device refuses.
    """
    capture = CaptureRing(block, sample_rate, max_blocks, clock=clock)
    stream = _open("input", capture.on_input, device, sample_rate, block, clock)
    try:
        while True:
            item = capture.read()
            if stats is not None:
                stats.input_overflows = capture.overruns
            yield item
    finally:
        stream.close(ignore_errors=True)  # what is still queued or captured is not wanted
        if stats is not None:
            stats.input_overflows = capture.overruns


class PlaybackSink(PlaybackRing):
    """The receiver's audio to an output device: a :class:`PlaybackRing` with its stream.

    A sink of :func:`semanticodec_rt.link.receive_stream` (``write(pcm)`` from the decode thread,
    ``close(n_samples)`` at the end).  The stream starts at once and plays silence until audio
    comes.  Raises :class:`~.devices.AudioUnavailable` without PortAudio or when the device refuses.
    """

    def __init__(self, device: str | None, sample_rate: int, capacity_s: float = 2.0, block: int = 0):
        super().__init__(sample_rate, capacity_s)
        self._stream = _open("output", self.on_output, device, sample_rate, block, time.monotonic)

    def close(self, n_samples: int | None = None) -> None:
        """Let the ring play out (at most its length), then stop and close the stream.

        ``n_samples`` (the stream length) is not needed: a device plays what it was given.
        """
        deadline = time.monotonic() + self.ring.capacity / self.sample_rate + 0.5
        while self.ring.fill and time.monotonic() < deadline:
            time.sleep(0.02)
        self._stream.stop()  # plays the device's own buffers out first
        self._stream.close()


def _open(direction: str, on_block, device: str | None, sample_rate: int, block: int, clock):
    """A started :func:`.devices.callback_stream`; every refusal becomes one :class:`AudioUnavailable` line."""
    sd = devices.sounddevice()  # through the module: a test (or a caller) may replace it there
    name = device or "(default)"
    try:
        stream = devices.callback_stream(direction, on_block, devices.parse_device(device), sample_rate=sample_rate,
                                         block=block, clock=clock)
    except (sd.PortAudioError, ValueError) as e:  # ValueError: no device matches the name
        raise AudioUnavailable(f"cannot open {direction} device {name}: {e}") from None
    try:
        stream.start()
    except sd.PortAudioError as e:  # busy, or gone since it was opened
        stream.close(ignore_errors=True)
        raise AudioUnavailable(f"cannot start {direction} device {name}: {e}") from None
    return stream
