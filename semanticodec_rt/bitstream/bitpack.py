"""LSB-first packing of unsigned integers at fixed bit widths (pure numpy).

Values are laid end to end in one bit stream; stream bit ``k`` is bit ``k % 8`` of byte
``k // 8`` (least significant bit first, as in encodec's ``BitPacker``), and each value is written
least significant bit first.  Example, widths 3 then 5, values ``a = 0b101`` and ``b = 0b10011``:

====== ================================= =========================================
byte   bits 7..0                         content
====== ================================= =========================================
0      ``b4 b3 b2 b1 b0 a2 a1 a0``       ``1 0 0 1 1 1 0 1`` = ``0x9d``
====== ================================= =========================================

The last byte is padded with zero bits; the reader requires the padding to be zero and the byte
count to be exact, so every value sequence has exactly one encoding (decode then encode gives
identical bytes).  Packing per-position *fields* ``[n, k]`` at widths ``(w_0, .., w_{k-1})`` is
the same stream with the fields of a position interleaved: ``f[0,0] f[0,1] .. f[1,0] ..``.

No Python loop runs per value or per bit: numpy's ``unpackbits``/``packbits`` turn each value's
little-endian bytes into bit rows and back, about 20 ns per 32-bit id.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .errors import BitstreamError

__all__ = [
    "MAX_BITS",
    "bits_for_vocab",
    "packed_size",
    "pack_bits",
    "unpack_bits",
    "pack_fields",
    "unpack_fields",
]

# Widths are 1..48: 32 covers every single-codebook vocab; the speech route's acoustic id is the
# composite of 4 residual-VQ stages of 10 bits (40 bits), which needs more.
MAX_BITS = 48


def bits_for_vocab(vocab: int) -> int:
    """Bits per id for a vocabulary of ``vocab`` symbols: ``ceil(log2(vocab))``.

    Exact ``log2`` for powers of two (32768 -> 15, 8192 -> 13); 1000 -> 10.
    """
    vocab = _check_int(vocab, "vocab")
    if not 2 <= vocab <= 1 << MAX_BITS:
        raise BitstreamError(f"vocab must be in 2..2**{MAX_BITS}, got {vocab}")
    # (v - 1).bit_length() is ceil(log2(v)) without floating point rounding.
    return (vocab - 1).bit_length()


def packed_size(count: int, bits: int) -> int:
    """Bytes that ``count`` values of ``bits`` total bits each occupy (last byte zero-padded)."""
    return (count * bits + 7) // 8


def pack_bits(values, bits: int) -> bytes:
    """Pack unsigned integers at a fixed width.

    Args:
        values: ``[n]`` integer array (or sequence); every value in ``0 .. 2**bits - 1``.
        bits: width per value, 1..48.

    Returns:
        ``packed_size(n, bits)`` bytes.

    Raises:
        BitstreamError: bad width, non-integer dtype, not 1-D, or a value out of range.
    """
    arr = _as_int_array(values, ndim=1, name="values")
    return pack_fields(arr[:, None], (bits,))


def unpack_bits(data, bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`.

    Args:
        data: bytes-like of exactly ``packed_size(count, bits)`` bytes.
        bits: width per value, 1..48.
        count: number of values.

    Returns:
        ``[count]`` int64 array.

    Raises:
        BitstreamError: wrong byte count or non-zero padding bits.
    """
    return unpack_fields(data, (bits,), count)[:, 0]


