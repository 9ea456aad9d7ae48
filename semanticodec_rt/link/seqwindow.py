"""A sliding bitmap over u32 sequence numbers: new, duplicate, or too old.

The same structure serves as the replay window of authenticated links (RFC 4303 style: a seq
seen before, or older than the window, is refused) and as the duplicate detector of plain
ones.  Sequence numbers wrap at 2**32; :meth:`SeqWindow.unwrap` extends them to a 64-bit count
by taking the nearest value to the highest seen (serial number arithmetic, RFC 1982), so a
window works across the wrap as long as reordering stays under 2**31 packets.
"""

from __future__ import annotations

import enum

__all__ = ["SeqStatus", "SeqWindow", "DEFAULT_WINDOW"]

DEFAULT_WINDOW = 128  # packets; 2.5 s at 1 frame per packet, 20 s at 8
_U32 = 1 << 32


class SeqStatus(enum.Enum):
    NEW = "new"  # never seen and inside (or ahead of) the window
    DUPLICATE = "duplicate"  # seen before
    TOO_OLD = "too_old"  # older than the window: cannot tell, so refused


class SeqWindow:
    """Which sequence numbers arrived, for the last ``size`` below the highest one.

    Memory is one Python int of ``size`` bits, whatever the stream length.

    Args:
        size: window length in packets (>= 64).
        first: the sequence number streams start at; extended numbers below it are TOO_OLD.
    """

    def __init__(self, size: int = DEFAULT_WINDOW, first: int = 0):
        if size < 64:
            raise ValueError(f"a sequence window needs at least 64 packets, got {size}")
        self.size = size
        self.first = first
        self.highest: int | None = None  # extended
        self._bits = 0  # bit i: highest - i was seen
        self._mask = (1 << size) - 1

    def unwrap(self, seq: int) -> int:
        """The extended (64-bit) number of ``seq``: the one nearest to the highest seen."""
        if self.highest is None:
            return seq
        d = (seq - self.highest) % _U32
        if d >= _U32 // 2:
            d -= _U32
        return self.highest + d

    def check(self, ext: int) -> SeqStatus:
        """Status of extended number ``ext`` (nothing is recorded)."""
        if ext < self.first:
            return SeqStatus.TOO_OLD
        if self.highest is None or ext > self.highest:
            return SeqStatus.NEW
        back = self.highest - ext
        if back >= self.size:
            return SeqStatus.TOO_OLD
        return SeqStatus.DUPLICATE if self._bits >> back & 1 else SeqStatus.NEW

    def mark(self, ext: int) -> None:
        """Record ``ext`` as seen (call only after :meth:`check` said NEW)."""
        if self.highest is None or ext > self.highest:
            shift = ext - self.highest if self.highest is not None else 0
            self._bits = (self._bits << min(shift, self.size)) & self._mask | 1
            self.highest = ext
        else:
            self._bits |= 1 << (self.highest - ext)
