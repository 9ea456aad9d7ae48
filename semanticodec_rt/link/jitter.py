"""The adaptive jitter buffer: frames in by index (any order), whole units out in order.

Frames (token positions) arrive in packets, possibly reordered, duplicated, late or never.  The
buffer keeps them in a fixed ring of ``capacity`` frames starting at the next unit to release,
and releases unit ``u`` (``T_u`` frames, the decoder's step) as soon as all its frames are there,
or at its *deadline* with the missing frames marked, whichever comes first.  Frames of a unit
already released are *late* and dropped; frames past the ring are dropped as *overflow*.
Playout starts at frame 0, unless the first packet lies beyond the ring (a receiver that joined
late, or lost the start): then it starts at that packet's unit and the units before it are
*skipped*: not played at all, since nothing the receiver knows says how long ago they were
sent (a first packet that claims frame 2^32 - 8 must not become hours of silence).

Nothing a packet says can make the buffer release audio faster than real time: the audio
released never runs more than ``allowance`` seconds (the ring's length) ahead of the time since
the first packet arrived; packets past the ring are dropped and do not move the clock; and an
END total must lie between the frames already received and the end of the ring
(:meth:`JitterBuffer.end_problem`), so :meth:`JitterBuffer.drain` releases at most two rings.

Deadlines follow the sender's clock as seen through the network.  The sender can send a frame
only once the encoder has produced its whole unit, so a packet ending at frame ``e`` is *ready*
at media time ``ceil(e / T_u) T_u / fps``; its *transit* is ``arrival - ready``.  With ``base``
the smallest transit of the last 64 packets (the fastest path) and ``E_u`` the end of the packet
holding unit u's last frame::

    deadline(u) = base + ready(E_u) + delay

A packet is in time when its transit exceeds ``base`` by at most ``delay``, so ``delay`` adapts
to the ``quantile`` (95 %) of ``transit - base`` over the same 64 packets: the delay that would
have caught 95 % of them (of those ``max_delay`` could catch at all).  A lone spike is
concealed rather than adding latency for good; jitter that persists raises the delay.  It stays
within ``[min_delay, max_delay]``, rises at once and falls by at most 2 % of the audio time
released (so the output does not jump).  The RFC 3550 inter-arrival jitter ``J`` (``jitter``)
is kept for the stats.  All times are arguments (seconds, any monotonic clock), so the buffer
runs the same under a real clock and in simulation.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

__all__ = ["Unit", "Placed", "JitterBuffer"]

_TRANSIT_HISTORY = 64  # packets in the base (minimum transit) estimate
_DECAY = 0.02  # the delay falls by at most this fraction of the audio time released


@dataclass(frozen=True)
class Unit:
    """One released unit: ``index``, ``ids`` ``[T_u, 2]`` int64, ``missing`` ``[T_u]`` bool."""

    index: int
    ids: np.ndarray
    missing: np.ndarray


@dataclass(frozen=True)
class Placed:
    """What became of the frames of one inserted packet (counts of frames)."""

    new: int = 0
    late: int = 0
    duplicate: int = 0
    overflow: int = 0


class JitterBuffer:
    """Reorder, de-duplicate and time frames; see the module docstring.

    Args:
        unit_frames: frames per unit ``T_u`` (8 at token rate 100).
        frames_per_s: frames (token positions) per second.
        frames_per_packet: the sender's packet size; packets start at multiples of it.
        min_delay, max_delay: bounds of the adaptive delay, seconds.
        quantile: share of recent packets the delay aims to catch in time.
        capacity: frames the ring holds; default enough for ``max_delay`` plus two packets.
    """

    def __init__(self, unit_frames: int, frames_per_s: float, frames_per_packet: int, *,
                 min_delay: float = 0.04, max_delay: float = 1.0, quantile: float = 0.95,
                 capacity: int | None = None):
        if not 0 <= min_delay <= max_delay:
            raise ValueError(f"need 0 <= min_delay <= max_delay, got {min_delay}, {max_delay}")
        self.tu, self.fps, self.fpp = unit_frames, float(frames_per_s), frames_per_packet
        self.min_delay, self.max_delay, self.quantile = min_delay, max_delay, quantile
        need = math.ceil(max_delay * self.fps) + 2 * max(frames_per_packet, unit_frames)
        self.capacity = max(capacity or need, unit_frames + frames_per_packet)
        self._ids = np.zeros((self.capacity, 2), dtype=np.int64)
        self._present = np.zeros(self.capacity, dtype=bool)
        self.next_unit = 0  # the next unit to release
        self.end_frame: int | None = None  # total frames, once END said it
        self.frames_known = 0  # 1 + the highest frame received
        self.delay = min_delay
        self.peak_delay = min_delay
        self.jitter = 0.0
        self.held = 0  # frames in the ring now
        self.max_held = 0
        self.frames_taken = 0  # frames released as received (the rest was concealed)
        self.skipped_units = 0  # units before the first packet, when it came past the ring
        self.allowance = self.capacity / self.fps  # seconds the output may run ahead of real time
        self._t_first: float | None = None  # arrival of the first packet
        self._transits: deque[float] = deque(maxlen=_TRANSIT_HISTORY)
        self._last_transit: float | None = None

    # -- in ---------------------------------------------------------------------------------------
    def insert(self, first_frame: int, ids: np.ndarray, now: float) -> Placed:
        """Add the frames ``first_frame ..`` of one packet that arrived at ``now``."""
        n = len(ids)
        if self._t_first is None and first_frame + n > self.capacity:
            self.next_unit = self.skipped_units = first_frame // self.tu
        start = self.next_unit * self.tu
        if first_frame < start + self.capacity:  # a packet past the ring says nothing about timing
            if self._t_first is None:
                self._t_first = now
            self._track_transit(now - self._ready(first_frame + n) / self.fps)
        stop = start + self.capacity if self.end_frame is None else min(start + self.capacity, self.end_frame)
        frames = np.arange(first_frame, first_frame + n)
        late = frames < start
        over = frames >= stop
        keep = ~(late | over)
        slots = frames[keep] % self.capacity
        dup = self._present[slots]
        slots, rows = slots[~dup], np.flatnonzero(keep)[~dup]
        self._ids[slots] = ids[rows]
        self._present[slots] = True
        self.held += len(slots)
        self.max_held = max(self.max_held, self.held)
        if keep.any():
            self.frames_known = max(self.frames_known, int(frames[keep][-1]) + 1)
        return Placed(new=len(slots), late=int(late.sum()), duplicate=int(dup.sum()), overflow=int(over.sum()))

    def end_problem(self, total_frames: int) -> str | None:
        """Why an END saying ``total_frames`` cannot be true (``None`` if it can): fewer frames
        than already received, or more than the ring reaches (the sender cannot have sent them
        without this receiver seeing any of the packets in between)."""
        if total_frames < self.frames_known:
            return f"END says {total_frames} frames, {self.frames_known} were received"
        reach = self.next_unit * self.tu + self.capacity
        if total_frames > reach:
            return f"END says {total_frames} frames, past the {reach} this receiver can place"
        return None

    def set_end(self, total_frames: int) -> None:
        """END arrived: the stream has ``total_frames`` frames; nothing past them is released.

        Raises:
            ValueError: :meth:`end_problem` refuses the total.
        """
        why = self.end_problem(total_frames)
        if why:
            raise ValueError(why)
        self.end_frame = total_frames
        self.frames_known = max(self.frames_known, total_frames)

    # -- out --------------------------------------------------------------------------------------
    @property
    def started(self) -> bool:
        return self._t_first is not None

    @property
    def finished(self) -> bool:
        """END is known and every unit up to it has been released."""
        return self.end_frame is not None and self.next_unit * self.tu >= self.end_frame

    def deadline(self, unit: int) -> float | None:
        """When ``unit`` is released even if incomplete (``None`` before the first packet)."""
        if not self._transits:
            return None
        end = -(-(unit + 1) * self.tu // self.fpp) * self.fpp  # end of the packet with the last frame
        if self.end_frame is not None:
            end = min(end, self.end_frame)
        return min(self._transits) + self._ready(end) / self.fps + self.delay

    @property
    def frames_played(self) -> int:
        """Frames of the released units that belong to the stream.

        A unit released at its deadline past the last frame received (the sender may have
        stopped, END lost) is not part of it once nothing follows: the stream ends at END's total,
        else at the last frame received.
        """
        end = self.end_frame if self.end_frame is not None else self.frames_known
        return max(0, min(self.next_unit * self.tu, end) - self.skipped_units * self.tu)

    @property
    def frames_concealed(self) -> int:
        return self.frames_played - self.frames_taken

    def next_deadline(self) -> float | None:
        """When :meth:`pop` next releases a unit if nothing arrives (never before real time
        allows it, so a receiver held back by the real-time bound sleeps instead of spinning)."""
        due = None if self.finished else self.deadline(self.next_unit)
        if due is None:
            return None
        return max(due, self._t_first - self.allowance + self._played_after_next())

    def pop(self, now: float) -> list[Unit]:
        """The units that are complete or due at ``now``, in order."""
        out = []
        while self.started and not self.finished and not self._ahead_of_real_time(now):
            slots = self._slots(self.next_unit)
            if not self._present[slots].all() and now < self.deadline(self.next_unit):
                break
            out.append(self._release(slots))
        return out

    def _ahead_of_real_time(self, now: float) -> bool:
        """Releasing the next unit would put the output more than ``allowance`` ahead of the time
        since the first packet (only a sender far ahead of real time, or a forged clock, gets here)."""
        return self._played_after_next() > now - self._t_first + self.allowance

    def _played_after_next(self) -> float:
        """Seconds of audio released once the next unit is."""
        return (self.next_unit + 1 - self.skipped_units) * self.tu / self.fps

    def drain(self) -> list[Unit]:
        """Release everything up to the end (END's total, else the last frame received)."""
        end = self.end_frame if self.end_frame is not None else self.frames_known
        out = []
        while self.next_unit * self.tu < end:
            out.append(self._release(self._slots(self.next_unit)))
        return out

    # -- internals --------------------------------------------------------------------------------
    def _ready(self, end_frame: int) -> int:
        """The frame count at which the sender had ``end_frame`` frames: whole units."""
        return -(-end_frame // self.tu) * self.tu

    def _slots(self, unit: int) -> np.ndarray:
        return np.arange(unit * self.tu, (unit + 1) * self.tu) % self.capacity

    def _release(self, slots: np.ndarray) -> Unit:
        missing = ~self._present[slots]
        unit = Unit(self.next_unit, self._ids[slots].copy(), missing)
        self.frames_taken += int((~missing).sum())
        self.held -= int((~missing).sum())
        self._present[slots] = False
        self.next_unit += 1
        # ease the delay down towards its target: at most _DECAY of the unit's duration
        target = self._target()
        if target < self.delay:
            self.delay = max(target, self.delay - _DECAY * self.tu / self.fps)
        return unit

    def _target(self) -> float:
        t = np.fromiter(self._transits, dtype=np.float64, count=len(self._transits))
        late = t - t.min()
        # a packet later than max_delay is lost whatever the delay: it must not raise it
        late = late[late <= self.max_delay]
        need = float(np.quantile(late, self.quantile)) if len(late) else 0.0
        return min(self.max_delay, max(self.min_delay, need))

    def _track_transit(self, transit: float) -> None:
        """Update the jitter estimate, the base and the delay with one packet's transit."""
        if self._last_transit is not None:
            # RFC 3550 section 6.4.1: J += (|D| - J) / 16
            self.jitter += (abs(transit - self._last_transit) - self.jitter) / 16
        self._last_transit = transit
        self._transits.append(transit)
        self.delay = max(self.delay, self._target())
        self.peak_delay = max(self.peak_delay, self.delay)
