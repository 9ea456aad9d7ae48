"""The ``.scrt`` file: a header, the token frames, an end record.  Two format versions.

**Version 2** (written by default) stores the ids in large CRC-checked chunks behind a compact
binary header, so a file costs little more than its payload (a 10 s clip of the shipped model,
1.30 kbit/s of ids, is a 1744-byte file: 1.40 kbit/s).  Integers marked *v* are unsigned LEB128
varints in their shortest form (:mod:`.varint`), fixed-width integers are big-endian:

=========== ====== ===================================================================
field       bytes  content
=========== ====== ===================================================================
magic       4      ``b"SCRT"``
version     1      u8 ``2``
flags       1      bit 0: ``n_samples`` follows; bit 1: ``n_frames`` follows; bit 2: the
                   model sha is stored as raw bytes (it is lowercase hex); bits 3-7 zero
token_rate  v      ids per second, both streams (100 / 50 / 25)
sem. vocab  v      semantic vocab size (ids ``0 .. vocab - 1``, ``ceil(log2)`` bits each)
ac. vocab   v      acoustic vocab size
sample_rate v      Hz
fpp         v      ``frames_per_packet``: the stream's packet size (what a link sends)
n_samples   v      only with flag bit 0 (a stream written live leaves it to the end record)
n_frames    v      only with flag bit 1
model       v + M  byte count ``M``, then the model sha: its bytes (flag bit 2, 8 bytes for the
                   16-hex sha) or UTF-8 text
config      v + C  byte count, config name in UTF-8 (a label for messages)
version     v + V  byte count, version of the package that wrote the file, UTF-8
header CRC  4      CRC32 (zlib) of every header byte before it
chunk       ...    any number of chunk records (below)
end         ...    the end record, then end of file
=========== ====== ===================================================================

A chunk record is ``n`` (v, 1 ..; at most :data:`MAX_CHUNK_BYTES` of ids), the ``n`` frames'
ids bit-packed LSB first exactly as in a packet (:mod:`.bitpack`, per frame ``semantic |
acoustic``, ``ceil(n * frame_bits / 8)`` bytes, zero padding), and a CRC32.  Every chunk but
the last holds a whole number of packets (``n`` a multiple of ``frames_per_packet``), so a
reader cuts exactly the packets a link would send.  The end record is the byte ``0x00`` (a
frame count of 0), the total frame count (v), the sample count (v) and a CRC32.

The CRCs are chained: a record's CRC is ``zlib.crc32(record bytes before it, previous CRC)``,
the first chunk continuing from the header CRC.  So besides corruption the chain also catches
dropped, repeated, reordered or truncated records, without sequence numbers.  The writer cuts a
chunk every ~2 s of frames (:func:`default_chunk_frames`: whole packets and, where possible,
whole bytes of ids, so that only the last chunk has padding bits) and writes it as soon as it
is full.

**Version 1** (still read, and written with ``format_version=1``), integers big-endian:

=========== ====== ===================================================================
offset      bytes  field
=========== ====== ===================================================================
0           4      magic ``b"SCRT"``
4           1      format version u8 ``1``
5           4      ``J`` u32: length of the JSON metadata (at most 65536)
9           J      UTF-8 JSON object, keys in :mod:`.info` (compact, sorted keys, ASCII only)
9+J         4      CRC32 (zlib) of bytes ``0 .. 9+J-1``
13+J        2+L    packet: ``L`` u16, then ``L`` bytes of one packet (see :mod:`.packet`)
...                more packets; sequence numbers 0, 1, 2, ...; frames contiguous from 0
end         2+23   the END packet (final sample count), then end of file
=========== ====== ===================================================================

``n_frames`` and ``n_samples`` are ``null`` in a version 1 stream written live; its END packet
supplies them.  Whatever the version, :class:`ScrtReader` yields the same :class:`Packet` s
(TOKENS of ``frames_per_packet`` frames, the last one shorter, then END), every malformed input
is a :class:`BitstreamError`, and nothing is ever unpickled or evaluated.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import re
import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Iterator

import numpy as np

from .bitpack import _check_int, pack_fields, packed_size, unpack_fields
from .errors import BitstreamError
from .info import StreamInfo
from .packet import PACKET_OVERHEAD, Packet, PacketKind, _check_ranges, decode_packet
from .packetizer import TokenPacketizer
from .varint import decode_uvarint, encode_uvarint

__all__ = [
    "MAGIC",
    "FORMAT_VERSION",
    "SUPPORTED_VERSIONS",
    "MAX_CHUNK_BYTES",
    "PacketInfo",
    "ChunkInfo",
    "ScrtWriter",
    "ScrtReader",
    "write_scrt",
    "read_scrt",
    "default_chunk_frames",
]

MAGIC = b"SCRT"
FORMAT_VERSION = 2  # what the writer writes unless told otherwise
SUPPORTED_VERSIONS = (1, 2)
MAX_JSON_BYTES = 1 << 16  # a header is ~300 bytes; the cap bounds what a corrupt length allocates
MAX_CHUNK_BYTES = 1 << 20  # ids of one v2 chunk; bounds what a corrupt frame count allocates
MAX_TEXT_BYTES = 1024  # a v2 header string (StreamInfo allows 256 characters)
CHUNK_S = 2.0  # default chunk duration of a v2 file
_HEADER = struct.Struct("!4sBI")  # v1: magic, version, JSON length
_CRC = struct.Struct("!I")
_LEN = struct.Struct("!H")
_U32 = 1 << 32
_U64 = 1 << 64
_FLAG_N_SAMPLES, _FLAG_N_FRAMES, _FLAG_HEX_MODEL = 1, 2, 4
_HEX = re.compile(r"(?:[0-9a-f]{2})+")


@dataclass(frozen=True)
class PacketInfo:
    """Where one packet sat in a file (returned by :func:`read_scrt`).

    Attributes:
        kind: packet kind.  seq: sequence number.  first_frame, n_frames: frames it carries.
        n_bytes: version 1: packet size without the 2-byte length prefix.  Version 2 (no
            per-packet framing): the bytes holding its ids (neighbours share a byte when
            ``frames_per_packet * frame_bits`` is not a multiple of 8); END: the end record.
        offset: version 1: file offset of the length prefix.  Version 2: of its first id byte
            (END: of the end record).
    """

    kind: PacketKind
    seq: int
    first_frame: int
    n_frames: int
    n_bytes: int
    offset: int


@dataclass(frozen=True)
class ChunkInfo:
    """One record of token frames in a file (:attr:`ScrtReader.chunks`): a version 2 chunk, or a
    version 1 TOKENS packet.

    Attributes:
        first_frame, n_frames: the frames it holds.  offset: file offset of the record.
        n_bytes: the whole record (framing included).  payload_bytes: its packed ids.
    """

    first_frame: int
    n_frames: int
    offset: int
    n_bytes: int
    payload_bytes: int


def default_chunk_frames(info: StreamInfo) -> int:
    """Frames per chunk of a version 2 file: at least :data:`CHUNK_S` seconds (rounded up), a
    whole number of packets, and whole bytes of ids where that fits (then only the last chunk
    has padding bits).

    104 frames (2.08 s) at token rate 100 with 8 frames per packet; 52 at rate 50 with 4 per
    packet and 26-bit frames; 28 at rate 25 with 2 per packet and 26-bit frames.
    """
    fpp, bits = info.frames_per_packet, info.frame_bits
    unit = fpp * 8 // math.gcd(8, fpp * bits)  # the fewest whole packets that fill whole bytes
    if packed_size(unit, bits) > MAX_CHUNK_BYTES:
        unit = fpp
    most = max(1, MAX_CHUNK_BYTES * 8 // (unit * bits))
    return unit * min(most, max(1, math.ceil(CHUNK_S * info.frames_per_s / unit)))


class ScrtWriter:
    """Write a ``.scrt`` stream incrementally (while encoding).

    The header is written at construction; :meth:`write_frames` buffers frames and writes every
    full chunk (version 2) or packet (version 1) at once; :meth:`close` writes the rest and the
    end record.  Use as a context manager: leaving the block by an exception writes no end
    record, so the unfinished file reads as truncated instead of passing for a complete one.
    The bytes after the header do not depend on how the frames were split across calls, nor on
    whether the header gave the totals.

    Args:
        file_or_path: path (opened ``"wb"`` and closed by the writer) or a binary file object.
        info: stream metadata; ``n_frames`` / ``n_samples`` may be ``None`` (live), else the
            writer enforces them.
        chunk_frames: version 2: frames per chunk, a multiple of ``info.frames_per_packet``;
            default :func:`default_chunk_frames`.
        format_version: 2 (default) or 1 (the length-prefixed packets older readers expect).

    Attributes:
        bytes_written: bytes handed to the file so far (header and framing included).
        format_version, chunk_frames: as chosen (``chunk_frames`` is ``None`` for version 1).
    """

    def __init__(self, file_or_path, info: StreamInfo, *, chunk_frames: int | None = None,
                 format_version: int = FORMAT_VERSION) -> None:
        if not isinstance(info, StreamInfo):
            raise BitstreamError(f"info must be a StreamInfo, got {type(info).__name__}")
        if format_version not in SUPPORTED_VERSIONS:
            raise BitstreamError(f"cannot write .scrt format version {format_version!r}; "
                                 f"supported: {', '.join(map(str, SUPPORTED_VERSIONS))}")
        self.info = info
        self.format_version = format_version
        self.chunk_frames = None
        if format_version == 1:
            if chunk_frames is not None:
                raise BitstreamError("chunk_frames applies to format version 2 only")
            self._packets = TokenPacketizer(info)
            header = _header_v1(info)
        else:
            self.chunk_frames = _check_chunk_frames(info, chunk_frames)
            self._pending: list[np.ndarray] = []
            self._n_pending = 0
            self._frames = 0
            header = _header_v2(info)
            (self._chain,) = _CRC.unpack(header[-_CRC.size :])
        self._f, self._owned = _open(file_or_path, "wb")
        self._closed = False
        self.bytes_written = 0
        self._write(header)

    @property
    def frames_written(self) -> int:
        """Frames accepted so far (sent or buffered)."""
        if self.format_version == 1:
            return self._packets.frames + self._packets.n_pending
        return self._frames + self._n_pending

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
        if self.format_version == 1:
            packets = self._packets.push(ids)
            if packets:
                self._write(b"".join(_LEN.pack(len(p.data)) + p.data for p in packets))
                self._flush()
            return
        self._pending.append(np.asarray(ids, dtype=np.int64))
        self._n_pending += len(ids)
        if self._n_pending >= self.chunk_frames:
            ready = np.concatenate(self._pending)
            n_full = len(ready) // self.chunk_frames * self.chunk_frames
            self._write(b"".join(self._chunk(ready[i : i + self.chunk_frames])
                                 for i in range(0, n_full, self.chunk_frames)))
            self._pending = [ready[n_full:]] if n_full < len(ready) else []
            self._n_pending = len(ready) - n_full
            self._flush()

    def close(self, n_samples: int | None = None) -> None:
        """Write the remaining frames and the end record; close the file if the writer opened it.

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
        if self.format_version == 1:
            packets = [p.data for p in self._packets.flush()] + [self._packets.end(n_samples)]
            tail = b"".join(_LEN.pack(len(p)) + p for p in packets)
        else:
            n_samples = _check_int(n_samples, "n_samples")
            if not 0 <= n_samples < _U64:
                raise BitstreamError(f"n_samples must be a u64, got {n_samples}")
            last = [self._chunk(np.concatenate(self._pending))] if self._n_pending else []
            self._pending, self._n_pending = [], 0
            end = b"\x00" + encode_uvarint(self._frames) + encode_uvarint(n_samples)
            tail = b"".join(last) + self._seal(end)
        self._write(tail)
        self._flush()
        self._closed = True
        if self._owned:
            self._f.close()

    def abort(self) -> None:
        """Stop without an end record (the output then reads as truncated)."""
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

    def _chunk(self, ids: np.ndarray) -> bytes:
        """One v2 chunk record of ``ids`` (range-checked by :meth:`write_frames`)."""
        info = self.info
        self._frames += len(ids)
        return self._seal(encode_uvarint(len(ids))
                          + pack_fields(ids, (info.semantic_bits, info.acoustic_bits)))

    def _seal(self, body: bytes) -> bytes:
        self._chain = zlib.crc32(body, self._chain)
        return body + _CRC.pack(self._chain)

    def _write(self, data: bytes) -> None:
        self._f.write(data)
        self.bytes_written += len(data)

    def _flush(self) -> None:
        # A live consumer (pipe, socket file) should see whole records as soon as they exist.
        flush = getattr(self._f, "flush", None)
        if flush is not None:
            flush()

    def _check_open(self) -> None:
        if self._closed:
            raise BitstreamError("the ScrtWriter is closed")


