"""The sending end: token frames in, datagrams out, and the loop that paces them.

:class:`Packetizer` is pure (no socket, no clock): it cuts frames into TOKENS packets of
``frames_per_packet`` frames (the last one may be shorter), numbers them from 0, and adds

* HELLO 3 times before the first packet and again every ``hello_every`` seconds of audio (counted
  in frames, so a seeded test sees the same datagram sequence every run);
* END 3 times under one sequence number at the end (the receiver needs it for the exact
  length; repeats of it are not duplicates).

:class:`Sender` feeds a streaming encoder with pcm blocks as they are captured (a file is
replayed in real time, one 160 ms unit at a time) and sends each datagram as soon as it exists.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Iterable, Iterator

import numpy as np

from ..bitstream import PackedTokens, StreamInfo, TokenPacketizer
from .datagram import DatagramKind, encode_datagram
from .hello import encode_hello
from .stats import SenderStats, Traffic

__all__ = ["Packetizer", "Sender", "file_blocks", "new_session_id"]

HELLO_REPEATS = 3
END_REPEATS = 3


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

    Attributes:
        stats: :class:`~.stats.SenderStats` of every datagram returned so far.
    """

    def __init__(self, info: StreamInfo, *, session: int | None = None, key: bytes | None = None,
                 hello_every: float = 2.0):
        self.info, self.key = info, key
        self.session = new_session_id() if session is None else session
        self.stats = SenderStats(Traffic(info.frame_bits, info.frames_per_s), session=self.session)
        self._hello = encode_datagram(DatagramKind.HELLO, self.session, encode_hello(info), key)
        self._hello_frames = round(hello_every * info.frames_per_s)
        self._next_hello = self._hello_frames
        self._packets = TokenPacketizer(info)

    def start(self) -> list[bytes]:
        """The datagrams that open the stream (HELLOs)."""
        return [self._emit(self._hello, hello=True) for _ in range(HELLO_REPEATS)]

    def push(self, ids: np.ndarray) -> list[bytes]:
        """Datagrams for the new frames ``ids`` ``[n, 2]``: every full packet, HELLOs as due."""
        return self._datagrams(self._packets.push(ids))

    def end(self, n_samples: int) -> list[bytes]:
        """The last, partial packet (if any) and the END repeats."""
        out = self._datagrams(self._packets.flush())
        data = self._data(self._packets.end(n_samples))
        self.stats.packets_sent += 1
        self.stats.n_samples = n_samples
        for _ in range(END_REPEATS):
            out.append(self._emit(data))
            self.stats.end_datagrams += 1
        return out

    def _datagrams(self, packets: list[PackedTokens]) -> list[bytes]:
        """TOKENS packets -> datagrams, a HELLO before each packet that starts past the next due."""
        out = []
        for before, n, body in packets:
            if self._hello_frames and before >= self._next_hello:
                out.append(self._emit(self._hello, hello=True))
                self._next_hello += self._hello_frames
            out.append(self._emit(self._data(body)))
            st = self.stats
            st.packets_sent += 1
            st.token_packets += 1
            st.frames_sent += n
            st.traffic.frames += n
        return out

    def _data(self, body: bytes) -> bytes:
        return encode_datagram(DatagramKind.DATA, self.session, body, self.key)

    def _emit(self, data: bytes, hello: bool = False) -> bytes:
        self.stats.traffic.add(len(data), tagged=self.key is not None, hello=hello)
        return data


class Sender:
    """Encode pcm blocks as they come and send the datagrams to ``address``.

    Args:
        codec: an rt preset :class:`~semanticodec_rt.codec.SemantiCodec`.
        sock: a UDP socket (not connected: ICMP "port unreachable" must not stop a live sender).
        address: ``(host, port)`` of the receiver.
        packetizer: the :class:`Packetizer` of the stream.
        end_spacing: seconds between the END repeats (a burst loss should not take all three).
    """

    def __init__(self, codec, sock: socket.socket, address: tuple[str, int], packetizer: Packetizer,
                 end_spacing: float = 0.02, clock=time.monotonic, sleep=time.sleep):
        if not codec.windowing.realtime:
            raise ValueError(f"{codec.cfg.name} is not a real-time preset: the link sends rt presets only")
        self.codec, self.sock, self.address = codec, sock, address
        self.packetizer, self.end_spacing = packetizer, end_spacing
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
        self._send(self.packetizer.start())
        n_samples = 0
        try:
            for pcm, captured_at in blocks:
                n_samples += len(pcm)
                ids = enc.push(torch.from_numpy(np.ascontiguousarray(pcm, dtype=np.float32))[None])
                self._send(self.packetizer.push(ids[0].numpy()))
                self.stats.max_lag_s = max(self.stats.max_lag_s, self.clock() - captured_at)
        except KeyboardInterrupt:
            pass
        self._send(self.packetizer.push(enc.flush()[0].numpy()))
        for i, data in enumerate(self.packetizer.end(n_samples)):
            if i:
                self.sleep(self.end_spacing)
            self._send([data])
        return self.stats

    def _send(self, datagrams: list[bytes]) -> None:
        for data in datagrams:
            self.sock.sendto(data, self.address)


def file_blocks(wave: np.ndarray, block: int, sample_rate: int, *, pace: bool = True,
                clock=time.monotonic, sleep=time.sleep) -> Iterator[tuple[np.ndarray, float]]:
    """Replay ``wave`` ``[n]`` as if captured live: ``block`` samples at a time, each yielded once
    its last sample would have been recorded (at once when ``pace`` is off)."""
    block_s = block / sample_rate
    t0 = clock()
    for k, start in enumerate(range(0, len(wave), block)):
        due = t0 + (k + 1) * block_s if pace else clock()
        wait = due - clock()
        if wait > 0:
            sleep(wait)
        yield wave[start : start + block], due
