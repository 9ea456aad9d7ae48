"""Token packets: the unit a file stores and a UDP voice link sends (pure Python + numpy).

A *frame* here is one token position = one ``(semantic id, acoustic id)`` pair.  Layout, all
integers big-endian (``struct`` ``"!"``):

====== ====== =========================================================================
offset bytes  field
====== ====== =========================================================================
0      1      ``kind`` u8: 1 = TOKENS, 2 = END; 0 and 3..255 reserved (rejected today)
1      4      ``seq`` u32: packet sequence number, +1 per packet, wraps at 2**32
5      4      ``first_frame`` u32: index of the packet's first frame in the stream
9      2      ``n_frames`` u16: frames in the packet (TOKENS: 1..65535, END: 0)
11     P      payload (below)
11+P   4      CRC32 (zlib) of bytes ``0 .. 11+P-1``
====== ====== =========================================================================

Payload of TOKENS: the ids bit-packed LSB first (see :mod:`.bitpack`), per frame interleaved
``sem (semantic_bits) | ac (acoustic_bits)``, ``P = ceil(n_frames * (sb + ab) / 8)``, zero padding.
At 15 + 13 bits, 8 frames (160 ms at token rate 100) are exactly 28 bytes.

Payload of END: ``n_samples`` u64, the stream's final length in audio samples (the decoder trims
to it, which also disposes of "ghost" frames of a partial last window).  ``first_frame`` of END is
the total number of frames sent, so END alone tells a receiver the stream's totals.

The widths are not in the packet; both ends know them from the stream header (file) or session
setup (UDP), so the 15 bytes of framing stay the only overhead.
"""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from .bitpack import MAX_BITS, _check_int, bits_for_vocab, pack_fields, packed_size, unpack_fields
from .errors import BitstreamError

__all__ = [
    "PacketKind",
    "Packet",
    "encode_packet",
    "decode_packet",
    "packet_size",
    "PACKET_HEADER",
    "PACKET_OVERHEAD",
    "MAX_PACKET_BYTES",
    "MAX_PACKET_FRAMES",
]

PACKET_HEADER = struct.Struct("!BIIH")  # kind, seq, first_frame, n_frames: 11 bytes
_CRC = struct.Struct("!I")
_END_PAYLOAD = struct.Struct("!Q")  # n_samples
PACKET_OVERHEAD = PACKET_HEADER.size + _CRC.size  # 15 bytes of framing per packet
MAX_PACKET_BYTES = 0xFFFF  # the container's u16 length prefix
MAX_PACKET_FRAMES = 0xFFFF  # u16 frame count
_U32 = 1 << 32
_U64 = 1 << 64


class PacketKind(enum.IntEnum):
    """Packet kinds (u8).  New kinds get new numbers; old readers reject what they don't know."""

    TOKENS = 1
    END = 2


