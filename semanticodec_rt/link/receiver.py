"""The receiving end without sockets or threads: datagrams and times in, concealed units out.

Per datagram (:meth:`ReceiverCore.handle`), in this order, each failure counted and dropped:

1. link header and the HMAC tag, if keyed (:func:`.datagram.decode_datagram`): HELLO under the
   pre-shared key, DATA under the session key of the handshake (:mod:`.handshake`);
2. HELLO: one naming another model marks its session as a mismatch (every datagram of it is
   refused, the message is kept); one naming this model with another layout, or packets that
   cannot fit a datagram, is refused the same way.  Unkeyed, the first good HELLO *locks* the
   session.  Keyed, it earns an ACCEPT (returned by :meth:`~ReceiverCore.handle` for the caller
   to send back) and the session locks at its first DATA datagram tagged with the session key,
   so a recorded session replayed to this receiver never locks.  HELLOs are numbered: a repeated
   or old one is refused like a repeated packet and keeps nobody alive;
3. DATA of a session not locked yet waits in a small pending buffer for its HELLO (unkeyed; keyed
   DATA cannot be checked before the handshake, so it is refused);
   DATA of another session is refused;
4. the bitstream packet: length against its header (``truncated``), CRC, the rest;
5. the sequence number (:class:`.seqwindow.SeqWindow`): a repeat is a duplicate -- or, when
   authenticated, a replay, refused like one too old for the window;
6. END sets the stream end, if its totals can be true (frames between those received and the
   jitter ring's reach, samples those frames decode to); TOKENS go to the
   :class:`.jitter.JitterBuffer`.

:meth:`ReceiverCore.poll` releases due units through :class:`.plc.Concealer`; units that fell due
before a packet's arrival time are released before it goes in, so the ring always has room for
it.  Memory is bounded by the jitter ring, the released units not yet polled (what one datagram
can release), the pending buffer (64 datagrams), the open handshakes (16) and the list of
mismatched sessions (16); the audio released is bounded by real time (:mod:`.jitter`).
"""

from __future__ import annotations

import struct
import zlib
from collections import OrderedDict, deque
from dataclasses import dataclass

import numpy as np

from ..bitstream import (
    PACKET_OVERHEAD, BitstreamError, PacketKind, StreamInfo, decode_packet, layout_mismatch, packet_size,
    printable,
)
from ..bitstream.packet import PACKET_HEADER
from .datagram import (
    LINK_HEADER, MAX_DATAGRAM, TAG_BYTES, Datagram, DatagramError, DatagramKind, decode_datagram,
    encode_datagram, peek_header,
)
from .handshake import Accept, encode_accept, new_nonce, session_key
from .hello import Hello, decode_hello
from .jitter import JitterBuffer
from .plc import Concealer
from .seqwindow import DEFAULT_WINDOW, SeqStatus, SeqWindow
from .stats import ReceiverStats, Traffic

__all__ = ["ReceiverCore", "link_info"]

PENDING_DATAGRAMS = 64  # DATA held while waiting for the session's HELLO (unkeyed)
OPEN_HANDSHAKES = 16  # keyed HELLOs answered whose DATA has not come yet
MISMATCH_SESSIONS = 16  # sessions remembered as "another model"
_HELLO_WINDOW = 64  # HELLO numbers remembered per session
_END_BYTES = PACKET_OVERHEAD + 8  # END payload: n_samples u64
_CRC = struct.Struct("!I")


def link_info(codec, frames_per_packet: int | None = None) -> StreamInfo:
    """The stream description of ``codec`` (named by its weights' sha, as ``.scrt`` files are)."""
    return StreamInfo.for_codec(codec, frames_per_packet=frames_per_packet)


@dataclass
class _Offer:
    """A keyed HELLO this receiver answered: the session key its DATA must carry."""

    hello: Hello
    receiver_nonce: bytes
    key: bytes
    hellos: SeqWindow


