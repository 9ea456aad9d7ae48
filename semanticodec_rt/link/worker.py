"""The decode thread of the receiver, behind a bounded queue.

The receive loop must timestamp datagrams as they arrive, so decoding (tens of ms a unit) runs
here.  Units wait in a queue of at most ``capacity``; the worker takes up to ``batch`` at once
(one UNet batch, cheaper per unit, so a worker that fell behind catches up).  If the queue is
full the *oldest* unit is dropped: a live link would rather skip ahead than play ever later.
Dropped units become silence of their length, and the decoder restarts after them (its state
refers to units that never came), so the output length stays right.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

__all__ = ["DecodeWorker"]


@dataclass
class _Item:
    ids: np.ndarray  # [T_u, 2]
    pad: np.ndarray  # [T_u]
    gap: int = 0  # units to play as silence before this one (dropped for lack of room)


class DecodeWorker:
    """Decode units on a thread: ``put`` never blocks; ``close`` waits for the rest.

    Args:
        decoder: a unit decoder (:mod:`.decoders`).
        sink: ``write(pcm [n] float32)`` for the audio, called from the worker thread.
        capacity: units the queue holds (32 = 5 s at token rate 100).
        batch: most units decoded in one call.

    Attributes:
        decoded, dropped: units decoded, and units dropped for lack of room.
        max_queue: the longest the queue has been (never more than ``capacity``).
    """

    def __init__(self, decoder, sink, capacity: int = 32, batch: int = 8):
        self.decoder, self.sink = decoder, sink
        self.capacity, self.batch = capacity, batch
        self.decoded = self.dropped = self.max_queue = 0
        self._queue: deque[_Item] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="link-decode", daemon=True)
        self._thread.start()

    def put(self, ids: np.ndarray, pad: np.ndarray, block: bool = False) -> None:
        """Queue one unit (``ids [T_u, 2]``, ``pad [T_u]``).

        When the queue is full, drop its oldest unit, or with ``block`` wait for room (at the
        end of a stream, when there is no real time left to keep).
        """
        with self._cond:
            while block and len(self._queue) >= self.capacity and self._error is None:
                self._cond.wait()
            if self._error is not None:
                raise RuntimeError("the decode thread failed") from self._error
            self._append(_Item(ids, pad))

    def _append(self, item: _Item) -> None:
        if len(self._queue) >= self.capacity:
            old = self._queue.popleft()
            self.dropped += 1
            if self._queue:
                self._queue[0].gap += old.gap + 1
            else:
                item.gap += old.gap + 1
        self._queue.append(item)
        self.max_queue = max(self.max_queue, len(self._queue))
        self._cond.notify_all()

    def close(self) -> None:
        """Decode what is queued, flush the decoder, stop the thread; re-raise its error."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._closing:
                        self._cond.wait()
                    if not self._queue:
                        break
                    items = [self._queue.popleft()]
                    while self._queue and len(items) < self.batch and self._queue[0].gap == 0:
                        items.append(self._queue.popleft())
                    self._cond.notify_all()  # room for a blocked put
                self._decode(items)
            self.sink.write(self.decoder.flush())
        except BaseException as e:  # noqa: BLE001 - handed to the receive loop
            with self._cond:
                self._error = e
                self._cond.notify_all()

    def _decode(self, items: list[_Item]) -> None:
        if items[0].gap:
            self._restart(items[0].gap)
        ids = np.concatenate([it.ids for it in items])
        pad = np.concatenate([it.pad for it in items])
        self.sink.write(self.decoder.push(ids, pad))
        self.decoded += len(items)

    def _restart(self, gap: int) -> None:
        """Finish the decoder's stream, play ``gap`` units of silence, start a new stream."""
        self.sink.write(self.decoder.flush())
        self.sink.write(np.zeros(gap * self.decoder.unit_samples, dtype=np.float32))
        self.decoder.reset()
