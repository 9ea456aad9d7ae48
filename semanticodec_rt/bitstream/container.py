"""The ``.scrt`` file: a metadata header followed by length-prefixed token packets.

Layout, integers big-endian:

=========== ====== ===================================================================
offset      bytes  field
=========== ====== ===================================================================
0           4      magic ``b"SCRT"``
4           1      format version u8 (this module writes and reads 1)
5           4      ``J`` u32: length of the JSON metadata (at most 65536)
9           J      UTF-8 JSON object, keys below (compact, sorted keys, ASCII only)
9+J         4      CRC32 (zlib) of bytes ``0 .. 9+J-1``
13+J        2+L    packet: ``L`` u16, then ``L`` bytes of one packet (see :mod:`.packet`)
...                more packets; sequence numbers 0, 1, 2, ...; frames contiguous from 0
end         2+23   the END packet (final sample count), then end of file
=========== ====== ===================================================================

The JSON keys and their checks are in :mod:`.info` (:class:`StreamInfo`).  ``n_frames`` and
``n_samples`` are ``null`` in a stream written live; its END packet supplies them.

The u16 length prefix lets the same packets travel over UDP unchanged and lets a reader skip
or bound every read; the packets carry their own CRC and sequence numbers, so a reader detects
corruption, truncation, reordering and gaps.  Nothing is ever unpickled or evaluated.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Iterator

import numpy as np

from .errors import BitstreamError
from .info import StreamInfo
from .packet import PACKET_OVERHEAD, Packet, PacketKind, decode_packet
from .packetizer import TokenPacketizer

__all__ = [
    "MAGIC",
    "FORMAT_VERSION",
    "PacketInfo",
    "ScrtWriter",
    "ScrtReader",
    "write_scrt",
    "read_scrt",
]

MAGIC = b"SCRT"
FORMAT_VERSION = 1
MAX_JSON_BYTES = 1 << 16  # a header is ~300 bytes; the cap bounds what a corrupt length allocates
_HEADER = struct.Struct("!4sBI")  # magic, version, JSON length
_CRC = struct.Struct("!I")
_LEN = struct.Struct("!H")
_U32 = 1 << 32


@dataclass(frozen=True)
class PacketInfo:
    """Where one packet sat in a file (returned by :func:`read_scrt`).

    Attributes:
        kind: packet kind.  seq: sequence number.  first_frame, n_frames: frames it carries.
        n_bytes: packet size without the 2-byte length prefix.  offset: file offset of the prefix.
    """

    kind: PacketKind
    seq: int
    first_frame: int
    n_frames: int
    n_bytes: int
    offset: int


class ScrtWriter:
    """Write a ``.scrt`` stream incrementally (while encoding).

    The header is written at construction; :meth:`write_frames` buffers frames and writes every
    full packet at once; :meth:`close` writes the last partial packet and the END packet.  Use as
    a context manager: leaving the block by an exception writes no END, so the unfinished file
    reads as truncated instead of passing for a complete one.

    Args:
        file_or_path: path (opened ``"wb"`` and closed by the writer) or a binary file object.
        info: stream metadata; ``n_frames`` / ``n_samples`` may be ``None`` (live), else the
            writer enforces them.

    Attributes:
        bytes_written: bytes handed to the file so far (header and length prefixes included).
    """

    def __init__(self, file_or_path, info: StreamInfo) -> None:
        if not isinstance(info, StreamInfo):
            raise BitstreamError(f"info must be a StreamInfo, got {type(info).__name__}")
        self.info = info
        self._f, self._owned = _open(file_or_path, "wb")
        self._packets = TokenPacketizer(info)
        self._closed = False
        self.bytes_written = 0
        self._write(_header_bytes(info))

    @property
    def frames_written(self) -> int:
        """Frames accepted so far (sent or buffered)."""
        return self._packets.frames + self._packets.n_pending

    def write_frames(self, ids) -> None:
        """Append token positions.

        Args:
            ids: ``[n, 2]`` integers (semantic, acoustic), in ``0 .. vocab - 1``; ``n`` may be 0.
        """
        self._check_open()
        ids = np.asarray(ids)
        if ids.size == 0:
            return
        if ids.ndim != 2 or ids.shape[1] != 2 or ids.dtype.kind not in "iu":
            raise BitstreamError(
                f"ids must be an integer [n, 2] array, got {ids.dtype} {tuple(ids.shape)}"
            )
        limit = _U32 - 1 if self.info.n_frames is None else self.info.n_frames
        if self.frames_written + len(ids) > limit:
            raise BitstreamError(
                f"{self.frames_written + len(ids)} frames exceed the stream's {limit}"
            )
        # Check the ranges now, so the error points at this call rather than a later flush.
        for j, (name, vocab) in enumerate((("semantic", self.info.semantic_vocab),
                                           ("acoustic", self.info.acoustic_vocab))):
            lo, hi = int(ids[:, j].min()), int(ids[:, j].max())
            if lo < 0 or hi >= vocab:
                raise BitstreamError(f"{name} id {lo if lo < 0 else hi} is outside vocab {vocab}")
        packets = self._packets.push(ids)
        if packets:
            self._write(b"".join(_LEN.pack(len(p.data)) + p.data for p in packets))
            self._flush()

    def close(self, n_samples: int | None = None) -> None:
        """Write the remaining frames and the END packet; close the file if the writer opened it.

        Args:
            n_samples: final audio length in samples; defaults to ``info.n_samples`` (and must
                agree with it when both are given).
        """
        self._check_open()
        if n_samples is None:
            n_samples = self.info.n_samples
        if n_samples is None:
            raise BitstreamError("close() needs n_samples (the header did not give it)")
        if self.info.n_samples is not None and n_samples != self.info.n_samples:
            raise BitstreamError(
                f"n_samples {n_samples} differs from the header's {self.info.n_samples}"
            )
        if self.info.n_frames is not None and self.frames_written != self.info.n_frames:
            raise BitstreamError(
                f"{self.frames_written} frames written, the header declares {self.info.n_frames}"
            )
        packets = [p.data for p in self._packets.flush()] + [self._packets.end(n_samples)]
        self._write(b"".join(_LEN.pack(len(p)) + p for p in packets))
        self._flush()
        self._closed = True
        if self._owned:
            self._f.close()

    def abort(self) -> None:
        """Stop without an END packet (the output then reads as truncated)."""
        if not self._closed:
            self._closed = True
            if self._owned:
                self._f.close()

    def __enter__(self) -> "ScrtWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and not self._closed:
            self.close()
        else:
            self.abort()

    def _write(self, data: bytes) -> None:
        self._f.write(data)
        self.bytes_written += len(data)

    def _flush(self) -> None:
        # A live consumer (pipe, socket file) should see whole packets as soon as they exist.
        flush = getattr(self._f, "flush", None)
        if flush is not None:
            flush()

    def _check_open(self) -> None:
        if self._closed:
            raise BitstreamError("the ScrtWriter is closed")


class ScrtReader:
    """Read a ``.scrt`` stream packet by packet.

    The header is read and validated at construction (``self.info``; ``n_frames`` /
    ``n_samples`` are ``None`` for a stream written live).  Iterating yields each
    :class:`Packet` (TOKENS ..., END) after checking its CRC, sequence number, frame continuity
    and totals; after END the stream must end.  Every problem is a :class:`BitstreamError`.

    Args:
        file_or_path: path, binary file object, or bytes-like holding a whole stream.
    """

    def __init__(self, file_or_path) -> None:
        self._f, self._owned = _open(file_or_path, "rb")
        self._offset = 0
        self._started = False
        self.packets: list[PacketInfo] = []
        self.end: Packet | None = None
        try:
            self.info = self._read_header()
        except BaseException:
            self.close()
            raise

    def __iter__(self) -> Iterator[Packet]:
        if self._started:
            raise BitstreamError("a ScrtReader can be iterated only once")
        self._started = True
        return self._packets()

    def close(self) -> None:
        if self._owned:
            self._f.close()

    def __enter__(self) -> "ScrtReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _read_header(self) -> StreamInfo:
        head = self._read(_HEADER.size, "header")
        magic, version, json_len = _HEADER.unpack(head)
        if magic != MAGIC:
            raise BitstreamError(f"not a .scrt stream: magic {magic!r}, expected {MAGIC!r}")
        if version != FORMAT_VERSION:
            raise BitstreamError(
                f"unsupported .scrt format version {version}; this reader supports version "
                f"{FORMAT_VERSION}"
            )
        if json_len > MAX_JSON_BYTES:
            raise BitstreamError(
                f"header metadata length {json_len} exceeds {MAX_JSON_BYTES} bytes"
            )
        raw = self._read(json_len, "header metadata")
        (crc,) = _CRC.unpack(self._read(_CRC.size, "header CRC"))
        if zlib.crc32(head + raw) != crc:
            raise BitstreamError("header CRC mismatch (corrupted header)")
        try:
            meta = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except BitstreamError:
            raise
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            # ValueError covers JSONDecodeError and over-long integer literals.
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise BitstreamError(f"header metadata is not valid JSON: {msg}") from None
        return StreamInfo.from_json_dict(meta)

    def _packets(self) -> Iterator[Packet]:
        info = self.info
        bits = (info.semantic_bits, info.acoustic_bits)
        vocabs = {"semantic_vocab": info.semantic_vocab, "acoustic_vocab": info.acoustic_vocab}
        seq, frame = 0, 0
        try:
            while True:
                offset = self._offset
                prefix = self._read(_LEN.size, "packet length", eof_ok=True)
                if not prefix:
                    raise BitstreamError(
                        f"truncated stream: no END packet after {len(self.packets)} packets "
                        f"({frame} frames)"
                    )
                (length,) = _LEN.unpack(prefix)
                if length < PACKET_OVERHEAD:
                    raise BitstreamError(
                        f"packet {seq}: length {length} is below the minimum {PACKET_OVERHEAD}"
                    )
                data = self._read(length, f"packet {seq}")
                try:
                    pkt = decode_packet(data, *bits, **vocabs)
                except BitstreamError as e:
                    raise BitstreamError(f"packet {seq}: {e}") from None
                if pkt.seq != seq:
                    raise BitstreamError(
                        f"packet out of order: sequence number {pkt.seq}, expected {seq}"
                    )
                if pkt.first_frame != frame:
                    raise BitstreamError(
                        f"packet {seq} starts at frame {pkt.first_frame}, expected {frame} "
                        "(gap or overlap)"
                    )
                self.packets.append(PacketInfo(pkt.kind, pkt.seq, pkt.first_frame,
                                               pkt.n_frames, length, offset))
                if pkt.kind is PacketKind.END:
                    self._check_end(pkt, frame)
                    self.end = pkt
                    yield pkt
                    return
                if pkt.n_frames > info.frames_per_packet:
                    raise BitstreamError(
                        f"packet {seq} holds {pkt.n_frames} frames, the header allows "
                        f"{info.frames_per_packet}"
                    )
                frame += pkt.n_frames
                if info.n_frames is not None and frame > info.n_frames:
                    raise BitstreamError(
                        f"stream holds more than the header's {info.n_frames} frames"
                    )
                seq = (seq + 1) % _U32
                yield pkt
        finally:
            if self._owned:
                self._f.close()

    def _check_end(self, end: Packet, frames: int) -> None:
        info = self.info
        if info.n_frames is not None and frames != info.n_frames:
            raise BitstreamError(
                f"stream holds {frames} frames, the header declares {info.n_frames}"
            )
        if info.n_samples is not None and end.n_samples != info.n_samples:
            raise BitstreamError(
                f"END packet says {end.n_samples} samples, the header declares {info.n_samples}"
            )
        if self._f.read(1):
            raise BitstreamError("trailing bytes after the END packet")

    def _read(self, n: int, what: str, eof_ok: bool = False) -> bytes:
        """Exactly ``n`` bytes (n <= 65536 everywhere, so a corrupt length cannot blow memory)."""
        chunks, got = [], 0
        while got < n:
            chunk = self._f.read(n - got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        data = b"".join(chunks)
        if len(data) < n and not (eof_ok and not data):
            raise BitstreamError(f"truncated stream: {what} needs {n} bytes, {len(data)} left")
        self._offset += len(data)
        return data


def write_scrt(
    file_or_path, info: StreamInfo, tokens, frames_per_packet: int | None = None
) -> StreamInfo:
    """Write a whole stream.

    Args:
        file_or_path: path or binary file object.
        info: metadata; ``n_samples`` is required, ``n_frames`` defaults to ``len(tokens)``.
        tokens: ``[L, 2]`` integer ids (semantic, acoustic).
        frames_per_packet: overrides ``info.frames_per_packet``.

    Returns:
        the :class:`StreamInfo` written in the header.
    """
    tokens = np.asarray(tokens)
    if tokens.size == 0:
        tokens = tokens.reshape(0, 2)
    if tokens.ndim != 2 or tokens.shape[1] != 2:
        raise BitstreamError(f"tokens must be [L, 2], got shape {tuple(tokens.shape)}")
    if info.n_samples is None:
        raise BitstreamError("write_scrt needs info.n_samples")
    changes = {}
    if info.n_frames is None:
        changes["n_frames"] = len(tokens)
    if frames_per_packet is not None:
        changes["frames_per_packet"] = frames_per_packet
    info = dataclasses.replace(info, **changes) if changes else info
    with ScrtWriter(file_or_path, info) as w:
        w.write_frames(tokens)
    return info


def read_scrt(file_or_path) -> tuple[StreamInfo, np.ndarray, list[PacketInfo]]:
    """Read and validate a whole stream.

    Args:
        file_or_path: path, binary file object, or bytes-like.

    Returns:
        ``(info, tokens, packets)``: the metadata with ``n_frames``/``n_samples`` filled in from
        the END packet, ``[L, 2]`` int64 ids (semantic, acoustic), one :class:`PacketInfo` per
        packet (END included).

    Raises:
        BitstreamError: anything malformed, with a one-line message.
    """
    reader = ScrtReader(file_or_path)
    chunks = [pkt.ids for pkt in reader]
    tokens = np.concatenate(chunks) if chunks else np.zeros((0, 2), np.int64)
    info = dataclasses.replace(
        reader.info, n_frames=reader.end.first_frame, n_samples=reader.end.n_samples
    )
    return info, tokens, reader.packets


def _header_bytes(info: StreamInfo) -> bytes:
    # Compact, sorted and ASCII so that equal metadata always gives identical bytes.
    raw = json.dumps(info.to_json_dict(), sort_keys=True, separators=(",", ":")).encode("ascii")
    if len(raw) > MAX_JSON_BYTES:
        raise BitstreamError(f"header metadata is {len(raw)} bytes, the limit is {MAX_JSON_BYTES}")
    head = _HEADER.pack(MAGIC, FORMAT_VERSION, len(raw)) + raw
    return head + _CRC.pack(zlib.crc32(head))


def _open(file_or_path, mode: str) -> tuple[BinaryIO, bool]:
    """``(file, owned)``; bytes-like input is read from memory (reading only)."""
    if isinstance(file_or_path, (str, os.PathLike)):
        return open(file_or_path, mode), True
    if isinstance(file_or_path, (bytes, bytearray, memoryview)):
        if "r" not in mode:
            raise BitstreamError("cannot write into a bytes object; pass a file or io.BytesIO")
        return io.BytesIO(bytes(file_or_path)), False
    needed = "read" if "r" in mode else "write"
    if not hasattr(file_or_path, needed):
        raise BitstreamError(
            f"expected a path or a binary file object, got {type(file_or_path).__name__}"
        )
    return file_or_path, False


def _reject_constant(name: str):
    raise BitstreamError(f"header metadata contains the non-JSON constant {name}")
