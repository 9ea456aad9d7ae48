"""The sending end: token frames in, datagrams out, and the loop that paces them.

:class:`Packetizer` is pure (no socket, no clock): it cuts frames into TOKENS packets of
``frames_per_packet`` frames (the last one may be shorter), numbers them from 0, and adds

* HELLO 3 times before the first packet and again every ``hello_every`` seconds of audio (counted
  in frames, so a seeded test sees the same datagram sequence every run), each with the next
  HELLO number;
* END 3 times under one sequence number at the end (the receiver needs it for the exact
  length; repeats of it are not duplicates).

With a key, DATA waits for the receiver's ACCEPT (:mod:`.handshake`): until one comes, packets
are held in a backlog of at most ``backlog`` seconds (the oldest dropped beyond it) and HELLO is
repeated every ``retry`` seconds of audio; :meth:`Packetizer.accept` takes the ACCEPT and returns
the backlog as DATA tagged with the session key.

:class:`Sender` feeds a streaming encoder with pcm blocks as they are captured (a file is
replayed in real time, one 160 ms unit at a time), sends each datagram as soon as it exists, and
reads what comes back on its socket between blocks (the ACCEPT).
"""

from __future__ import annotations

import os
import socket
import time
from collections import deque
from typing import Iterable, Iterator

import numpy as np

from ..bitstream import PackedTokens, StreamInfo, TokenPacketizer
from .datagram import DatagramError, DatagramKind, decode_datagram, encode_datagram
from .handshake import decode_accept, new_nonce, session_key
from .hello import encode_hello
from .stats import SenderStats, Traffic

__all__ = ["Packetizer", "Sender", "file_blocks", "new_session_id"]

HELLO_REPEATS = 3
END_REPEATS = 3
_U32 = 1 << 32


def new_session_id() -> int:
    """A random u32: two runs of a sender are two sessions to the receiver."""
    return int.from_bytes(os.urandom(4), "big")


