"""Token frames -> numbered TOKENS packets, and the END packet: the one packetizer of every stream.

Files (:class:`~.container.ScrtWriter`), the voice link's sender and the live loopback's wire
check all cut frames the same way: ``frames_per_packet`` frames per packet, sequence numbers from
0, ``first_frame`` counting the frames packed before (both u32, wrapping), END carrying the total
frame count and the sample count.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .info import StreamInfo
from .packet import Packet, encode_packet

_U32 = 1 << 32


class PackedTokens(NamedTuple):
    """One TOKENS packet: ``frames_before`` frames were packed ahead of it (not wrapped), it
    carries ``n_frames``, and ``data`` is its encoding."""

    frames_before: int
    n_frames: int
    data: bytes


class TokenPacketizer:
    """Buffers ``[n, 2]`` frames and packs them into TOKENS packets of one stream.

    Args:
        info: the stream (widths, vocabularies, ``frames_per_packet``).

    Attributes:
        seq: sequence number of the next packet.  frames: frames packed so far.
    """

    def __init__(self, info: StreamInfo):
        self.info = info
        self.seq = 0
        self.frames = 0
        self._pending: list[np.ndarray] = []
        self.n_pending = 0

    def push(self, ids: np.ndarray) -> list[PackedTokens]:
        """Add frames; returns every full packet."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1, 2)
        if len(ids):
            self._pending.append(ids)
            self.n_pending += len(ids)
        fpp = self.info.frames_per_packet
        if self.n_pending < fpp:
            return []
        ready = np.concatenate(self._pending)
        n_full = len(ready) // fpp * fpp
        out = [self.packet(ready[i : i + fpp]) for i in range(0, n_full, fpp)]
        self._pending = [ready[n_full:]] if n_full < len(ready) else []
        self.n_pending = len(ready) - n_full
        return out

    def flush(self) -> list[PackedTokens]:
        """The buffered frames as one (partial) packet; none when nothing is buffered."""
        if not self.n_pending:
            return []
        ids = np.concatenate(self._pending)
        self._pending, self.n_pending = [], 0
        return [self.packet(ids)]

    def packet(self, ids: np.ndarray) -> PackedTokens:
        """Pack ``ids`` ``[n <= frames_per_packet, 2]`` now, as the next packet."""
        info, before = self.info, self.frames
        data = encode_packet(Packet.tokens(self.seq, before % _U32, ids), info.semantic_bits,
                             info.acoustic_bits, semantic_vocab=info.semantic_vocab,
                             acoustic_vocab=info.acoustic_vocab)
        self.seq = (self.seq + 1) % _U32
        self.frames += len(ids)
        return PackedTokens(before, len(ids), data)

    def end(self, n_samples: int) -> bytes:
        """The END packet (after :meth:`flush`): total frames and ``n_samples`` of audio."""
        data = encode_packet(Packet.end(self.seq, self.frames % _U32, n_samples),
                             self.info.semantic_bits, self.info.acoustic_bits)
        self.seq = (self.seq + 1) % _U32
        return data
