"""The HELLO body: which model made the tokens, how they are laid out, and which HELLO this is.

Sent 3 times at the start of a session and then every few seconds (the receiver may start late
or lose the first ones); the receiver decodes nothing of a session before its HELLO, and refuses
a session whose model is not its own (:class:`~semanticodec_rt.bitstream.ModelMismatchError`).
Binary, not the ``.scrt`` JSON header, because it repeats on a ~1 kbps link: ~80 bytes.

HELLOs are numbered (``seq``, from 0 in each session) so that a receiver can refuse a repeated
or old one like a repeated DATA packet, and carry the sender's nonce of the keyed handshake
(:mod:`.handshake`; random also on unkeyed links, where nothing uses it).

Layout, integers big-endian:

====== ====== =================================================================
offset bytes  field
====== ====== =================================================================
0      1      HELLO version (3)
1      4      ``seq`` u32: this HELLO's number in the session
5      16     sender nonce
21     4      ``token_rate`` u32 (ids per second, both streams)
25     4      ``semantic_vocab`` u32
29     8      ``acoustic_vocab`` u64 (version 1: u32; the speech route's composite ids need 2^40)
37     4      ``sample_rate`` u32 (Hz)
41     2      ``frames_per_packet`` u16 (most frames in one TOKENS packet)
43     1+M    model sha: length u8, ASCII
44+M   1+C    config name: length u8, UTF-8
45+M+C 4      CRC32 (zlib) of everything before
====== ====== =================================================================
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from ..bitstream import BitstreamError, StreamInfo
from .datagram import DatagramError
from .handshake import NONCE_BYTES

__all__ = ["HELLO_VERSION", "Hello", "encode_hello", "decode_hello"]

HELLO_VERSION = 3
_FIXED = struct.Struct(f"!BI{NONCE_BYTES}sIIQIH")
_CRC = struct.Struct("!I")


@dataclass(frozen=True)
class Hello:
    """A parsed HELLO: the stream (``n_samples``/``n_frames`` unknown), its number, the nonce."""

    info: StreamInfo
    seq: int
    nonce: bytes


def encode_hello(info: StreamInfo, seq: int = 0, nonce: bytes = bytes(NONCE_BYTES)) -> bytes:
    """The HELLO body for a stream described by ``info`` (its totals are not sent)."""
    names = b""
    for text in (info.model, info.config):
        raw = text.encode("utf-8")[:255]
        names += bytes([len(raw)]) + raw
    body = _FIXED.pack(HELLO_VERSION, seq, nonce, info.token_rate, info.semantic_vocab, info.acoustic_vocab,
                       info.sample_rate, info.frames_per_packet) + names
    return body + _CRC.pack(zlib.crc32(body))


def decode_hello(body: bytes) -> Hello:
    """Parse a HELLO body.

    Raises:
        DatagramError: reason ``truncated``, ``bad_crc`` or ``malformed`` (unknown version, bad
            lengths or out-of-range fields).
    """
    if len(body) < _FIXED.size + 2 + _CRC.size:
        raise DatagramError("truncated", f"HELLO of {len(body)} bytes is too short")
    (crc,) = _CRC.unpack_from(body, len(body) - _CRC.size)
    body = body[: -_CRC.size]
    if zlib.crc32(body) != crc:
        raise DatagramError("bad_crc", "HELLO CRC mismatch (corrupted)")
    try:
        return _parse(body)
    except BitstreamError as e:  # StreamInfo's range checks
        raise DatagramError("malformed", f"HELLO: {e}") from None


def _parse(body: bytes) -> Hello:
    version, seq, nonce, rate, sem, ac, sr, fpp = _FIXED.unpack_from(body)
    if version != HELLO_VERSION:
        raise BitstreamError(f"HELLO version {version}, expected {HELLO_VERSION}")
    texts, pos = [], _FIXED.size
    for _ in range(2):
        n = body[pos] if pos < len(body) else 0
        raw = body[pos + 1 : pos + 1 + n]
        if n == 0 or len(raw) != n:
            raise BitstreamError("HELLO names are truncated or empty")
        try:
            texts.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise BitstreamError("HELLO names are not UTF-8") from None
        pos += 1 + n
    if pos != len(body):
        raise BitstreamError(f"HELLO has {len(body) - pos} trailing bytes")
    info = StreamInfo(model=texts[0], config=texts[1], token_rate=rate, semantic_vocab=sem,
                      acoustic_vocab=ac, sample_rate=sr, frames_per_packet=fpp)
    return Hello(info, seq, nonce)
