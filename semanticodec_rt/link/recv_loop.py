"""The receive loop: a socket, a clock, the :class:`.receiver.ReceiverCore`, the decode thread.

The loop only reads datagrams, stamps them with the clock the moment they are read, and hands
released units to the :class:`.worker.DecodeWorker`; it sleeps in ``recv`` until the next unit
deadline (at most 50 ms), so a unit is concealed on time even when nothing arrives.  It ends
when END has played out, after ``timeout`` seconds without a datagram from a sender (END lost,
the sender gone, or only another model's sender talking), after ``wait`` seconds if none ever
came, or on Ctrl-C; then the remaining
units are decoded and the sink gets the stream length.
"""

from __future__ import annotations

import socket
import time

from .receiver import ReceiverCore
from .worker import DecodeWorker

__all__ = ["receive_stream", "RECV_BYTES"]

RECV_BYTES = 1 << 16  # larger than any UDP datagram, so an oversized one is seen whole
_MAX_SLEEP = 0.05


def receive_stream(sock: socket.socket, core: ReceiverCore, decoder, sink, *, timeout: float = 3.0,
                   wait: float | None = None, queue_units: int = 32, clock=time.monotonic) -> dict:
    """Receive one stream into ``sink``; returns the stats dict (``core.snapshot()``).

    Args:
        sock: a bound UDP socket.
        core: the receiver state.
        decoder: a unit decoder (:mod:`.decoders`).
        sink: ``write(pcm)`` and ``close(n_samples)`` (:mod:`.sinks`).
        timeout: seconds without a datagram from a sender that end a started stream.
        wait: seconds to wait for the first datagram (``None``: forever).
        queue_units: capacity of the decode queue.
    """
    worker = DecodeWorker(decoder, sink, capacity=queue_units)
    st = core.stats
    started = clock()
    try:
        while not core.done:
            now = clock()
            if core.last_heard is None:
                if wait is not None and now - started > wait:
                    st.timed_out = True
                    break
            elif now - core.last_heard > timeout:
                st.timed_out = True
                break
            deadline = core.next_deadline()
            budget = _MAX_SLEEP if deadline is None else min(_MAX_SLEEP, deadline - now)
            sock.settimeout(max(budget, 1e-4))
            try:
                data, source = sock.recvfrom(RECV_BYTES)
            except (socket.timeout, BlockingIOError, ConnectionRefusedError):
                data = None
            if data is not None:
                for reply in core.handle(data, clock()):  # a keyed link's ACCEPT
                    _reply(sock, reply, source)
            _hand_over(core, worker, core.poll(clock()))
    except KeyboardInterrupt:
        pass  # end the stream like a timeout: decode and write what came
    finally:
        try:
            _hand_over(core, worker, core.finish(), block=True)
        finally:
            worker.close()
    sink.close(core.n_samples())
    st.units_decoded, st.decode_dropped_units = worker.decoded, worker.dropped
    st.decode_queue_max, st.decode_queue_capacity = worker.max_queue, worker.capacity
    st.n_samples = sink.n_samples
    return core.snapshot()


def _reply(sock: socket.socket, data: bytes, address) -> None:
    try:
        sock.sendto(data, address)
    except OSError:  # the sender's address is unreachable: it will repeat its HELLO
        pass


def _hand_over(core: ReceiverCore, worker: DecodeWorker, units, block: bool = False) -> None:
    """The released units, to the decode thread."""
    for ids, pad in units:
        worker.put(ids, pad, block=block)
