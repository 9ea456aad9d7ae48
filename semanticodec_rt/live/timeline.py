"""Where a sample is in time and in the other streams: the bookkeeping behind measured latency.

A sample travels through four position spaces: the input device stream (every frame the device
delivered, dropped ones included), the input ring, the processor (codec) stream, the output
ring, and finally the output device stream (silence of underruns included).  Each step is the
identity plus an offset that changes only where frames were dropped or inserted, so an
:class:`IndexMap` holds one breakpoint per discontinuity.  A :class:`DeviceClock` turns a device
stream position into a time on ``time.perf_counter``'s clock.
"""

from __future__ import annotations

from collections import deque

__all__ = ["DeviceClock", "IndexMap"]


class DeviceClock:
    """``time_of(pos)``: when device frame ``pos`` crossed the device boundary, in seconds.

    Fed once per audio callback with ``(pos, t)``: the device position of the block's first frame
    and the callback's time already corrected by the device latency.  A device runs at a fixed
    rate, so ``t - pos / rate`` is a constant except that a callback can only start *late* (the
    scheduler), never early; the minimum over the last ``window`` observations is therefore the
    best estimate of that constant, and sliding the window follows the slow drift between the
    device's crystal and the host clock.
    """

    def __init__(self, rate: float, window: int = 128):
        self.rate = float(rate)
        self.window = int(window)
        self._n = 0
        self._mins: deque[tuple[int, float]] = deque()  # (observation no., offset), increasing offsets

    def observe(self, pos: int, t: float) -> None:
        offset = t - pos / self.rate
        mins = self._mins
        while mins and mins[-1][1] >= offset:  # monotonic deque: sliding-window minimum in O(1)
            mins.pop()
        mins.append((self._n, offset))
        if mins[0][0] <= self._n - self.window:
            mins.popleft()
        self._n += 1

    @property
    def ready(self) -> bool:
        return bool(self._mins)

    def time_of(self, pos: int) -> float:
        return self._mins[0][1] + pos / self.rate


class IndexMap:
    """A monotone piecewise map ``a -> b = b0 + (a - a0)`` from one stream's positions to another's.

    :meth:`add` records that position ``a`` of the source is position ``b`` of the target (it is a
    no-op where that follows from the last breakpoint).  :meth:`lookup` must be called with
    non-decreasing ``a`` (streams are consumed in order): breakpoints it has passed are dropped,
    so the map stays as small as the number of discontinuities in flight.
    """

    def __init__(self, a0: int = 0, b0: int = 0):
        self._points: deque[tuple[int, int]] = deque([(a0, b0)])

    def add(self, a: int, b: int) -> None:
        last_a, last_b = self._points[-1]
        if a < last_a:
            raise ValueError(f"breakpoints must not go back: {a} < {last_a}")
        if b - a != last_b - last_a:
            self._points.append((a, b))

    def lookup(self, a: int) -> int:
        pts = self._points
        while len(pts) > 1 and pts[1][0] <= a:
            pts.popleft()
        a0, b0 = pts[0]
        return b0 + (a - a0)

    def __len__(self) -> int:
        return len(self._points)