class ScrtReader:
    """Read a ``.scrt`` stream (format version 1 or 2) packet by packet.

    The header is read and validated at construction (``self.info``; ``n_frames`` /
    ``n_samples`` are ``None`` for a stream written live).  Iterating yields each
    :class:`Packet` (TOKENS ..., END) after checking the CRC of the record that holds it, the
    order and frame continuity of the records and the totals; after the end record the stream
    must end.  Both versions yield the same packets for the same stream.  Every problem is a
    :class:`BitstreamError`.

    Args:
        file_or_path: path, binary file object, or bytes-like holding a whole stream.

    Attributes:
        info: the header.  format_version: 1 or 2.  header_bytes: the header's size, CRC
        included.  packets: a :class:`PacketInfo` per packet yielded so far.  chunks: a
        :class:`ChunkInfo` per record of frames read so far.  end: the END packet, once read.
    """

    def __init__(self, file_or_path) -> None:
        self._f, self._owned = _open(file_or_path, "rb")
        self._offset = 0
        self._started = False
        self._record: bytearray | None = None  # bytes read since the record began (v2)
        self.format_version: int | None = None
        self.header_bytes = 0
        self.packets: list[PacketInfo] = []
        self.chunks: list[ChunkInfo] = []
        self.end: Packet | None = None
        try:
            self.info = self._read_header()
        except BaseException:
            self.close()
            raise
        self.header_bytes = self._offset

    def __iter__(self) -> Iterator[Packet]:
        if self._started:
            raise BitstreamError("a ScrtReader can be iterated only once")
        self._started = True
        return self._packets_v1() if self.format_version == 1 else self._packets_v2()

    def close(self) -> None:
        if self._owned:
            self._f.close()

    def __enter__(self) -> "ScrtReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- header ---------------------------------------------------------------------------------
    def _read_header(self) -> StreamInfo:
        self._record = bytearray()
        head = self._read(5, "header")
        magic, version = head[:4], head[4]
        if magic != MAGIC:
            raise BitstreamError(f"not a .scrt stream: magic {magic!r}, expected {MAGIC!r}")
        if version not in SUPPORTED_VERSIONS:
            raise BitstreamError(
                f"unsupported .scrt format version {version}; this reader supports versions "
                f"{' and '.join(map(str, SUPPORTED_VERSIONS))}"
            )
        self.format_version = version
        return self._read_header_v1(head) if version == 1 else self._read_header_v2()

    def _read_header_v1(self, head: bytes) -> StreamInfo:
        self._record = None
        head += self._read(4, "header")
        (json_len,) = struct.unpack("!I", head[5:])
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

    def _read_header_v2(self) -> StreamInfo:
        (flags,) = self._read(1, "header flags")
        ints = {key: self._uvarint(f"header field {key}")
                for key in ("token_rate", "semantic_vocab", "acoustic_vocab", "sample_rate",
                            "frames_per_packet")}
        for key, flag in (("n_samples", _FLAG_N_SAMPLES), ("n_frames", _FLAG_N_FRAMES)):
            ints[key] = self._uvarint(f"header field {key}") if flags & flag else None
        raw = {key: self._text(key) for key in ("model", "config", "version")}
        body = bytes(self._record)
        self._record = None
        (crc,) = _CRC.unpack(self._read(_CRC.size, "header CRC"))
        if zlib.crc32(body) != crc:
            raise BitstreamError("header CRC mismatch (corrupted header)")
        self._chain = crc
        if flags & ~(_FLAG_N_SAMPLES | _FLAG_N_FRAMES | _FLAG_HEX_MODEL):
            raise BitstreamError(f"header flags 0x{flags:02x} set reserved bits")
        text = {}
        for key, value in raw.items():
            if key == "model" and flags & _FLAG_HEX_MODEL:
                text[key] = value.hex()
                continue
            try:
                text[key] = value.decode("utf-8")
            except UnicodeDecodeError:
                raise BitstreamError(f"header field {key} is not valid UTF-8") from None
        return StreamInfo(**text, **ints)

    def _text(self, key: str) -> bytes:
        n = self._uvarint(f"header field {key} length", MAX_TEXT_BYTES)
        return self._read(n, f"header field {key}")

    # -- packets --------------------------------------------------------------------------------
    def _packets_v1(self) -> Iterator[Packet]:
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
                    self._check_end(pkt.first_frame, pkt.n_samples, frame, "END packet")
                    self.end = pkt
                    yield pkt
                    return
                if pkt.n_frames > info.frames_per_packet:
                    raise BitstreamError(
                        f"packet {seq} holds {pkt.n_frames} frames, the header allows "
                        f"{info.frames_per_packet}"
                    )
                self.chunks.append(ChunkInfo(frame, pkt.n_frames, offset, _LEN.size + length,
                                             length - PACKET_OVERHEAD))
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

    def _packets_v2(self) -> Iterator[Packet]:
        info = self.info
        widths = (info.semantic_bits, info.acoustic_bits)
        vocabs = (info.semantic_vocab, info.acoustic_vocab)
        fpp, bits = info.frames_per_packet, info.frame_bits
        most = MAX_CHUNK_BYTES * 8 // bits
        seq = frame = 0
        try:
            while True:
                k, offset = len(self.chunks), self._offset
                self._record = bytearray()
                first = self._read(1, "chunk", eof_ok=True)
                if not first:
                    raise BitstreamError(
                        f"truncated stream: no end record after {k} chunks ({frame} frames)"
                    )
                n = self._uvarint(f"chunk {k} frame count", first=first[0])
                if n == 0:
                    total = self._uvarint("end record frame count")
                    n_samples = self._uvarint("end record sample count")
                    self._check_crc("end record")
                    self.packets.append(PacketInfo(PacketKind.END, seq, frame, 0,
                                                   self._offset - offset, offset))
                    self._check_end(total, n_samples, frame, "end record")
                    self.end = Packet.end(seq, frame, n_samples)
                    yield self.end
                    return
                if k and self.chunks[-1].n_frames % fpp:
                    raise BitstreamError(
                        f"chunk {k} follows a chunk of {self.chunks[-1].n_frames} frames, not a "
                        f"multiple of the {fpp} frames per packet (only the last chunk may be)"
                    )
                if n > most:
                    raise BitstreamError(
                        f"chunk {k} frame count {n} exceeds {most} ({MAX_CHUNK_BYTES} bytes of ids)"
                    )
                start = self._offset
                data = self._read(packed_size(n, bits), f"chunk {k}")
                self._check_crc(f"chunk {k}")
                if info.n_frames is not None and frame + n > info.n_frames:
                    raise BitstreamError(
                        f"stream holds more than the header's {info.n_frames} frames"
                    )
                if frame + n >= _U32:
                    raise BitstreamError(f"stream holds more than {_U32 - 1} frames")
                try:
                    ids = unpack_fields(data, widths, n)
                    _check_ranges(ids, vocabs, frame)
                except BitstreamError as e:
                    raise BitstreamError(f"chunk {k}: {e}") from None
                self.chunks.append(ChunkInfo(frame, n, offset, self._offset - offset, len(data)))
                for i in range(0, n, fpp):
                    m = min(fpp, n - i)
                    lo, hi = i * bits // 8, -(-(i + m) * bits // 8)
                    pkt = Packet.tokens(seq, frame + i, ids[i : i + m])
                    self.packets.append(PacketInfo(PacketKind.TOKENS, seq, frame + i, m, hi - lo,
                                                   start + lo))
                    seq += 1
                    yield pkt
                frame += n
        finally:
            self._record = None
            if self._owned:
                self._f.close()

    def _check_crc(self, what: str) -> None:
        """The CRC after a v2 record: chained from the previous record's."""
        body = bytes(self._record)
        self._record = None
        (crc,) = _CRC.unpack(self._read(_CRC.size, f"{what} CRC"))
        if zlib.crc32(body, self._chain) != crc:
            raise BitstreamError(f"{what}: CRC mismatch (corrupted, missing or reordered data)")
        self._chain = crc

    def _check_end(self, total: int, n_samples: int, frames: int, what: str) -> None:
        info = self.info
        if total != frames:  # a v1 END packet's first_frame is checked against frames before
            raise BitstreamError(f"{what} says {total} frames, the stream holds {frames}")
        if info.n_frames is not None and frames != info.n_frames:
            raise BitstreamError(
                f"stream holds {frames} frames, the header declares {info.n_frames}"
            )
        if info.n_samples is not None and n_samples != info.n_samples:
            raise BitstreamError(
                f"{what} says {n_samples} samples, the header declares {info.n_samples}"
            )
        if self._f.read(1):
            raise BitstreamError(f"trailing bytes after the {what}")

    def _uvarint(self, what: str, hi: int = _U64 - 1, first: int | None = None) -> int:
        pending = [first] if first is not None else []

        def byte() -> int:
            return pending.pop() if pending else self._read(1, what)[0]

        return decode_uvarint(byte, what, hi)

    def _read(self, n: int, what: str, eof_ok: bool = False) -> bytes:
        """Exactly ``n`` bytes (``n`` is bounded everywhere, so a corrupt length cannot blow
        memory; a v2 record's bytes are kept for its CRC)."""
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
        if self._record is not None:
            self._record += data
        return data


