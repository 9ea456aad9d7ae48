"""A lock-free single-producer / single-consumer ring buffer of numpy frames (audio samples).

The audio callbacks run on the audio server's real-time thread: they must not wait for a lock
that a slower thread holds (the worker runs a neural codec between its own accesses), so the
input callback and the worker, and the worker and the output callback, meet here instead.

Design:

* storage: ``capacity`` frames of ``frame_shape`` (``()`` for mono samples), ``capacity`` a power
  of two so that a position maps to a slot with ``pos & mask``;
* two indices that only grow, ``_write`` (the total frames ever written) and ``_read`` (the total
  read), each stored by exactly one thread: the producer stores ``_write``, the consumer stores
  ``_read``; ``_write - _read`` is the fill.  Python ints do not overflow, so the usual
  "one slot empty" trick is not needed and a full ring holds exactly ``capacity`` frames.

Memory ordering (CPython with the GIL): the producer copies the frames into the slots *before*
it stores the new ``_write`` (program order); the consumer loads ``_write`` *before* it reads
the slots.  A thread switch is a GIL release + acquire, which is a full memory barrier, and a
single attribute store or load of an int is one bytecode that no other thread can interleave
with, so a consumer that sees the new ``_write`` also sees the frames behind it (and the
producer that sees a new ``_read`` may overwrite those slots).  numpy may release the GIL
inside a large copy, but only the thread that owns the slots (per the indices) touches them
then.  A free-threaded (no-GIL) Python would need real atomics with release/acquire semantics
here; this class is not meant for it.

Nothing here allocates on the hot path when the caller passes the destination
(:meth:`read_into`), which the output callback does.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SPSCRing", "next_pow2"]


def next_pow2(n: int) -> int:
    """The smallest power of two ``>= n`` (and ``>= 1``)."""
    n = int(n)
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


class SPSCRing:
    """Single-producer single-consumer ring of ``frame_shape`` frames of ``dtype``.

    Args:
        min_capacity: frames it must hold; the capacity is the next power of two.
        dtype: numpy dtype of the storage (float32 for audio).
        frame_shape: shape of one frame; ``()`` for a mono sample stream, ``(3,)`` for records.

    Producer methods: :meth:`write`, :meth:`free`.  Consumer methods: :meth:`read`,
    :meth:`read_into`, :meth:`skip`, :meth:`available`.  ``fill`` (both) is a snapshot.
    """

    def __init__(self, min_capacity: int, dtype=np.float32, frame_shape: tuple[int, ...] = ()):
        if min_capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {min_capacity}")
        self.capacity = next_pow2(min_capacity)
        self.mask = self.capacity - 1
        self.buf = np.zeros((self.capacity, *frame_shape), dtype=dtype)
        self._write = 0  # stored by the producer only
        self._read = 0  # stored by the consumer only

    # -- both sides --------------------------------------------------------------------------------
    @property
    def fill(self) -> int:
        """Frames written and not yet read (a snapshot; exact for the calling side's own index)."""
        return self._write - self._read

    @property
    def write_pos(self) -> int:
        """Total frames ever written (the stream position of the next written frame)."""
        return self._write

    @property
    def read_pos(self) -> int:
        """Total frames ever read (the stream position of the next frame to read)."""
        return self._read

    # -- producer ----------------------------------------------------------------------------------
    def free(self) -> int:
        """Frames that can be written now without overwriting unread ones."""
        return self.capacity - (self._write - self._read)

    def write(self, frames: np.ndarray, partial: bool = False) -> int:
        """Copy ``frames`` ``[n, *frame_shape]`` in; returns the number written.

        All or nothing unless ``partial``: a full ring takes nothing (the caller counts the drop),
        so a block is never cut in two.
        """
        n = len(frames)
        room = self.capacity - (self._write - self._read)
        if n > room:
            if not partial:
                return 0
            n = room
        if n == 0:
            return 0
        w = self._write
        start = w & self.mask
        first = min(n, self.capacity - start)
        self.buf[start : start + first] = frames[:first]
        if n > first:  # wrap around
            self.buf[: n - first] = frames[first:n]
        self._write = w + n  # publish after the copy (see the module docstring)
        return n

    # -- consumer ----------------------------------------------------------------------------------
    def available(self) -> int:
        """Frames that can be read now."""
        return self._write - self._read

    def read_into(self, out: np.ndarray) -> int:
        """Copy up to ``len(out)`` frames into ``out``; returns how many (the rest is untouched)."""
        r = self._read
        n = min(len(out), self._write - r)
        if n <= 0:
            return 0
        start = r & self.mask
        first = min(n, self.capacity - start)
        out[:first] = self.buf[start : start + first]
        if n > first:
            out[first:n] = self.buf[: n - first]
        self._read = r + n  # release the slots after the copy
        return n

    def read(self, n: int | None = None) -> np.ndarray:
        """Up to ``n`` frames (default all available) as a new array."""
        avail = self._write - self._read
        n = avail if n is None else max(0, min(int(n), avail))
        out = np.empty((n, *self.buf.shape[1:]), dtype=self.buf.dtype)
        self.read_into(out)
        return out

    def skip(self, n: int) -> int:
        """Discard up to ``n`` frames without copying; returns how many."""
        n = max(0, min(int(n), self._write - self._read))
        self._read += n
        return n