def pack_fields(fields, widths: Sequence[int]) -> bytes:
    """Pack ``[n, k]`` integers, field ``j`` at ``widths[j]`` bits, row after row.

    Args:
        fields: ``[n, k]`` integer array; column ``j`` in ``0 .. 2**widths[j] - 1``.
        widths: ``k`` widths, each 1..48.

    Returns:
        ``packed_size(n, sum(widths))`` bytes.
    """
    widths = _check_widths(widths)
    arr = _as_int_array(fields, ndim=2, name="fields")
    n, k = arr.shape
    if k != len(widths):
        raise BitstreamError(f"fields have {k} columns but {len(widths)} widths were given")
    if n == 0:
        return b""
    for j, w in enumerate(widths):
        col = arr[:, j]
        lo, hi = int(col.min()), int(col.max())
        if lo < 0 or hi >= 1 << w:
            bad = lo if lo < 0 else hi
            raise BitstreamError(f"value {bad} in field {j} does not fit in {w} bits")
    # Range-checked, so the cast to little-endian uint64 is exact; its bytes in memory order are
    # the value's bits LSB first once unpacked with bitorder="little".
    nbytes = (max(widths) + 7) // 8  # higher bytes are all zero: skip unpacking them
    raw = arr.astype("<u8").view(np.uint8).reshape(n, k, 8)[:, :, :nbytes]
    bits = np.unpackbits(raw, axis=2, bitorder="little")  # [n, k, 8 * nbytes]
    if len(set(widths)) == 1:
        rows = bits[:, :, : widths[0]].reshape(n, -1)
    else:
        rows = np.concatenate([bits[:, j, :w] for j, w in enumerate(widths)], axis=1)
    return np.packbits(rows.reshape(-1), bitorder="little").tobytes()


def unpack_fields(data, widths: Sequence[int], count: int) -> np.ndarray:
    """Inverse of :func:`pack_fields`.

    Args:
        data: bytes-like of exactly ``packed_size(count, sum(widths))`` bytes.
        widths: ``k`` widths, each 1..48.
        count: number of rows ``n``.

    Returns:
        ``[count, k]`` int64 array.

    Raises:
        BitstreamError: wrong byte count or non-zero padding bits.
    """
    widths = _check_widths(widths)
    count = _check_int(count, "count")
    if count < 0:
        raise BitstreamError(f"count must be >= 0, got {count}")
    row_bits = sum(widths)
    buf = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    expected = packed_size(count, row_bits)
    if len(buf) != expected:
        raise BitstreamError(
            f"{count} x {row_bits}-bit rows need {expected} bytes, got {len(buf)}"
        )
    k = len(widths)
    if count == 0:
        return np.zeros((0, k), dtype=np.int64)
    stream = np.unpackbits(np.frombuffer(buf, dtype=np.uint8), bitorder="little")
    used = count * row_bits
    if stream[used:].any():
        raise BitstreamError("non-zero padding bits after the last value")
    rows = stream[:used].reshape(count, row_bits)
    # Scatter each field's bits into a zero 64-bit row, then let packbits rebuild the
    # little-endian bytes of a uint64.
    wide = np.zeros((count, k, 64), dtype=np.uint8)
    if len(set(widths)) == 1:
        wide[:, :, : widths[0]] = rows.reshape(count, k, widths[0])
    else:
        start = 0
        for j, w in enumerate(widths):
            wide[:, j, :w] = rows[:, start : start + w]
            start += w
    words = np.packbits(wide, axis=2, bitorder="little")  # [count, k, 8]
    return np.ascontiguousarray(words).view("<u8")[:, :, 0].astype(np.int64)


def _check_int(x, name: str) -> int:
    # bool is an int subclass; a width or count of True is a bug, not a 1.
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
        raise BitstreamError(f"{name} must be an integer, got {type(x).__name__}")
    return int(x)


def _check_widths(widths: Sequence[int]) -> tuple[int, ...]:
    if isinstance(widths, (int, np.integer)):
        widths = (widths,)
    out = tuple(_check_int(w, "bits") for w in widths)
    if not out:
        raise BitstreamError("at least one width is needed")
    for w in out:
        if not 1 <= w <= MAX_BITS:
            raise BitstreamError(f"bits must be in 1..{MAX_BITS}, got {w}")
    return out


def _as_int_array(values, ndim: int, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.size == 0 and arr.dtype.kind == "f":
        # np.asarray([]) is float64; an empty sequence is a fine empty id list.
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise BitstreamError(f"{name} must be integers, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise BitstreamError(f"{name} must be {ndim}-D, got shape {tuple(arr.shape)}")
    return arr