def write_scrt(
    file_or_path, info: StreamInfo, tokens, frames_per_packet: int | None = None, *,
    chunk_frames: int | None = None, format_version: int = FORMAT_VERSION,
) -> StreamInfo:
    """Write a whole stream.

    Args:
        file_or_path: path or binary file object.
        info: metadata; ``n_samples`` is required, ``n_frames`` defaults to ``len(tokens)``.
        tokens: ``[L, 2]`` integer ids (semantic, acoustic).
        frames_per_packet: overrides ``info.frames_per_packet``.
        chunk_frames, format_version: as :class:`ScrtWriter`'s.

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
    with ScrtWriter(file_or_path, info, chunk_frames=chunk_frames,
                    format_version=format_version) as w:
        w.write_frames(tokens)
    return info


def read_scrt(file_or_path) -> tuple[StreamInfo, np.ndarray, list[PacketInfo]]:
    """Read and validate a whole stream (format version 1 or 2).

    Args:
        file_or_path: path, binary file object, or bytes-like.

    Returns:
        ``(info, tokens, packets)``: the metadata with ``n_frames``/``n_samples`` filled in from
        the end record, ``[L, 2]`` int64 ids (semantic, acoustic), one :class:`PacketInfo` per
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


def _header_v1(info: StreamInfo) -> bytes:
    # Compact, sorted and ASCII so that equal metadata always gives identical bytes.
    raw = json.dumps(info.to_json_dict(), sort_keys=True, separators=(",", ":")).encode("ascii")
    if len(raw) > MAX_JSON_BYTES:
        raise BitstreamError(f"header metadata is {len(raw)} bytes, the limit is {MAX_JSON_BYTES}")
    head = _HEADER.pack(MAGIC, 1, len(raw)) + raw
    return head + _CRC.pack(zlib.crc32(head))