class ReceiverCore:
    """Receive one stream of the model ``expected`` describes.

    Args:
        expected: the receiver's model (:func:`link_info`); the sender's HELLO must name it.
        unit_frames: frames per decoder unit (``codec.windowing.unit_frames``).
        key: pre-shared HMAC key, or ``None`` for an unauthenticated link.
        plc: concealment, ``"repeat"`` or ``"pad"`` (:mod:`.plc`).
        min_delay, max_delay: bounds of the :class:`~.jitter.JitterBuffer`'s delay, seconds.
        window: sequence window (replay window) in packets.

    Attributes:
        stats: :class:`~.stats.ReceiverStats`, updated as datagrams come.
        info: the sender's stream description, once locked.  end: the END packet, once seen.
        last_heard: arrival time of the last datagram accepted, or refused only for naming another
            model (a sender is talking, not to us); ``None`` before any.
    """

    def __init__(self, expected: StreamInfo, unit_frames: int, *, key: bytes | None = None, plc: str = "repeat",
                 min_delay: float = 0.04, max_delay: float = 1.0, window: int = DEFAULT_WINDOW):
        self.expected, self.unit_frames, self.key = expected, unit_frames, key
        # the rt windowings code n samples as ceil(n / unit_samples) whole units
        self.unit_samples = round(unit_frames * expected.sample_rate / expected.frames_per_s)
        self._jitter_args = dict(min_delay=min_delay, max_delay=max_delay)
        self.stats = ReceiverStats(Traffic(expected.frame_bits, expected.frames_per_s), plc=plc)
        self.concealer = Concealer(plc)
        self.window = SeqWindow(window)
        self.session: int | None = None
        self.info: StreamInfo | None = None
        self.jitter: JitterBuffer | None = None
        self.end = None
        self.last_heard: float | None = None
        self._nonce: bytes | None = None  # the locked sender's nonce
        self._data_key: bytes | None = None  # keyed: the locked session's key
        self._hellos: SeqWindow | None = None  # HELLO numbers of the locked session
        self._offers: OrderedDict[tuple[int, bytes], _Offer] = OrderedDict()
        self._pending: deque[tuple[Datagram, float]] = deque()
        self._mismatched: dict[int, str] = {}
        self._released: list[tuple[np.ndarray, np.ndarray]] = []  # not polled yet

    # -- in ---------------------------------------------------------------------------------------
    def handle(self, data: bytes, now: float) -> list[bytes]:
        """One datagram that arrived at ``now`` (seconds, monotonic).

        Returns:
            datagrams to send back to where it came from (a keyed link's ACCEPT), usually none.
        """
        try:
            dg = self._decode(data, *peek_header(data))
        except DatagramError as e:
            self.stats.traffic.add(len(data))
            self.stats.reject(e.reason)
            return []
        self.stats.traffic.add(len(data), tagged=dg.authenticated, hello=dg.kind is DatagramKind.HELLO)
        if dg.kind is DatagramKind.HELLO:
            return self._hello(dg, now)
        if dg.kind is DatagramKind.ACCEPT:
            self.stats.reject("garbage")  # a receiver's answer, sent to a receiver
        elif dg.session in self._mismatched:
            self.stats.reject("model_mismatch")
            self.last_heard = now
        elif self.session is None:
            self._pending.append((dg, now))
            if len(self._pending) > PENDING_DATAGRAMS:
                self._pending.popleft()
                self.stats.reject("no_session")
        elif dg.session != self.session:
            self.stats.reject("other_session")
        else:
            self._data(dg, now)
        return []

    def _decode(self, data: bytes, kind: DatagramKind, session: int, tagged: bool) -> Datagram:
        """Check the tag under the key this datagram must carry (keyed DATA: its session's; a
        missing or unexpected tag is refused by :func:`.datagram.decode_datagram` itself)."""
        if self.key is None or kind is not DatagramKind.DATA or not tagged:
            return decode_datagram(data, self.key)
        if self.session is not None:
            if session != self.session:  # no key of that session exists here: its tag is unverifiable
                raise DatagramError("auth", "keyed DATA of a session without a handshake here")
            return decode_datagram(data, self._data_key)
        offers = [o for (s, _), o in self._offers.items() if s == session]
        if not offers:
            raise DatagramError("no_session", "keyed DATA of a session without a handshake")
        for offer in offers:
            try:
                dg = decode_datagram(data, offer.key)
            except DatagramError:
                continue
            self._lock(session, offer.hello, offer.key, offer.hellos)
            return dg
        raise DatagramError("auth", "HMAC tag mismatch under every open handshake of the session")

    def _hello(self, dg: Datagram, now: float) -> list[bytes]:
        try:
            hello = decode_hello(dg.body)
        except DatagramError as e:
            self.stats.reject(e.reason)
            return []
        info = hello.info
        if self.session is not None and dg.session == self.session:
            if info != self.info or hello.nonce != self._nonce:
                self.stats.reject("malformed")  # a session cannot change its stream
            elif self._fresh(self._hellos, hello.seq, dg.authenticated):
                self.stats.hellos += 1
                self.last_heard = now
            return []
        if info.model != self.expected.model:
            self._mismatch(dg.session, info)
            self.last_heard = now
            return []
        wrong = layout_mismatch(info, self.expected)
        if wrong:  # the right model's sha with another layout: forged or damaged, never trusted
            self._mismatch(dg.session, info, f"the sender's HELLO names this receiver's model but not its "
                                             f"layout: {wrong}")
            return []
        most = packet_size(info.frames_per_packet, info.semantic_bits, info.acoustic_bits)
        if LINK_HEADER.size + most + TAG_BYTES > MAX_DATAGRAM:
            self.stats.reject("malformed")  # packets of that many frames cannot arrive whole
            return []
        if self.session is not None:
            self.stats.reject("other_session")
            return []
        if self.key is None:
            window = SeqWindow(_HELLO_WINDOW)
            window.mark(window.unwrap(hello.seq))
            self._lock(dg.session, hello, None, window)
            self.stats.hellos += 1
            self.last_heard = now
            return []
        return self._offer(dg.session, hello)

    def _offer(self, session: int, hello: Hello) -> list[bytes]:
        """Answer a keyed HELLO with ACCEPT (the same receiver nonce for every HELLO of one
        sender run, so a lost ACCEPT is simply answered again)."""
        offer = self._offers.get((session, hello.nonce))
        if offer is None:
            nonce = new_nonce()
            offer = _Offer(hello, nonce, session_key(self.key, session, hello.nonce, nonce), SeqWindow(_HELLO_WINDOW))
            self._offers[(session, hello.nonce)] = offer
            if len(self._offers) > OPEN_HANDSHAKES:
                self._offers.popitem(last=False)
        elif offer.hello.info != hello.info:
            self.stats.reject("malformed")
            return []
        if not self._fresh(offer.hellos, hello.seq, True):
            return []
        self._offers.move_to_end((session, hello.nonce))
        self.stats.hellos += 1
        self.stats.accepts_sent += 1
        body = encode_accept(Accept(hello.seq, hello.nonce, offer.receiver_nonce))
        return [encode_datagram(DatagramKind.ACCEPT, session, body, self.key)]

    def _fresh(self, window: SeqWindow, seq: int, authenticated: bool) -> bool:
        """Mark a HELLO number; ``False`` (counted) if it came before or is too old."""
        ext = window.unwrap(seq)
        if window.check(ext) is not SeqStatus.NEW:
            if authenticated:
                self.stats.reject("replay")
            else:
                self.stats.duplicates += 1
            return False
        window.mark(ext)
        return True

    def _lock(self, session: int, hello: Hello, key: bytes | None, hellos: SeqWindow) -> None:
        """Follow ``session`` from now on; its pending DATA (unkeyed) is handled now."""
        self.session, self.info, self._nonce = session, hello.info, hello.nonce
        self._data_key, self._hellos = key, hellos
        self._offers.clear()
        self.stats.session = session
        self.jitter = JitterBuffer(self.unit_frames, hello.info.frames_per_s, hello.info.frames_per_packet,
                                   **self._jitter_args)
        self.stats.buffer_capacity_frames = self.jitter.capacity
        pending, self._pending = self._pending, deque()
        for held, t in pending:
            if held.session == self.session:
                self._data(held, t)
            else:
                self.stats.reject("other_session")

    def _mismatch(self, session: int, info: StreamInfo, msg: str | None = None) -> None:
        if msg is None:
            msg = (f"the sender's tokens come from model {printable(info.config)} (sha {printable(info.model)}), "
                   f"this receiver decodes with model {self.expected.config} (sha {self.expected.model})")
        if session not in self._mismatched:
            if len(self._mismatched) >= MISMATCH_SESSIONS:
                del self._mismatched[next(iter(self._mismatched))]
            self._mismatched[session] = msg
            self.stats.model_mismatch_error = msg
            kept = deque(p for p in self._pending if p[0].session != session)
            for _ in range(len(self._pending) - len(kept)):
                self.stats.reject("model_mismatch")
            self._pending = kept
        self.stats.reject("model_mismatch")

    def _data(self, dg: Datagram, now: float) -> None:
        st = self.stats
        try:
            pkt = self._parse(dg.body)
        except DatagramError as e:
            st.reject(e.reason)
            return
        ext = self.window.unwrap(pkt.seq)
        status = self.window.check(ext)
        if status is SeqStatus.DUPLICATE and pkt.kind is PacketKind.END and self.end is not None:
            st.end_repeats += 1  # the sender repeats END on purpose
            self.last_heard = now
            return
        if status is not SeqStatus.NEW:
            if dg.authenticated:
                st.reject("replay")
            elif status is SeqStatus.DUPLICATE:
                st.duplicates += 1
            else:
                st.late += 1  # behind the whole window: hopelessly late, and maybe a repeat
            return
        if pkt.kind is PacketKind.END:
            why = self._end_problem(pkt.first_frame, pkt.n_samples)
            if why:
                st.reject("malformed")
                st.end_refused += 1
                return
        if self.window.highest is not None and ext < self.window.highest:
            st.reordered += 1
        self.window.mark(ext)
        st.packets_received += 1
        self.last_heard = now
        if pkt.kind is PacketKind.END:
            self.end = pkt
            st.end_received = True
            self.jitter.set_end(pkt.first_frame)
            return
        self._released += self._conceal(self.jitter.pop(now))
        placed = self.jitter.insert(pkt.first_frame, pkt.ids, now)
        st.late_frames += placed.late
        st.late += placed.late > 0 and placed.new == 0
        st.overflow_frames += placed.overflow
        st.duplicates += placed.duplicate > 0 and placed.new == 0

    def _end_problem(self, frames: int, n_samples: int) -> str | None:
        """Why END's totals cannot be true: frames outside what the jitter buffer can believe,
        or a sample count those frames do not decode to (``ceil(n / unit_samples)`` units)."""
        why = self.jitter.end_problem(frames)
        if why is None and -(-n_samples // self.unit_samples) * self.unit_frames != frames:
            why = f"END says {n_samples} samples, which is not what {frames} frames decode to"
        return why

    def _parse(self, body: bytes):
        """The bitstream packet of a DATA body, each failure a :class:`DatagramError`."""
        info = self.info
        if len(body) < PACKET_HEADER.size:
            raise DatagramError("truncated", f"{len(body)} bytes is shorter than a packet header")
        kind, _, _, n = PACKET_HEADER.unpack_from(body)
        need = packet_size(n, info.semantic_bits, info.acoustic_bits) if kind == PacketKind.TOKENS else _END_BYTES
        if len(body) < need:
            raise DatagramError("truncated", f"packet of {len(body)} bytes, its header says {need}")
        (crc,) = _CRC.unpack_from(body, len(body) - _CRC.size)
        if zlib.crc32(memoryview(body)[: -_CRC.size]) != crc:
            raise DatagramError("bad_crc", "packet CRC mismatch")
        if kind == PacketKind.TOKENS and n > info.frames_per_packet:
            raise DatagramError("malformed", f"{n} frames, the session allows {info.frames_per_packet}")
        try:
            return decode_packet(body, info.semantic_bits, info.acoustic_bits,
                                 semantic_vocab=info.semantic_vocab, acoustic_vocab=info.acoustic_vocab)
        except BitstreamError as e:
            raise DatagramError("malformed", str(e)) from None

    # -- out --------------------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        return None if self.jitter is None else self.jitter.next_deadline()

    @property
    def done(self) -> bool:
        """END came and every unit up to it has been released."""
        return self.jitter is not None and self.jitter.finished

    def poll(self, now: float) -> list[tuple[np.ndarray, np.ndarray]]:
        """Units released by ``now``, concealed: ``(ids [T_u, 2], pad [T_u])`` each."""
        if self.jitter is None:
            return []
        out, self._released = self._released + self._conceal(self.jitter.pop(now)), []
        return out

    def finish(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The stream is over (END played out, timeout or interrupt): the remaining units."""
        for _ in self._pending:
            self.stats.reject("no_session")
        self._pending.clear()
        if self.jitter is None:
            return []
        out, self._released = self._released + self._conceal(self.jitter.drain()), []
        return out

    def n_samples(self) -> int:
        """The length of what was played: END's ``n_samples``, else the whole units of the
        frames received, less the units skipped before the first packet (a late start)."""
        if self.jitter is None:
            return 0
        skipped = self.jitter.skipped_units * self.unit_samples
        if self.end is not None:
            return max(0, self.end.n_samples - skipped)
        return max(0, -(-self.jitter.frames_known // self.jitter.tu) * self.unit_samples - skipped)

    def snapshot(self) -> dict:
        """``stats.to_dict()`` with the derived packet and buffer figures filled in."""
        st, jb = self.stats, self.jitter
        st.expected = 0 if self.window.highest is None else self.window.highest + 1
        st.lost = st.expected - st.packets_received
        if jb is not None:
            st.frames_played, st.frames_concealed = jb.frames_played, jb.frames_concealed
            st.frames_received = jb.frames_taken
            st.frames_skipped = jb.skipped_units * jb.tu
            st.traffic.frames = st.frames_received
            st.buffer_max_frames = jb.max_held
            st.jitter_ms = round(jb.jitter * 1e3, 3)
            st.delay_ms = round(jb.delay * 1e3, 3)
            st.max_delay_ms = round(jb.peak_delay * 1e3, 3)
        return st.to_dict()

    def _conceal(self, units) -> list[tuple[np.ndarray, np.ndarray]]:
        return [self.concealer.apply(u.ids, u.missing) for u in units]
