"""The live pipeline between the audio callbacks: rings, a worker thread, counters, latency.

::

    input callback --in_ring--> worker: processor (codec) --out_ring--> output callback
         \\--in_events--------->/       \\<--------------out_events-----------/

The callbacks (:meth:`LiveEngine.on_input`, :meth:`LiveEngine.on_output`) only copy samples and
write one small timing record each into lock-free SPSC rings (:mod:`.ringbuffer`); they never
wait, allocate arrays or run the model.  The worker thread polls the rings, runs the processor,
and does all bookkeeping.  Nothing here needs an audio device: tests drive the two callback
methods from threads at real-time pace.

Bounded everywhere (never an unbounded queue):

* input ring full -> the input callback drops the whole block (``overruns``);
* worker behind by more than ``max_backlog`` samples -> it skips whole units of input before
  running the processor (``skipped_units``), which also saves the compute of those units;
* output ring above ``buffer + unit`` -> the worker drops whole units of its output
  (``dropped_units``), so the latency returns to its target after a hiccup;
* output ring empty while playing -> silence for the rest of the block (``underruns``), then
  the output callback re-buffers: it waits until ``buffer`` samples are queued and skips any
  excess, so playback restarts with exactly the target fill.

Latency is measured per output block: the output ring position of its first sample leads,
through :class:`~.timeline.IndexMap` breakpoints (one per drop or skip), to the processor
position, the input ring position and the input device position of the same sample; the two
:class:`~.timeline.DeviceClock` s give the capture and playback times.  Convention: a callback's
start time stands for the device boundary time of its block's first frame, corrected by the
stream's reported device latency (PortAudio's ``latency``).  So the measured figure is
algorithmic latency + waiting for a whole unit + compute + output buffering + devices.
"""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

from .ringbuffer import SPSCRing
from .stats import Running
from .timeline import DeviceClock, IndexMap

__all__ = ["LiveEngine"]

_IN_REC = 3  # input event: device position, input ring position (-1: dropped), time
_OUT_REC = 4  # output event: device position, output ring position, frames from the ring, time