def _header_v2(info: StreamInfo) -> bytes:
    flags = 0
    out = bytearray()
    for key in ("token_rate", "semantic_vocab", "acoustic_vocab", "sample_rate",
                "frames_per_packet"):
        out += encode_uvarint(getattr(info, key))
    for key, flag in (("n_samples", _FLAG_N_SAMPLES), ("n_frames", _FLAG_N_FRAMES)):
        if getattr(info, key) is not None:
            flags |= flag
            out += encode_uvarint(getattr(info, key))
    if _HEX.fullmatch(info.model):
        flags |= _FLAG_HEX_MODEL
        model = bytes.fromhex(info.model)
    else:
        model = _utf8(info.model, "model")
    for raw in (model, _utf8(info.config, "config"), _utf8(info.version, "version")):
        out += encode_uvarint(len(raw)) + raw
    head = MAGIC + bytes([2, flags]) + bytes(out)
    return head + _CRC.pack(zlib.crc32(head))


def _utf8(text: str, key: str) -> bytes:
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError:
        raise BitstreamError(f"header field {key} cannot be encoded as UTF-8") from None
    if len(raw) > MAX_TEXT_BYTES:  # unreachable through StreamInfo (256 characters)
        raise BitstreamError(f"header field {key} is {len(raw)} bytes, the limit is {MAX_TEXT_BYTES}")
    return raw


def _check_chunk_frames(info: StreamInfo, chunk_frames) -> int:
    if chunk_frames is None:
        return default_chunk_frames(info)
    if isinstance(chunk_frames, bool) or not isinstance(chunk_frames, (int, np.integer)):
        raise BitstreamError(f"chunk_frames must be an integer, got {type(chunk_frames).__name__}")
    fpp = info.frames_per_packet
    if chunk_frames < 1 or chunk_frames % fpp:
        raise BitstreamError(
            f"chunk_frames must be a positive multiple of frames_per_packet {fpp}, got {chunk_frames}"
        )
    if packed_size(int(chunk_frames), info.frame_bits) > MAX_CHUNK_BYTES:
        raise BitstreamError(
            f"{chunk_frames} frames of {info.frame_bits} bits exceed {MAX_CHUNK_BYTES} bytes per chunk"
        )
    return int(chunk_frames)


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