@dataclass(frozen=True, eq=False)
class Packet:
    """One decoded packet.  Construct with :meth:`tokens` or :meth:`end`.

    Attributes:
        kind: :class:`PacketKind`.
        seq: sequence number, 0 .. 2**32 - 1.
        first_frame: stream index of the first frame (END: the total frame count).
        ids: ``[n_frames, 2]`` int64, columns (semantic, acoustic); ``[0, 2]`` for END.
            Read-only.
        n_samples: END only: the stream length in audio samples; ``None`` for TOKENS.
    """

    kind: PacketKind
    seq: int
    first_frame: int
    ids: np.ndarray
    n_samples: int | None = None

    def __post_init__(self) -> None:
        try:
            kind = PacketKind(self.kind)
        except ValueError:
            raise BitstreamError(f"unknown packet kind {self.kind}") from None
        seq = _check_int(self.seq, "seq")
        first = _check_int(self.first_frame, "first_frame")
        if not 0 <= seq < _U32:
            raise BitstreamError(f"seq must be a u32, got {seq}")
        if not 0 <= first < _U32:
            raise BitstreamError(f"first_frame must be a u32, got {first}")
        ids = np.asarray(self.ids)
        if ids.size == 0:
            ids = ids.reshape(0, 2)  # accept np.zeros(0) / [] for an empty frame list
        if ids.ndim != 2 or ids.shape[1] != 2 or ids.dtype.kind not in "iu":
            raise BitstreamError(
                f"ids must be an integer [n, 2] array, got {ids.dtype} {tuple(ids.shape)}"
            )
        n = ids.shape[0]
        if kind is PacketKind.TOKENS:
            if not 1 <= n <= MAX_PACKET_FRAMES:
                raise BitstreamError(
                    f"a TOKENS packet holds 1..{MAX_PACKET_FRAMES} frames, got {n}"
                )
            if self.n_samples is not None:
                raise BitstreamError("n_samples belongs to END packets only")
            n_samples = None
        else:
            if n != 0:
                raise BitstreamError(f"an END packet holds no frames, got {n}")
            if self.n_samples is None:
                raise BitstreamError("an END packet needs n_samples")
            n_samples = _check_int(self.n_samples, "n_samples")
            if not 0 <= n_samples < _U64:
                raise BitstreamError(f"n_samples must be a u64, got {n_samples}")
        ids = ids.astype(np.int64)  # always a private copy, so freezing it is safe
        ids.flags.writeable = False
        for name, value in (("kind", kind), ("seq", seq), ("first_frame", first),
                            ("ids", ids), ("n_samples", n_samples)):
            object.__setattr__(self, name, value)

    @classmethod
    def tokens(cls, seq: int, first_frame: int, ids) -> "Packet":
        """A TOKENS packet carrying ``ids`` ``[n, 2]`` (semantic, acoustic)."""
        return cls(PacketKind.TOKENS, seq, first_frame, ids)

    @classmethod
    def end(cls, seq: int, first_frame: int, n_samples: int) -> "Packet":
        """The END packet: ``first_frame`` = total frames, ``n_samples`` = audio length."""
        return cls(PacketKind.END, seq, first_frame, np.zeros((0, 2), np.int64), n_samples)

    @property
    def n_frames(self) -> int:
        return int(self.ids.shape[0])

    def __eq__(self, other) -> bool:
        if not isinstance(other, Packet):
            return NotImplemented
        return (self.kind, self.seq, self.first_frame, self.n_samples) == (
            other.kind, other.seq, other.first_frame, other.n_samples
        ) and np.array_equal(self.ids, other.ids)

    __hash__ = None  # equal packets need not hash equal through an ndarray field


def packet_size(n_frames: int, semantic_bits: int, acoustic_bits: int) -> int:
    """Bytes of a TOKENS packet with ``n_frames`` frames, framing and CRC included."""
    return PACKET_OVERHEAD + packed_size(n_frames, semantic_bits + acoustic_bits)


def encode_packet(
    packet: Packet,
    semantic_bits: int,
    acoustic_bits: int,
    *,
    semantic_vocab: int | None = None,
    acoustic_vocab: int | None = None,
) -> bytes:
    """Serialise ``packet``.

    Args:
        packet: a :class:`Packet`.
        semantic_bits, acoustic_bits: id widths, 1..48 (15 and 13 for the 1.40 kbps model).
        semantic_vocab, acoustic_vocab: vocab sizes for the id range check; default
            ``2**bits``.

    Returns:
        the packet bytes (``packet_size`` for TOKENS, 23 bytes for END).

    Raises:
        BitstreamError: an id outside its vocab, or the packet would exceed 65535 bytes.
    """
    if not isinstance(packet, Packet):
        raise BitstreamError(f"expected a Packet, got {type(packet).__name__}")
    widths = _widths(semantic_bits, acoustic_bits, semantic_vocab, acoustic_vocab)
    if packet.kind is PacketKind.TOKENS:
        _check_ranges(packet.ids, widths[2:], packet.first_frame)
        if packet_size(packet.n_frames, *widths[:2]) > MAX_PACKET_BYTES:
            raise BitstreamError(
                f"{packet.n_frames} frames of {widths[0] + widths[1]} bits exceed "
                f"{MAX_PACKET_BYTES} bytes per packet"
            )
        payload = pack_fields(packet.ids, widths[:2])
    else:
        payload = _END_PAYLOAD.pack(packet.n_samples)
    header = PACKET_HEADER.pack(packet.kind, packet.seq, packet.first_frame, packet.n_frames)
    body = header + payload
    return body + _CRC.pack(zlib.crc32(body))