class Packetizer:
    """Frames -> datagrams for one stream.

    Args:
        info: the stream (model, widths, ``frames_per_packet``); see :func:`.receiver.link_info`.
        session: session id (u32); default random.
        key: pre-shared HMAC key, or ``None``.
        hello_every: seconds of audio between repeated HELLOs (0: only the first ones).
        retry: keyed, before an ACCEPT: seconds of audio between HELLOs.
        backlog: keyed, before an ACCEPT: seconds of packets held (older ones are dropped).
        nonce: the sender nonce of the handshake; default random (tests fix it).

    Attributes:
        stats: :class:`~.stats.SenderStats` of every datagram returned so far.
        accepted: DATA can go out (no key, or a receiver's ACCEPT came).
    """

    def __init__(self, info: StreamInfo, *, session: int | None = None, key: bytes | None = None,
                 hello_every: float = 2.0, retry: float = 0.2, backlog: float = 2.0,
                 nonce: bytes | None = None):
        self.info, self.key = info, key
        self.session = new_session_id() if session is None else session
        self.nonce = new_nonce() if nonce is None else nonce
        self.stats = SenderStats(Traffic(info.frame_bits, info.frames_per_s), session=self.session)
        self.stats.accepted = None if key is None else False
        self._data_key = None  # keyed: the session key, once accepted
        self._receiver_nonce = b""
        self._keyed_on = -1  # the HELLO number the current session key answers
        self._hello_seq = 0
        self._hello_frames = round(hello_every * info.frames_per_s)
        self._next_hello = self._hello_frames
        self._retry_frames = max(1, round(retry * info.frames_per_s))
        self._next_retry = self._retry_frames
        self._backlog: deque[tuple[bytes, int]] = deque()  # (packet body, frames) held for an ACCEPT
        self._backlog_frames = 0
        self._max_backlog = max(1, round(backlog * info.frames_per_s))
        self._end_body: bytes | None = None
        self._packets = TokenPacketizer(info)

    @property
    def accepted(self) -> bool:
        return self.key is None or self._data_key is not None

    def start(self) -> list[bytes]:
        """The datagrams that open the stream (HELLOs)."""
        return [self._next_hello_datagram() for _ in range(HELLO_REPEATS)]

    def push(self, ids: np.ndarray) -> list[bytes]:
        """Datagrams for the new frames ``ids`` ``[n, 2]``: every full packet, HELLOs as due."""
        return self._datagrams(self._packets.push(ids))

    def end(self, n_samples: int) -> list[bytes]:
        """The last, partial packet (if any) and the END repeats (held for the ACCEPT, if keyed
        and none came yet)."""
        out = self._datagrams(self._packets.flush())
        self._end_body = self._packets.end(n_samples)
        self.stats.packets_sent += 1
        self.stats.n_samples = n_samples
        return out + (self._end_datagrams() if self.accepted else [])

    def retry_hello(self) -> list[bytes]:
        """A HELLO if still waiting for an ACCEPT (the sender calls it while it waits at the end)."""
        return [] if self.accepted else [self._next_hello_datagram()]

    def accept(self, data: bytes) -> list[bytes]:
        """A datagram that came back: if it is a fitting ACCEPT, key the session with it and
        return the held packets (and END, if the stream ended); anything else is counted and
        ignored.  A later ACCEPT re-keys only if it answers a newer HELLO than the current key's
        (a receiver that restarted); a replayed old one changes nothing."""
        if self.key is None:
            self.stats.replies_refused += 1
            return []
        try:
            dg = decode_datagram(data, self.key)
            if dg.kind is not DatagramKind.ACCEPT or dg.session != self.session:
                raise DatagramError("garbage", "not an ACCEPT of this session")
            acc = decode_accept(dg.body)
        except DatagramError:
            self.stats.replies_refused += 1
            return []
        if acc.sender_nonce != self.nonce or not self._keyed_on < acc.hello_seq < self._hello_seq:
            self.stats.replies_refused += 1
            return []
        was = self.accepted
        self._keyed_on = acc.hello_seq
        if was and acc.receiver_nonce == self._receiver_nonce:
            return []  # the same receiver answering a repeated HELLO: the same key
        self._receiver_nonce = acc.receiver_nonce
        self._data_key = session_key(self.key, self.session, self.nonce, acc.receiver_nonce)
        self.stats.accepted = True
        self.stats.accepts += 1
        if was:
            return []
        out = [self._data(body) for body, _ in self._backlog]
        self._backlog.clear()
        self._backlog_frames = 0
        return out + (self._end_datagrams() if self._end_body is not None else [])

    def _datagrams(self, packets: list[PackedTokens]) -> list[bytes]:
        """TOKENS packets -> datagrams, a HELLO before each packet that starts past the next due."""
        out = []
        for before, n, body in packets:
            if self._hello_frames and before >= self._next_hello:
                out.append(self._next_hello_datagram())
                self._next_hello += self._hello_frames
            st = self.stats
            st.packets_sent += 1
            st.token_packets += 1
            st.frames_sent += n
            st.traffic.frames += n
            if self.accepted:
                out.append(self._data(body))
                continue
            if before >= self._next_retry:
                out.append(self._next_hello_datagram())
                self._next_retry = before + self._retry_frames
            self._backlog.append((body, n))
            self._backlog_frames += n
            while self._backlog_frames > self._max_backlog and len(self._backlog) > 1:
                _, dropped = self._backlog.popleft()
                self._backlog_frames -= dropped
                st.frames_unsent += dropped
        return out

    def _end_datagrams(self) -> list[bytes]:
        self.stats.end_datagrams += END_REPEATS
        return [self._data(self._end_body) for _ in range(END_REPEATS)]

    def _next_hello_datagram(self) -> bytes:
        body = encode_hello(self.info, self._hello_seq % _U32, self.nonce)
        self._hello_seq += 1
        return self._emit(encode_datagram(DatagramKind.HELLO, self.session, body, self.key), hello=True)

    def _data(self, body: bytes) -> bytes:
        return self._emit(encode_datagram(DatagramKind.DATA, self.session, body, self._data_key))

    def _emit(self, data: bytes, hello: bool = False) -> bytes:
        self.stats.traffic.add(len(data), tagged=self.key is not None, hello=hello)
        return data


