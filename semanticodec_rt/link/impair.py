"""A seeded lossy channel: loss, duplication, reordering, jitter and late delivery.

For tests and the voice-link example: the same :class:`ImpairedChannel` runs inside
:class:`LossyRelay` (a real UDP relay on a thread) and in simulations with a virtual clock.
Every decision is drawn from a generator seeded once, in arrival order, so a sender that emits
the same datagram sequence sees the same drops and duplicates every run.

Per datagram, independently: dropped with probability ``loss``; otherwise delivered after a
uniform ``0 .. jitter`` delay, plus ``late_delay`` with probability ``late``; with probability
``reorder`` held back until the next datagram has gone (a swap); with probability ``duplicate``
delivered twice (the copy 1 ms later).
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from dataclasses import dataclass

import numpy as np

__all__ = ["Impairments", "ImpairedChannel", "LossyRelay"]


@dataclass(frozen=True)
class Impairments:
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    jitter: float = 0.0  # seconds
    late: float = 0.0
    late_delay: float = 1.5  # seconds: past any deadline of the default jitter buffer
    seed: int = 0


class ImpairedChannel:
    """Datagrams in with their send time, out when due (bounded: ``capacity`` in flight).

    Attributes:
        received, dropped, duplicated, reordered, delayed_late, overflowed, delivered: counters.
    """

    def __init__(self, imp: Impairments, capacity: int = 4096):
        self.imp, self.capacity = imp, capacity
        self._rng = np.random.default_rng(imp.seed)
        self._heap: list[tuple[float, int, bytes]] = []
        self._order = itertools.count()
        self._held: tuple[bytes, float] | None = None  # the datagram waiting to be swapped
        self.received = self.dropped = self.duplicated = self.reordered = 0
        self.delayed_late = self.overflowed = self.delivered = 0

    def push(self, data: bytes, now: float) -> None:
        imp, rng = self.imp, self._rng
        self.received += 1
        # draw every decision for every datagram, so one choice never shifts the others
        lost, dup, swap, late = rng.random(4) < (imp.loss, imp.duplicate, imp.reorder, imp.late)
        delay = rng.uniform(0.0, imp.jitter) if imp.jitter else 0.0
        if lost:
            self.dropped += 1
            return
        if late:
            delay += imp.late_delay
            self.delayed_late += 1
        held, self._held = self._held, None
        if swap and held is None:
            self._held = (data, now + delay)
            self.reordered += 1
        else:
            self._schedule(data, now + delay)
        if dup:
            self.duplicated += 1
            self._schedule(data, now + delay + 0.001)
        if held is not None:
            self._schedule(held[0], max(held[1], now + delay) + 1e-4)

    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def due(self, now: float) -> list[bytes]:
        """Datagrams due at ``now`` (a held one goes once nothing followed it for 50 ms)."""
        if self._held is not None and now - self._held[1] > 0.05:
            held, self._held = self._held, None
            self._schedule(*held)
        out = []
        while self._heap and self._heap[0][0] <= now:
            out.append(heapq.heappop(self._heap)[2])
        self.delivered += len(out)
        return out

    def flush(self) -> list[bytes]:
        """Everything still in flight, in due order."""
        return self.due(float("inf"))

    def _schedule(self, data: bytes, at: float) -> None:
        if len(self._heap) >= self.capacity:
            self.overflowed += 1
            return
        heapq.heappush(self._heap, (at, next(self._order), data))


class LossyRelay:
    """UDP relay on 127.0.0.1: datagrams to :attr:`address` go to ``target`` through the channel;
    what ``target`` sends back goes to the last sender directly (the handshake is not what the
    impairments test).

    Use as a context manager; the thread stops on exit.
    """

    def __init__(self, target: tuple[str, int], imp: Impairments):
        self.target = target
        self.channel = ImpairedChannel(imp)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self.address = self._sock.getsockname()
        self._sender: tuple | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lossy-relay", daemon=True)

    def __enter__(self) -> "LossyRelay":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.close()

    def _run(self) -> None:
        ch = self.channel
        while not self._stop.is_set():
            due = ch.next_due()
            self._sock.settimeout(0.005 if due is None else min(0.005, max(1e-4, due - time.monotonic())))
            try:
                data, source = self._sock.recvfrom(1 << 16)
            except socket.timeout:
                pass
            else:
                if source == self.target:  # the receiver's answer (ACCEPT): back, unimpaired
                    if self._sender is not None:
                        self._sock.sendto(data, self._sender)
                else:
                    self._sender = source
                    ch.push(data, time.monotonic())
            for data in ch.due(time.monotonic()):
                self._sock.sendto(data, self.target)
        for data in ch.flush():
            self._sock.sendto(data, self.target)
