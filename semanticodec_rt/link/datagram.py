"""UDP datagrams of the voice link: a 5-byte link header, a body, and an optional HMAC tag.

Layout, integers big-endian:

====== ====== ==============================================================================
offset bytes  field
====== ====== ==============================================================================
0      1      ``flags``: bits 7..4 link version (1), bit 3 authenticated, bits 2..0 kind
              (1 = DATA, 2 = HELLO, 3 = ACCEPT; others rejected)
1      4      ``session`` u32: random per sender run; ties DATA to the HELLO that names the model
5      B      body: DATA = one bitstream packet (TOKENS or END, :mod:`..bitstream.packet`, with
              its own CRC32); HELLO = the stream description (:mod:`.hello`); ACCEPT = the
              receiver's answer on a keyed link (:mod:`.handshake`)
5+B    16     if authenticated: HMAC-SHA256(key, bytes 0 .. 5+B-1) truncated to 16 bytes
====== ====== ==============================================================================

So a DATA datagram costs 5 bytes of link header, the packet's 15 bytes of framing and, with a
key, a 16-byte tag on top of the id bits; UDP and IPv4 add 28 more on the wire
(:data:`UDP_IP_OVERHEAD`).  Nothing is padded to a block size: the payload stays bit-packed.

A datagram longer than :data:`MAX_DATAGRAM` (the Ethernet payload minus IPv4 and UDP headers, so
no IP fragmentation) is refused, by the sender when building it and by the receiver on arrival.
Every refusal is a :class:`DatagramError` whose ``reason`` names the receiver's counter.

On a keyed link HELLO and ACCEPT are tagged with the pre-shared key and DATA with the session
key derived from it (:mod:`.handshake`); :func:`peek_header` reads kind and session first, so a
receiver can pick the key before checking the tag.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
import struct
from dataclasses import dataclass

from ..bitstream import BitstreamError

__all__ = [
    "LINK_VERSION",
    "LINK_HEADER",
    "TAG_BYTES",
    "UDP_IP_OVERHEAD",
    "MAX_DATAGRAM",
    "MIN_KEY_BYTES",
    "DatagramKind",
    "DatagramError",
    "Datagram",
    "encode_datagram",
    "decode_datagram",
    "peek_header",
    "load_key",
]

LINK_VERSION = 1
LINK_HEADER = struct.Struct("!BI")  # flags, session: 5 bytes
TAG_BYTES = 16  # HMAC-SHA256 truncated: 128 bits of forgery resistance is plenty for voice
UDP_IP_OVERHEAD = 28  # IPv4 header 20 + UDP header 8, per datagram
MAX_DATAGRAM = 1500 - UDP_IP_OVERHEAD  # 1472: one Ethernet frame, never fragmented
MIN_KEY_BYTES = 16
_AUTH_FLAG = 0x08
_KIND_MASK = 0x07


class DatagramKind(enum.IntEnum):
    DATA = 1
    HELLO = 2
    ACCEPT = 3


class DatagramError(BitstreamError):
    """A datagram the receiver refuses; ``reason`` is the stats counter it is counted under."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Datagram:
    """A datagram whose header (and tag, if any) checked out; the body is not parsed yet.

    Attributes:
        kind: DATA or HELLO.  session: the sender's session id (u32).
        body: the bitstream packet (DATA) or the HELLO body.
        authenticated: the HMAC tag was present and verified.
    """

    kind: DatagramKind
    session: int
    body: bytes
    authenticated: bool


def encode_datagram(kind: DatagramKind, session: int, body: bytes, key: bytes | None = None) -> bytes:
    """Header + ``body`` (+ tag when ``key`` is given).

    Raises:
        BitstreamError: the datagram would exceed :data:`MAX_DATAGRAM` bytes.
    """
    flags = LINK_VERSION << 4 | (_AUTH_FLAG if key is not None else 0) | DatagramKind(kind)
    data = LINK_HEADER.pack(flags, session) + body
    if key is not None:
        data += _tag(key, data)
    if len(data) > MAX_DATAGRAM:
        raise BitstreamError(
            f"a {len(data)}-byte datagram exceeds {MAX_DATAGRAM} bytes (use fewer frames per packet)"
        )
    return data


def decode_datagram(data: bytes, key: bytes | None = None) -> Datagram:
    """Check the header and the tag of one received datagram.

    A receiver with a key accepts only datagrams tagged with that key; one without a key refuses
    tagged datagrams too (it cannot tell a forged tag from a good one), with reason ``auth``.

    Raises:
        DatagramError: reason ``oversized``, ``garbage`` (too short, unknown version or kind) or
            ``auth`` (tag missing, unexpected or wrong).
    """
    kind, session, tagged = peek_header(data)
    if tagged != (key is not None):
        raise DatagramError(
            "auth", "tagged datagram but no key given" if tagged else "untagged datagram, a key is required"
        )
    if tagged:
        if len(data) <= LINK_HEADER.size + TAG_BYTES:
            raise DatagramError("garbage", f"{len(data)}-byte datagram is too short for its tag")
        signed, tag = data[:-TAG_BYTES], data[-TAG_BYTES:]
        if not hmac.compare_digest(tag, _tag(key, signed)):
            raise DatagramError("auth", "HMAC tag mismatch (wrong key or altered datagram)")
        data = signed
    return Datagram(kind, session, bytes(data[LINK_HEADER.size :]), tagged)


def peek_header(data: bytes) -> tuple[DatagramKind, int, bool]:
    """``(kind, session, tagged)`` of a datagram, nothing verified but the header's form.

    Raises:
        DatagramError: reason ``oversized`` or ``garbage``.
    """
    if len(data) > MAX_DATAGRAM:
        raise DatagramError("oversized", f"{len(data)}-byte datagram exceeds {MAX_DATAGRAM} bytes")
    if len(data) <= LINK_HEADER.size:
        raise DatagramError("garbage", f"{len(data)}-byte datagram is shorter than a link header")
    flags, session = LINK_HEADER.unpack_from(data)
    if flags >> 4 != LINK_VERSION:
        raise DatagramError("garbage", f"link version {flags >> 4}, expected {LINK_VERSION}")
    try:
        kind = DatagramKind(flags & _KIND_MASK)
    except ValueError:
        raise DatagramError("garbage", f"unknown datagram kind {flags & _KIND_MASK}") from None
    return kind, session, bool(flags & _AUTH_FLAG)


def load_key(path: str | os.PathLike) -> bytes:
    """The pre-shared key: the file's bytes with surrounding whitespace stripped (>= 16 bytes).

    Any bytes work; ``head -c 32 /dev/urandom | base64 > link.key`` makes a good one.
    """
    with open(path, "rb") as f:
        key = f.read(1 << 16).strip()
    if len(key) < MIN_KEY_BYTES:
        raise BitstreamError(f"{path}: the key has {len(key)} bytes, at least {MIN_KEY_BYTES} are needed")
    return key


def _tag(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()[:TAG_BYTES]