def decode_packet(
    data,
    semantic_bits: int,
    acoustic_bits: int,
    *,
    semantic_vocab: int | None = None,
    acoustic_vocab: int | None = None,
) -> Packet:
    """Parse and validate one packet (inverse of :func:`encode_packet`).

    Args:
        data: bytes-like, exactly one packet.
        semantic_bits, acoustic_bits: id widths the stream was made with.
        semantic_vocab, acoustic_vocab: vocab sizes for the id range check; default
            ``2**bits`` (for a non-power-of-two vocab pass it, or out-of-range ids slip through).

    Raises:
        BitstreamError: too short or long, CRC mismatch, unknown kind, frame count inconsistent
            with the payload length, non-zero padding, or an id out of range.
    """
    widths = _widths(semantic_bits, acoustic_bits, semantic_vocab, acoustic_vocab)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        # bytes(5) would silently make five zero bytes out of an int
        raise BitstreamError(f"packet data must be bytes-like, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < PACKET_OVERHEAD:
        raise BitstreamError(
            f"packet too short: {len(data)} bytes, the minimum is {PACKET_OVERHEAD}"
        )
    if len(data) > MAX_PACKET_BYTES:
        raise BitstreamError(
            f"packet too long: {len(data)} bytes, the maximum is {MAX_PACKET_BYTES}"
        )
    (crc,) = _CRC.unpack_from(data, len(data) - _CRC.size)
    if zlib.crc32(memoryview(data)[: -_CRC.size]) != crc:
        raise BitstreamError("packet CRC mismatch (corrupted packet)")
    kind, seq, first, n = PACKET_HEADER.unpack_from(data)
    payload = memoryview(data)[PACKET_HEADER.size : -_CRC.size]
    if kind == PacketKind.TOKENS:
        if n == 0:
            raise BitstreamError("TOKENS packet with a frame count of 0")
        expected = packed_size(n, widths[0] + widths[1])
        if len(payload) != expected:
            raise BitstreamError(
                f"TOKENS packet of {n} frames needs {expected} payload bytes, has {len(payload)}"
            )
        ids = unpack_fields(payload, widths[:2], n)
        _check_ranges(ids, widths[2:], first)
        return Packet.tokens(seq, first, ids)
    if kind == PacketKind.END:
        if n != 0:
            raise BitstreamError(f"END packet with a frame count of {n} (must be 0)")
        if len(payload) != _END_PAYLOAD.size:
            raise BitstreamError(
                f"END packet payload is {len(payload)} bytes, expected {_END_PAYLOAD.size}"
            )
        (n_samples,) = _END_PAYLOAD.unpack(payload)
        return Packet.end(seq, first, n_samples)
    raise BitstreamError(f"unknown packet kind {kind}")


def _widths(sb, ab, sv, av) -> tuple[int, int, int, int]:
    """Validated ``(semantic_bits, acoustic_bits, semantic_vocab, acoustic_vocab)``."""
    out = []
    for bits, vocab, name in ((sb, sv, "semantic"), (ab, av, "acoustic")):
        bits = _check_int(bits, f"{name}_bits")
        if not 1 <= bits <= MAX_BITS:
            raise BitstreamError(f"{name}_bits must be in 1..{MAX_BITS}, got {bits}")
        if vocab is None:
            vocab = 1 << bits
        elif bits_for_vocab(vocab) > bits:
            raise BitstreamError(f"{name} vocab {vocab} does not fit in {bits} bits")
        out.append((bits, int(vocab)))
    return out[0][0], out[1][0], out[0][1], out[1][1]


def _check_ranges(ids: np.ndarray, vocabs: tuple[int, int], first_frame: int) -> None:
    """Every id in ``0 .. vocab - 1``; the message names the first bad frame."""
    if ids.shape[0] == 0:
        return
    for j, (name, vocab) in enumerate(zip(("semantic", "acoustic"), vocabs)):
        col = ids[:, j]
        if col.min() >= 0 and col.max() < vocab:  # the common case: two reductions, no mask
            continue
        i = int(np.flatnonzero((col < 0) | (col >= vocab))[0])
        raise BitstreamError(
            f"{name} id {int(col[i])} at frame {first_frame + i} is outside vocab {vocab}"
        )