class LiveEngine:
    """Rings + worker + stats for one live stream (mono, float32).

    Args:
        processor: :class:`~.processors.Passthrough` or :class:`~.processors.CodecProcessor`
            (anything with ``name``, ``unit``, ``algorithmic_latency_ms``, ``default_jitter_ms``,
            ``process`` and ``stats``).
        sample_rate: Hz, of the devices and the processor.
        block: frames per audio callback (the largest block a callback may bring).
        jitter_ms: output buffer beyond one unit, to absorb compute-time jitter.  Playback
            (re)starts with ``unit + jitter`` samples queued.  Default: the processor's
            ``default_jitter_ms`` (100 ms with a codec), or one block if that is ``None``.
        max_backlog_ms: input the worker may fall behind by before it skips units; default two
            units (and at least 160 ms).
        in_latency_s, out_latency_s: device latencies the streams report (added to the
            measured latency; see the module docstring).
        tap_seconds: keep the first seconds of the processor's input and output
            (:meth:`taps`), for tests that locate samples in an external recording.
        history: how many per-block latency measurements :attr:`latency_history` keeps.
    """

    def __init__(self, processor, sample_rate: int = 16000, block: int = 320, jitter_ms: float | None = None,
                 max_backlog_ms: float | None = None, in_latency_s: float = 0.0, out_latency_s: float = 0.0,
                 tap_seconds: float = 0.0, history: int = 20000, poll_s: float = 0.002):
        self.processor = processor
        self.sample_rate, self.block = int(sample_rate), int(block)
        self.unit = int(processor.unit)
        ms = self.sample_rate / 1000.0
        if jitter_ms is None:
            jitter_ms = processor.default_jitter_ms
            if jitter_ms is None:
                jitter_ms = self.block / ms
        if max_backlog_ms is None:
            max_backlog_ms = max(2 * self.unit / ms, 160.0)
        self.buffer = self.unit + round(jitter_ms * ms)  # target output fill when playback starts
        self.max_fill = self.buffer + self.unit
        self.max_backlog = max(self.unit, round(max_backlog_ms * ms))
        self.in_latency_s, self.out_latency_s = float(in_latency_s), float(out_latency_s)
        self.poll_s = poll_s

        # The input ring holds the allowed backlog, one unit being read and a margin of blocks;
        # beyond that the worker is stalled and the callback drops (bounded memory either way).
        self.in_ring = SPSCRing(self.max_backlog + self.unit + 16 * self.block)
        self.out_ring = SPSCRing(self.max_fill + self.unit + 16 * self.block)
        # One record per callback; sized for far more blocks than the rings can hold.
        n_events = 4 * max(self.in_ring.capacity, self.out_ring.capacity) // max(1, self.block) + 64
        self.in_events = SPSCRing(n_events, np.float64, (_IN_REC,))
        self.out_events = SPSCRing(n_events, np.float64, (_OUT_REC,))
        self._in_row = np.zeros((1, _IN_REC))  # preallocated: the callbacks allocate no arrays
        self._out_row = np.zeros((1, _OUT_REC))

        # -- written by the input callback only
        self.in_dev_pos = 0
        self.in_blocks = self.overruns = self.overrun_samples = self.in_xruns = 0
        self.in_max_fill = 0
        self.lost_events = 0
        # -- written by the output callback only
        self.out_dev_pos = 0
        self.out_blocks = self.underruns = self.underrun_samples = self.out_xruns = 0
        self.start_trim_samples = 0
        self.playing = False
        # -- written by the worker only
        self.proc_pos = 0  # processor input samples so far (= processor output index space)
        self.proc_out_pos = 0
        self.skipped_units = self.dropped_units = self.out_ring_full = 0
        self.compute_s = 0.0
        self.chunk_ms = Running()
        self.out_max_fill = 0
        self.latency = Running()
        self.latency_history: deque[tuple[int, float]] = deque(maxlen=history)  # (processor pos, s)
        self.queue_history: deque[tuple[float, int, int]] = deque(maxlen=3600)  # (s, in fill, out fill)
        self._in_clock = DeviceClock(self.sample_rate)
        self._out_clock = DeviceClock(self.sample_rate)
        self._ring_to_dev = IndexMap()  # input ring position -> input device position
        self._proc_to_ring = IndexMap()  # processor position -> input ring position
        self._out_to_proc = IndexMap()  # output ring position -> processor position
        tap = int(tap_seconds * self.sample_rate)
        self._tap_in = np.zeros(tap, np.float32)
        self._tap_out = np.zeros(tap, np.float32)

        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0: float | None = None
        self._t_end: float | None = None

    # -- audio callbacks (real-time thread: no locks, no array allocation, no model) ------------
    def on_input(self, block: np.ndarray, t: float, xrun: bool = False) -> None:
        """The input callback: ``block`` ``[n]`` float32 captured; ``t`` = callback start time."""
        n = len(block)
        if xrun:
            self.in_xruns += 1
        ring = self.in_ring
        pos = ring.write_pos
        if ring.write(block):
            fill = ring.fill
            if fill > self.in_max_fill:
                self.in_max_fill = fill
        else:  # the worker is stalled: drop the whole block, keep the device count going
            pos = -1
            self.overruns += 1
            self.overrun_samples += n
        row = self._in_row
        row[0, 0], row[0, 1], row[0, 2] = self.in_dev_pos, pos, t - self.in_latency_s
        if not self.in_events.write(row):
            self.lost_events += 1
        self.in_dev_pos += n
        self.in_blocks += 1

    def on_output(self, out: np.ndarray, t: float, xrun: bool = False) -> None:
        """The output callback: fill ``out`` ``[n]`` float32 in place; ``t`` = callback start time."""
        n = len(out)
        if xrun:
            self.out_xruns += 1
        ring = self.out_ring
        if not self.playing and ring.available() >= self.buffer:
            # (Re)start with exactly the target fill: what arrived in one burst beyond it would
            # otherwise stay in the buffer as extra latency until the next underrun.
            excess = ring.available() - self.buffer
            self.start_trim_samples += ring.skip(excess)
            self.playing = True
        pos = ring.read_pos
        got = ring.read_into(out) if self.playing else 0
        if got < n:
            out[got:] = 0.0
            if self.playing:
                self.underruns += 1
                self.underrun_samples += n - got
                self.playing = False  # re-buffer
        row = self._out_row
        row[0, 0], row[0, 1], row[0, 2], row[0, 3] = self.out_dev_pos, pos, got, t + self.out_latency_s
        if not self.out_events.write(row):
            self.lost_events += 1
        self.out_dev_pos += n
        self.out_blocks += 1

    # -- worker ---------------------------------------------------------------------------------
    def start(self) -> "LiveEngine":
        if self._thread is not None:
            raise RuntimeError("engine already started")
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name="live-worker", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the worker (after the current chunk) and digest the last events."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._t_end is None:
            self._t_end = time.perf_counter()
        self._digest_events()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        next_sample = time.perf_counter()
        try:
            while not self._stop.is_set():
                worked = self.step()
                now = time.perf_counter()
                if now >= next_sample:
                    self.queue_history.append((round(now - self._t0, 3), self.in_ring.available(),
                                               self.out_ring.fill))
                    next_sample = now + 1.0
                if not worked:
                    time.sleep(self.poll_s)
        except BaseException as e:  # reported by the session, which stops the streams
            self.error = e

    def step(self) -> bool:
        """One round of the worker: events, backlog check, processor, output.  True if audio moved."""
        self._digest_events()
        ring = self.in_ring
        avail = ring.available()
        if avail > self.max_backlog:
            # Behind: skip whole units (oldest first) so that at most max_backlog stays queued.
            units = -(-(avail - self.max_backlog) // self.unit)
            skipped = ring.skip(units * self.unit)
            self.skipped_units += units
            self._proc_to_ring.add(self.proc_pos, ring.read_pos)
            avail -= skipped
        if avail <= 0:
            return False
        pcm = ring.read(avail)
        self._tap(self._tap_in, self.proc_pos, pcm)
        t0 = time.perf_counter()
        out = self.processor.process(pcm)
        dt = time.perf_counter() - t0
        self.compute_s += dt
        self.chunk_ms.add(dt * 1e3)
        self.proc_pos += len(pcm)
        if len(out):
            self._tap(self._tap_out, self.proc_out_pos, out)
            self._write_output(np.asarray(out, np.float32))
        return True

    def _write_output(self, out: np.ndarray) -> None:
        ring, unit = self.out_ring, self.unit
        over = ring.fill + len(out) - self.max_fill
        if over > 0:
            # Ahead of the target (a burst after a stall): drop whole units, oldest first.
            drop = min(len(out), -(-over // unit) * unit)
            self.dropped_units += -(-drop // unit)
            self.proc_out_pos += drop
            out = out[drop:]
        if len(out):
            self._out_to_proc.add(ring.write_pos, self.proc_out_pos)
            if ring.write(out):
                self.out_max_fill = max(self.out_max_fill, ring.fill)
            else:  # cannot happen while max_fill < capacity; counted rather than trusted
                self.out_ring_full += 1
            self.proc_out_pos += len(out)

    def _digest_events(self) -> None:
        """Feed the device clocks and index maps; one latency measurement per output block."""
        for dev, pos, t in self.in_events.read():
            self._in_clock.observe(int(dev), t)
            if pos >= 0:
                self._ring_to_dev.add(int(pos), int(dev))
        for dev, pos, got, t in self.out_events.read():
            self._out_clock.observe(int(dev), t)
            if got <= 0 or not self._in_clock.ready:
                continue
            proc = self._out_to_proc.lookup(int(pos))
            src = self._ring_to_dev.lookup(self._proc_to_ring.lookup(proc))
            lat = self._out_clock.time_of(int(dev)) - self._in_clock.time_of(src)
            self.latency.add(lat)
            self.latency_history.append((proc, lat))

    def _tap(self, tap: np.ndarray, pos: int, x: np.ndarray) -> None:
        if pos < len(tap):
            n = min(len(x), len(tap) - pos)
            tap[pos : pos + n] = x[:n]

    def taps(self) -> tuple[np.ndarray, np.ndarray]:
        """The processor's first ``tap_seconds`` of input and of output (aligned: index = position)."""
        return self._tap_in[: self.proc_pos], self._tap_out[: self.proc_out_pos]

    # -- report ---------------------------------------------------------------------------------
    def stats(self) -> dict:
        """Everything counted so far, JSON-ready (see :func:`~.stats.format_report`)."""
        ms = 1000.0 / self.sample_rate
        end = self._t_end or time.perf_counter()
        audio_s = self.proc_pos / self.sample_rate
        return {
            "mode": self.processor.name,
            "sample_rate": self.sample_rate,
            "block": self.block,
            "unit": self.unit,
            "seconds": round(end - self._t0, 3) if self._t0 else 0.0,
            "latency_ms": {
                "measured": self.latency.summary(1e3),
                "algorithmic": round(self.processor.algorithmic_latency_ms, 2),
                "jitter_buffer": round((self.buffer - self.unit) * ms, 2),
                "output_buffer": round(self.buffer * ms, 2),  # target fill: one unit + jitter
                "device_in": round(self.in_latency_s * 1e3, 2),
                "device_out": round(self.out_latency_s * 1e3, 2),
            },
            "input": {
                "blocks": self.in_blocks, "overruns": self.overruns, "overrun_samples": self.overrun_samples,
                "xruns": self.in_xruns, "ring_capacity": self.in_ring.capacity,
                "ring_max_fill": self.in_max_fill,
            },
            "output": {
                "blocks": self.out_blocks, "underruns": self.underruns,
                "underrun_samples": self.underrun_samples, "start_trim_samples": self.start_trim_samples,
                "xruns": self.out_xruns, "ring_capacity": self.out_ring.capacity,
                "ring_max_fill": self.out_max_fill,
            },
            "worker": {
                "audio_s": round(audio_s, 3), "compute_s": round(self.compute_s, 3),
                "rtf": round(self.compute_s / audio_s, 4) if audio_s else None,
                "chunks": self.chunk_ms.n, "max_chunk_ms": self.chunk_ms.summary()["max"],
                "skipped_units": self.skipped_units, "dropped_units": self.dropped_units,
                "max_backlog_samples": self.max_backlog, "lost_events": self.lost_events,
                "output_ring_full": self.out_ring_full,
            },
            "queues": [list(q) for q in list(self.queue_history)],  # list(): one C call, atomic under the GIL
            "codec": self.processor.stats(),
        }