class Sender:
    """Encode pcm blocks as they come and send the datagrams to ``address``.

    Args:
        codec: an rt preset :class:`~semanticodec_rt.codec.SemantiCodec`.
        sock: a UDP socket (not connected: ICMP "port unreachable" must not stop a live sender);
            what comes back on it is read between blocks (a keyed link's ACCEPT).
        address: ``(host, port)`` of the receiver.
        packetizer: the :class:`Packetizer` of the stream.
        end_spacing: seconds between the END repeats (a burst loss should not take all three).
        accept_wait: keyed: seconds to wait at the end for an ACCEPT that has not come yet.
    """

    def __init__(self, codec, sock: socket.socket, address: tuple[str, int], packetizer: Packetizer,
                 end_spacing: float = 0.02, accept_wait: float = 2.0, clock=time.monotonic, sleep=time.sleep):
        if not codec.windowing.realtime:
            raise ValueError(f"{codec.cfg.name} is not a real-time preset: the link sends rt presets only")
        self.codec, self.sock, self.address = codec, sock, address
        self.packetizer, self.end_spacing, self.accept_wait = packetizer, end_spacing, accept_wait
        self.clock, self.sleep = clock, sleep

    @property
    def stats(self) -> SenderStats:
        return self.packetizer.stats

    def run(self, blocks: Iterable[tuple[np.ndarray, float]]) -> SenderStats:
        """Send a whole stream.

        Args:
            blocks: ``(pcm [n] float32 16 kHz, captured_at)`` pairs, ``captured_at`` on this
                sender's clock (how far behind real time the sender runs is measured from it).
                A KeyboardInterrupt while waiting for blocks ends the stream normally (END sent).
        """
        import torch

        enc = self.codec.stream_encoder()
        pk = self.packetizer
        self._send(pk.start())
        n_samples = 0
        try:
            for pcm, captured_at in blocks:
                n_samples += len(pcm)
                ids = enc.push(torch.from_numpy(np.ascontiguousarray(pcm, dtype=np.float32))[None])
                self._send(pk.push(ids[0].numpy()))
                self._replies()
                self.stats.max_lag_s = max(self.stats.max_lag_s, self.clock() - captured_at)
        except KeyboardInterrupt:
            pass
        self._send(pk.push(enc.flush()[0].numpy()))
        ending = pk.end(n_samples)  # empty if keyed and no ACCEPT yet: accept() releases it
        give_up = self.clock() + self.accept_wait
        while not pk.accepted and self.clock() < give_up:
            self._send(pk.retry_hello())
            self._replies(wait=0.2)
        for i, data in enumerate(ending):
            if i:
                self.sleep(self.end_spacing)
            self._send([data])
        return self.stats

    def _replies(self, wait: float = 0.0) -> None:
        """Take what came back on the socket, sending what an ACCEPT releases: without blocking,
        or waiting up to ``wait`` seconds for the first datagram."""
        if wait > 0:
            self.sock.settimeout(wait)
        else:
            self.sock.setblocking(False)
        try:
            while True:
                try:
                    data = self.sock.recv(1 << 16)
                except (BlockingIOError, socket.timeout, ConnectionRefusedError):
                    return
                self._send(self.packetizer.accept(data))
                self.sock.setblocking(False)
        finally:
            self.sock.setblocking(True)

    def _send(self, datagrams: list[bytes]) -> None:
        for data in datagrams:
            self.sock.sendto(data, self.address)


def file_blocks(wave, block: int, sample_rate: int, *, pace: bool = True,
                clock=time.monotonic, sleep=time.sleep) -> Iterator[tuple[np.ndarray, float]]:
    """Replay audio as if captured live: ``block`` samples at a time, each yielded once its last
    sample would have been recorded (at once when ``pace`` is off).

    ``wave`` is a ``[n]`` array, or an iterable of ``[n_i]`` (or ``[1, n_i]``) pieces -- a
    :class:`~semanticodec_rt.audio.load.FileWaveform` read block by block -- re-cut into
    ``block``-sample blocks (the last one may be shorter), so a long file is never held whole.
    """
    pieces = [wave] if isinstance(wave, np.ndarray) else wave
    block_s = block / sample_rate
    t0 = clock()
    held = np.zeros(0, np.float32)
    k = 0

    def emit(chunk: np.ndarray):
        nonlocal k
        due = t0 + (k + 1) * block_s if pace else clock()
        wait = due - clock()
        if wait > 0:
            sleep(wait)
        k += 1
        return chunk, due

    for piece in pieces:
        piece = np.asarray(piece, np.float32).reshape(-1)
        held = piece if not len(held) else np.concatenate([held, piece])
        while len(held) >= block:
            yield emit(held[:block])
            held = held[block:]
    if len(held):
        yield emit(held)
