"""Unsigned LEB128 varints, the integers of the version 2 ``.scrt`` header and chunk records.

A value is written 7 bits at a time, least significant group first; every byte but the last has
its top bit set (``100`` -> ``0x64``, ``16000`` -> ``0x80 0x7d``, ``300`` -> ``0xac 0x02``).
Only the shortest form is valid (no trailing ``0x00`` group), so every value has exactly one
encoding; at most :data:`MAX_VARINT_BYTES` bytes (``2**64 - 1``).
"""

from __future__ import annotations

from .errors import BitstreamError

__all__ = ["MAX_VARINT_BYTES", "encode_uvarint", "decode_uvarint"]

MAX_VARINT_BYTES = 10  # 10 x 7 bits cover a u64


def encode_uvarint(value: int) -> bytes:
    """``value`` (0 .. 2**64 - 1) as its shortest LEB128 bytes."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 64:
        raise BitstreamError(f"a varint holds an integer in 0..2**64-1, got {value!r}")
    out = bytearray()
    while value >= 0x80:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_uvarint(read_byte, what: str, hi: int = (1 << 64) - 1) -> int:
    """Read one varint, a byte at a time from ``read_byte()`` (an ``int`` 0..255 per call).

    Raises:
        BitstreamError: a non-shortest form, more than 10 bytes, or a value above ``hi``; the
            message names ``what``.
    """
    value = 0
    for i in range(MAX_VARINT_BYTES):
        b = read_byte()
        value |= (b & 0x7F) << (7 * i)
        if b < 0x80:
            if b == 0 and i > 0:
                raise BitstreamError(f"{what}: varint is not in its shortest form")
            if value > hi:
                raise BitstreamError(f"{what} {_short(value)} exceeds {hi}")
            return value
    raise BitstreamError(f"{what}: varint longer than {MAX_VARINT_BYTES} bytes")


def _short(value: int) -> str:
    return str(value) if value < 1 << 64 else "a huge number"
