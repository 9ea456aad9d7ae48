"""The ``.scrt`` bitstream: bit packing, packets, container, bitrates, robustness and a golden file.

The byte layouts are re-derived here with ``struct`` and a varint of our own (``_assemble`` for
format version 1, ``_v2_parts`` / ``_v2_seal`` for version 2, ``_packet_body``) instead of
calling the writer, so these tests pin the format itself and not only writer/reader symmetry.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import io
import json
import math
import random
import struct
import time
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest

from semanticodec_rt.bitstream import (
    FORMAT_VERSION, MAGIC, MAX_CHUNK_BYTES, PACKET_OVERHEAD, BitstreamError, ModelMismatchError, Packet,
    PacketKind, ScrtReader, ScrtWriter, StreamInfo, bits_for_vocab, check_model, decode_packet,
    default_chunk_frames, default_frames_per_packet, encode_packet, pack_bits, pack_fields, packed_size,
    read_scrt, unpack_bits, unpack_fields, write_scrt,
)
from semanticodec_rt.bitstream.report import scrt_report
from semanticodec_rt.bitstream.varint import decode_uvarint, encode_uvarint
from semanticodec_rt.config import SEMANTIC_VOCAB_SIZES, TOKEN_RATES, official_config

pytestmark = pytest.mark.bitstream

ASSETS = Path(__file__).resolve().parent / "assets"
# Changing these hashes means the .scrt format changed: bump FORMAT_VERSION and regenerate.
GOLDEN_SHA256 = "5b0150537dd0af193c6e6dc46a0c4a18b7bf77f8abe10aa3cbd22a590f2210bb"  # version 1
GOLDEN_V2_SHA256 = "551b86ff36e0be4f63df48f729f11a4708b73d7ba81e702f2b7fcbecd0b28c30"


# ---------------------------------------------------------------------------------------------
# helpers


def _info(rate=100, vocab=32768, acoustic_vocab=8192, **kw) -> StreamInfo:
    kw.setdefault("n_samples", 16000)
    return StreamInfo(model="0123456789abcdef", config=f"test-r{rate}-v{vocab}", token_rate=rate,
                      semantic_vocab=vocab, acoustic_vocab=acoustic_vocab, sample_rate=16000,
                      version="0.0.0-test", **kw)


def _ids(rng, n, vocab=32768, acoustic_vocab=8192) -> np.ndarray:
    return np.stack([rng.integers(0, vocab, n), rng.integers(0, acoustic_vocab, n)], axis=1)


def _crc(body: bytes) -> bytes:
    return struct.pack("!I", zlib.crc32(body))


def _packet_body(kind, seq, first, n, payload: bytes) -> bytes:
    return struct.pack("!BIIH", kind, seq, first, n) + payload


def _assemble(meta, packets, *, magic=MAGIC, version=1, json_len=None, crc=None):
    """A version 1 .scrt built by hand: header (+CRC), then u16-length-prefixed packets."""
    if isinstance(meta, bytes):
        raw = meta
    else:
        raw = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
    head = struct.pack("!4sBI", magic, version, len(raw) if json_len is None else json_len) + raw
    out = head + (_crc(head) if crc is None else crc)
    return out + b"".join(struct.pack("!H", len(p)) + p for p in packets)


def _encode_all(info: StreamInfo, ids: np.ndarray) -> list[bytes]:
    """The packets write_scrt should produce, built from the packet API."""
    fpp, out, seq = info.frames_per_packet, [], 0
    for seq, i in enumerate(range(0, len(ids), fpp)):
        out.append(encode_packet(Packet.tokens(seq, i, ids[i : i + fpp]), info.semantic_bits,
                                 info.acoustic_bits))
    seq = len(out)
    out.append(encode_packet(Packet.end(seq, len(ids), info.n_samples), 1, 1))
    return out


def _scrt(info, ids, **kw) -> bytes:
    buf = io.BytesIO()
    write_scrt(buf, info, ids, **kw)
    return buf.getvalue()


def _uv(value: int) -> bytes:
    """LEB128, written here independently of the package's varint module."""
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _v2_header(info: StreamInfo, *, magic=MAGIC, version=2, flags=None, fields=None,
               texts=None) -> bytes:
    """A version 2 header body (without its CRC): fields as ints, texts as bytes, overridable."""
    f = {k: getattr(info, k) for k in ("token_rate", "semantic_vocab", "acoustic_vocab",
                                       "sample_rate", "frames_per_packet", "n_samples", "n_frames")}
    f.update(fields or {})
    hexmodel = all(c in "0123456789abcdef" for c in info.model) and len(info.model) % 2 == 0
    t = {"model": bytes.fromhex(info.model) if hexmodel else info.model.encode(),
         "config": info.config.encode(), "version": info.version.encode()}
    t.update(texts or {})
    if flags is None:
        flags = (f["n_samples"] is not None) | (f["n_frames"] is not None) << 1 | hexmodel << 2
    out = magic + bytes([version, flags])
    for key in ("token_rate", "semantic_vocab", "acoustic_vocab", "sample_rate",
                "frames_per_packet", "n_samples", "n_frames"):
        if f[key] is not None:
            out += f[key] if isinstance(f[key], bytes) else _uv(f[key])
    for key in ("model", "config", "version"):
        out += _uv(len(t[key])) + t[key]
    return out


def _v2_chunk(ids, widths) -> bytes:
    """A chunk record's body (without its CRC)."""
    return _uv(len(ids)) + pack_fields(ids, widths)


def _v2_end(n_frames: int, n_samples: int) -> bytes:
    return b"\x00" + _uv(n_frames) + _uv(n_samples)


def _v2_parts(info: StreamInfo, ids, chunk_frames=None, n_samples=None) -> tuple[bytes, list[bytes]]:
    """(header body, record bodies) of the version 2 file ``write_scrt`` should produce
    (``n_samples`` for the end record when the header leaves it out)."""
    c = chunk_frames or default_chunk_frames(info)
    widths = (info.semantic_bits, info.acoustic_bits)
    bodies = [_v2_chunk(ids[i : i + c], widths) for i in range(0, len(ids), c)]
    return _v2_header(info), bodies + [_v2_end(len(ids), n_samples or info.n_samples)]


def _v2_seal(header: bytes, bodies, *, header_crc=None) -> bytes:
    """Header + CRC, then each record body + its CRC chained from the previous one."""
    chain = zlib.crc32(header) if header_crc is None else header_crc
    out = header + struct.pack("!I", chain)
    for body in bodies:
        chain = zlib.crc32(body, chain)
        out += body + struct.pack("!I", chain)
    return out


def _v2(info, ids, chunk_frames=None, n_samples=None) -> bytes:
    return _v2_seal(*_v2_parts(info, ids, chunk_frames, n_samples))


def _raises(fn, *args, match=None, **kw) -> str:
    with pytest.raises(BitstreamError, match=match) as e:
        fn(*args, **kw)
    msg = str(e.value)
    assert msg and "\n" not in msg
    return msg


# ---------------------------------------------------------------------------------------------
# bit packing


def test_bits_for_vocab():
    assert [bits_for_vocab(v) for v in (2, 3, 4, 1000, 1024, 1025, 4096, 8192, 32768)] == [
        1, 2, 2, 10, 10, 11, 12, 13, 15]
    assert bits_for_vocab(1 << 32) == 32
    assert bits_for_vocab(1 << 40) == 40  # the speech route's composite acoustic ids
    assert bits_for_vocab(1 << 48) == 48
    for bad in (1, 0, -5, (1 << 48) + 1, True, 3.0):
        _raises(bits_for_vocab, bad)


@pytest.mark.parametrize("bits", range(1, 49))
def test_pack_roundtrip_every_width(bits):
    rng = np.random.default_rng(bits)
    top = (1 << bits) - 1
    for n in [0, 1, 2, 7, 8, 9, *rng.integers(10, 2000, 4)]:
        values = rng.integers(0, top, n, endpoint=True, dtype=np.uint64).astype(np.int64)
        if n >= 2:
            values[:2] = (0, top)  # both extremes
        data = pack_bits(values, bits)
        assert isinstance(data, bytes)
        assert len(data) == packed_size(n, bits) == math.ceil(n * bits / 8)
        out = unpack_bits(data, bits, n)
        assert out.dtype == np.int64 and out.shape == (n,)
        np.testing.assert_array_equal(out, values)
        assert pack_bits(out, bits) == data  # unique encoding


def test_pack_layout_is_lsb_first():
    assert pack_fields([[0b101, 0b10011]], (3, 5)) == bytes([0x9D])
    assert pack_bits([1, 0, 1], 1) == bytes([0b101])
    assert pack_bits([0x1FF], 9) == bytes([0xFF, 0x01])
    assert pack_bits([1, 1], 9) == bytes([0x01, 0x02, 0x00])
    assert pack_bits([0xDEADBEEF], 32) == bytes.fromhex("efbeadde")
    # fields interleaved per row = one value of the summed width with the first field low
    rng = np.random.default_rng(0)
    f = _ids(rng, 101)
    assert pack_fields(f, (15, 13)) == pack_bits(f[:, 0] | (f[:, 1] << 15), 28)
    np.testing.assert_array_equal(unpack_fields(pack_fields(f, (15, 13)), (15, 13), 101), f)


def test_pack_accepts_dtypes_and_sequences():
    for dt in (np.uint8, np.int16, np.uint32, np.int64, np.uint64):
        assert pack_bits(np.array([3, 1], dtype=dt), 2) == bytes([0b0111])
    assert pack_bits([], 7) == b"" and pack_bits([3, 1], 2) == bytes([0b0111])


def test_pack_rejects_bad_input():
    _raises(pack_bits, [4], 2, match="does not fit")
    _raises(pack_bits, [-1], 8, match="does not fit")
    _raises(pack_bits, np.array([1 << 32], np.uint64), 32)
    _raises(pack_bits, [1.0], 8, match="integers")
    _raises(pack_bits, [True], 8, match="integers")
    _raises(pack_bits, [[1]], 8, match="1-D")
    for bits in (0, 49, -1, True, 8.0):
        _raises(pack_bits, [0], bits)
    _raises(pack_fields, [[1, 2]], (8,), match="columns")
    _raises(unpack_bits, b"\x00", 9, 1, match="bytes")  # short
    _raises(unpack_bits, b"\x00\x00\x00", 9, 1, match="bytes")  # long
    _raises(unpack_bits, b"\xff\x03", 9, 1, match="padding")
    _raises(unpack_bits, b"", 8, -1)
    with pytest.raises(ValueError):  # BitstreamError is a ValueError
        pack_bits([256], 8)


def test_pack_is_fast():
    rng = np.random.default_rng(1)
    values = rng.integers(0, 1 << 15, 1_000_000)
    t0 = time.perf_counter()
    data = pack_bits(values, 15)
    t1 = time.perf_counter()
    out = unpack_bits(data, 15, len(values))
    t2 = time.perf_counter()
    np.testing.assert_array_equal(out, values)
    # ~0.03 s each on one core; the bound leaves room for a loaded shared machine.
    assert t1 - t0 < 1.0 and t2 - t1 < 1.0, (t1 - t0, t2 - t1)


# ---------------------------------------------------------------------------------------------
# packets


def test_packet_layout_and_roundtrip():
    rng = np.random.default_rng(2)
    ids = _ids(rng, 8)
    pkt = Packet.tokens(7, 56, ids)
    data = encode_packet(pkt, 15, 13)
    payload = pack_fields(ids, (15, 13))
    assert len(payload) == 28  # 8 x (15 + 13) bits, the 160 ms unit at 1.40 kbps
    body = _packet_body(1, 7, 56, 8, payload)
    assert data == body + _crc(body)
    assert len(data) == PACKET_OVERHEAD + 28
    back = decode_packet(data, 15, 13)
    assert back == pkt and back.kind is PacketKind.TOKENS and back.n_frames == 8
    assert back.ids.dtype == np.int64 and back.ids.shape == (8, 2) and not back.ids.flags.writeable

    end = Packet.end(0xFFFFFFFF, 123, 456789)
    data = encode_packet(end, 15, 13)
    body = _packet_body(2, 0xFFFFFFFF, 123, 0, struct.pack("!Q", 456789))
    assert data == body + _crc(body)
    back = decode_packet(bytearray(data), 15, 13)
    assert back == end and back.n_samples == 456789 and back.ids.shape == (0, 2)


def test_packet_rejects_malformed():
    ok = encode_packet(Packet.tokens(1, 0, [[999, 8191], [0, 0], [5, 6]]), 10, 13)
    kw = {"semantic_vocab": 1000}
    assert decode_packet(ok, 10, 13, **kw).ids[0, 0] == 999
    _raises(decode_packet, ok[:10], 10, 13, match="too short")
    _raises(decode_packet, ok[:-1] + bytes([ok[-1] ^ 1]), 10, 13, match="CRC")
    _raises(decode_packet, ok[:-4] + b"\x00" + ok[-4:], 10, 13, match="CRC")
    body = ok[:-4]

    def resealed(b):
        return b + _crc(b)

    _raises(decode_packet, resealed(b"\x07" + body[1:]), 10, 13, match="unknown packet kind 7")
    _raises(decode_packet, resealed(b"\x00" + body[1:]), 10, 13, match="kind")
    _raises(decode_packet, resealed(body + b"\x00"), 10, 13, match="payload bytes")  # trailing
    _raises(decode_packet, resealed(body[:-1]), 10, 13, match="payload bytes")  # short payload
    _raises(decode_packet, resealed(body[:9] + b"\x00\x04" + body[11:]), 10, 13, match="payload")
    _raises(decode_packet, resealed(body[:9] + b"\x00\x00" + body[11:]), 10, 13, match="0")
    # 3 x 23 bits = 69 bits -> 9 bytes with 3 padding bits; set one
    _raises(decode_packet, resealed(body[:-1] + bytes([body[-1] | 0x80])), 10, 13, match="padding")
    bad_id = resealed(_packet_body(1, 0, 0, 1, pack_fields([[1000, 0]], (10, 13))))
    assert decode_packet(bad_id, 10, 13).ids[0, 0] == 1000  # without a vocab: 2**bits
    _raises(decode_packet, bad_id, 10, 13, match="semantic id 1000 at frame 0", **kw)
    end_with_frames = resealed(_packet_body(2, 0, 0, 1, struct.pack("!Q", 5)))
    _raises(decode_packet, end_with_frames, 10, 13, match="END")
    _raises(decode_packet, resealed(_packet_body(2, 0, 0, 0, b"\x00" * 7)), 10, 13, match="END")
    _raises(decode_packet, 12345, 10, 13, match="bytes-like")


def test_packet_rejects_bad_fields():
    _raises(encode_packet, Packet.tokens(0, 0, [[1000, 0]]), 10, 13, semantic_vocab=1000)
    _raises(encode_packet, Packet.tokens(0, 0, [[0, 8192]]), 10, 13, match="outside vocab 8192")
    _raises(Packet.tokens, 0, 0, np.zeros((0, 2), np.int64), match="1..65535")
    _raises(Packet.tokens, 1 << 32, 0, [[0, 0]], match="u32")
    _raises(Packet.tokens, 0, -1, [[0, 0]], match="u32")
    _raises(Packet.tokens, 0, 0, [[0.5, 0]], match="integer")
    _raises(Packet.tokens, 0, 0, [0, 0], match=r"\[n, 2\]")
    _raises(Packet.end, 0, 0, -1, match="u64")
    _raises(Packet, 9, 0, 0, np.zeros((0, 2), np.int64), match="kind 9")
    _raises(encode_packet, Packet.tokens(0, 0, np.zeros((65535, 2), np.int64)), 15, 13,
            match="65535 bytes")


# ---------------------------------------------------------------------------------------------
# container


@pytest.mark.parametrize("rate", TOKEN_RATES)
@pytest.mark.parametrize("vocab", [*SEMANTIC_VOCAB_SIZES, 1000])
def test_container_roundtrip(rate, vocab):
    rng = np.random.default_rng(rate * 100_000 + vocab)
    fpps = [1, 3, default_frames_per_packet(rate), 64]
    k = TOKEN_RATES.index(rate) + vocab.bit_length()  # spreads the long case over all fpps
    for n in (0, 1, 3001):
        for fpp in fpps if n < 3001 else [fpps[k % 4]]:
            info = _info(rate, vocab, frames_per_packet=fpp, n_samples=int(rng.integers(0, 10**7)))
            ids = _ids(rng, n, vocab)
            data = _scrt(info, ids, format_version=1)
            # the file is exactly the documented layout, in both versions
            assert data == _assemble(dataclasses.replace(info, n_frames=n).to_json_dict(),
                                     _encode_all(info, ids))
            data2 = _scrt(info, ids)
            assert data2 == _v2(dataclasses.replace(info, n_frames=n), ids)
            chunk = fpp * int(rng.integers(1, 5))
            assert _scrt(info, ids, chunk_frames=chunk) == _v2(
                dataclasses.replace(info, n_frames=n), ids, chunk)
            # and both read back to the same stream, cut into the same packets
            for blob in (data, data2):
                got, toks, packets = read_scrt(blob)
                assert got == dataclasses.replace(info, n_frames=n)
                assert toks.dtype == np.int64 and toks.shape == (n, 2)
                np.testing.assert_array_equal(toks, ids)
                assert len(packets) == math.ceil(n / fpp) + 1 and packets[-1].kind is PacketKind.END
                assert [p.first_frame for p in packets] == [*range(0, n, fpp), n]
                assert [p.seq for p in packets] == list(range(len(packets)))
                assert [p.n_frames for p in packets] == [*(min(fpp, n - i) for i in range(0, n, fpp)), 0]


@pytest.mark.parametrize("version", [1, 2])
def test_container_paths_and_incremental_writer(tmp_path, version):
    rng = np.random.default_rng(3)
    info = _info(50, 16384, n_samples=99_999)
    ids = _ids(rng, 1234, 16384)
    path = tmp_path / "a.scrt"
    written = write_scrt(path, info, ids, format_version=version)
    assert written.n_frames == 1234 and written.frames_per_packet == 4
    whole = path.read_bytes()
    # The live writer (totals unknown up front, odd chunk sizes) gives the same packets; only
    # the header differs (null totals), and the reader takes the totals from END.
    live = dataclasses.replace(info, n_samples=None)
    buf = io.BytesIO()
    with ScrtWriter(buf, live, format_version=version) as w:
        i = 0
        for size in rng.integers(0, 50, 200):
            w.write_frames(ids[i : i + size])
            i += size
        w.write_frames(ids[i:])
        assert w.frames_written == 1234
        w.close(n_samples=99_999)
    stream = buf.getvalue()
    if version == 1:
        head_live = len(_assemble(live.to_json_dict(), []))
        head_whole = len(_assemble(written.to_json_dict(), []))
        assert stream[head_live:] == whole[head_whole:]
    else:
        # chained CRCs start from the header's, so compare the record bodies
        head_live, head_whole = len(_v2_header(live)) + 4, len(_v2_header(written)) + 4
        _, bodies = _v2_parts(written, ids)
        assert stream == _v2_seal(_v2_header(live), bodies)
        assert whole == _v2_seal(_v2_header(written), bodies)
        assert len(stream) - head_live == len(whole) - head_whole
    got, toks, _ = read_scrt(io.BytesIO(stream))
    assert got == written
    np.testing.assert_array_equal(toks, ids)
    # the reader, packet by packet
    with ScrtReader(str(path)) as r:
        assert r.info == written
        kinds = [p.kind for p in r]
        assert kinds.count(PacketKind.END) == 1 and kinds[-1] is PacketKind.END
        assert r.end.n_samples == 99_999
        _raises(iter, r, match="once")


def test_writer_enforces_declared_totals():
    rng = np.random.default_rng(4)
    ids = _ids(rng, 10)
    w = ScrtWriter(io.BytesIO(), _info(n_frames=10))
    _raises(w.write_frames, np.concatenate([ids, ids]), match="exceed")
    w.write_frames(ids[:5])
    _raises(w.close, match="5 frames written")
    w = ScrtWriter(io.BytesIO(), _info(n_samples=None))
    _raises(w.close, match="n_samples")
    _raises(w.write_frames, [[32768, 0]], match="vocab 32768")
    _raises(w.write_frames, [[0, -1]], match="vocab 8192")
    _raises(write_scrt, io.BytesIO(), _info(n_frames=3), ids, match="10 frames exceed")
    # an exception inside the block leaves no END: the output reads as truncated
    buf = io.BytesIO()
    with pytest.raises(RuntimeError):
        with ScrtWriter(buf, _info()) as w:
            w.write_frames(ids)
            raise RuntimeError
    _raises(read_scrt, buf.getvalue(), match="truncated")


def test_streaminfo_validation():
    info = _info()
    assert info.semantic_bits == 15 and info.acoustic_bits == 13 and info.frames_per_packet == 8
    for bad in ({"token_rate": 0}, {"token_rate": 1.5}, {"semantic_vocab": 1},
                {"acoustic_vocab": True}, {"n_frames": 1 << 32}, {"n_samples": -1},
                {"frames_per_packet": 0}, {"frames_per_packet": 20_000}, {"model": ""},
                {"version": 3}):
        _raises(dataclasses.replace, info, **bad)
    cfg = official_config(50, 4096)
    info = StreamInfo.from_config(cfg, n_samples=5)
    assert (info.model, info.config, info.semantic_vocab, info.acoustic_vocab) == (
        cfg.sha(), cfg.name, 4096, 8192)
    import semanticodec_rt
    assert info.version == semanticodec_rt.__version__


# ---------------------------------------------------------------------------------------------
# bitrate


@pytest.mark.parametrize("rate", TOKEN_RATES)
@pytest.mark.parametrize("vocab", SEMANTIC_VOCAB_SIZES)
def test_payload_bitrate_is_nominal(rate, vocab):
    info = StreamInfo.from_config(official_config(rate, vocab), n_samples=0)
    assert info.payload_bps == 0.5 * rate * (math.log2(vocab) + 13)
    # A whole number of byte-aligned packets over 16 s: the payload bytes are the nominal rate.
    seconds = 16
    n = int(info.frames_per_s * seconds)
    fpp = 8  # 8 frames x any whole number of bits is whole bytes
    info = dataclasses.replace(info, n_samples=seconds * 16000, n_frames=n, frames_per_packet=fpp)
    ids = _ids(np.random.default_rng(rate), n, vocab)
    data = _scrt(info, ids, format_version=1)
    _, _, packets = read_scrt(data)
    payload = sum(p.n_bytes - PACKET_OVERHEAD for p in packets if p.kind is PacketKind.TOKENS)
    assert payload == n * info.frame_bits // 8
    assert payload * 8 / seconds == info.payload_bps
    # and everything else is accounted for: header + 17 bytes per packet + END
    header = len(_assemble(info.to_json_dict(), []))
    assert len(data) == header + payload + (2 + PACKET_OVERHEAD) * (n // fpp) + 2 + 23
    # Version 2: the same payload bytes; framing is 1-2 count bytes + CRC per chunk, the end record
    data = _scrt(info, ids)
    with ScrtReader(data) as r:
        assert len(list(r)) == len(r.packets)
        packets, chunks = r.packets, r.chunks
    assert sum(p.n_bytes for p in packets if p.kind is PacketKind.TOKENS) == payload
    assert sum(c.payload_bytes for c in chunks) == payload
    c = default_chunk_frames(info)
    assert [ch.n_frames for ch in chunks] == [min(c, n - i) for i in range(0, n, c)]
    end = len(_v2_end(n, info.n_samples)) + 4
    framing = sum(len(_uv(ch.n_frames)) + 4 for ch in chunks) + end
    assert len(data) == len(_v2_header(info)) + 4 + payload + framing
    assert r.header_bytes == len(_v2_header(info)) + 4 and packets[-1].n_bytes == end


def test_payload_bitrate_examples():
    assert _info(100, 32768).payload_bps == 1400
    assert _info(100, 4096).payload_bps == 1250
    assert _info(25, 4096).payload_bps == 312.5
    assert _info(50, 1000).payload_bps == 25 * (10 + 13)
    # a partial last packet pads to whole bytes: 5 frames x 28 bits = 140 bits -> 18 bytes
    ids = np.zeros((13, 2), np.int64)
    _, _, packets = read_scrt(_scrt(_info(frames_per_packet=8), ids, format_version=1))
    assert [p.n_bytes - PACKET_OVERHEAD for p in packets[:-1]] == [28, 18]
    # version 2 has no per-packet framing: the same bytes of ids, at their place in the chunk
    data = _scrt(_info(frames_per_packet=8), ids)
    _, _, packets = read_scrt(data)
    assert [p.n_bytes for p in packets[:-1]] == [28, 18]
    assert packets[1].offset == packets[0].offset + 28
    assert data[packets[0].offset - 1] == 13  # the chunk's frame count, just before its ids


# ---------------------------------------------------------------------------------------------
# rejections with clear messages


def _small_file(n=11, fpp=3, vocab=1000):
    info = _info(100, vocab, frames_per_packet=fpp, n_samples=3333, n_frames=n)
    ids = _ids(np.random.default_rng(5), n, vocab)
    return info, ids, info.to_json_dict(), _encode_all(info, ids)


def test_rejects_bad_headers():
    info, ids, meta, packets = _small_file()
    good = _assemble(meta, packets)
    np.testing.assert_array_equal(read_scrt(good)[1], ids)
    _raises(read_scrt, _assemble(meta, packets, magic=b"RIFF"), match="magic")
    # version 2 is now the compact format, so an unknown version is 3 (and 0, 255)
    for bad in (0, 3, 255):
        msg = _raises(read_scrt, _assemble(meta, packets, version=bad), match="version")
        assert f"version {bad}" in msg and "versions 1 and 2" in msg
    _raises(read_scrt, _assemble(meta, packets, crc=b"\0\0\0\0"), match="header CRC")
    _raises(read_scrt, _assemble(meta, packets, json_len=0xFFFFFFFF), match="exceeds")
    _raises(read_scrt, _assemble(b"{not json", packets), match="not valid JSON")
    _raises(read_scrt, _assemble(b"\xff\xfe", packets), match="not valid JSON")
    _raises(read_scrt, _assemble(b"[" * 60000, packets), match="JSON")
    _raises(read_scrt, _assemble(b"[1, 2]", packets), match="JSON object")
    _raises(read_scrt, _assemble(b'{"n_frames": NaN}', packets), match="NaN")
    _raises(read_scrt, _assemble({k: v for k, v in meta.items() if k != "model"}, packets),
            match="lacks keys: model")
    _raises(read_scrt, _assemble({**meta, "extra": 1}, packets), match="unknown keys: extra")
    _raises(read_scrt, _assemble({**meta, "token_rate": "100"}, packets), match="token_rate")
    _raises(read_scrt, _assemble({**meta, "n_frames": 11.0}, packets), match="n_frames")
    _raises(read_scrt, _assemble({**meta, "semantic_bits": 11}, packets), match="semantic_bits=11")
    _raises(read_scrt, _assemble({**meta, "version": None}, packets), match="version")
    _raises(read_scrt, b"", match="truncated")
    _raises(read_scrt, 3.5, match="path or a binary file")


def test_rejects_bad_packet_sequences():
    info, ids, meta, p = _small_file()
    end = p[-1]
    _raises(read_scrt, _assemble(meta, p[:-1]), match="no END")
    _raises(read_scrt, _assemble(meta, [p[1], p[0], *p[2:]]), match="out of order")
    _raises(read_scrt, _assemble(meta, p + [end]), match="trailing")
    _raises(read_scrt, _assemble(meta, p) + b"\x00", match="trailing")
    _raises(read_scrt, _assemble({**meta, "n_frames": 12}, p),
            match="11 frames, the header declares 12")
    _raises(read_scrt, _assemble({**meta, "n_frames": 10}, p), match="more than")
    _raises(read_scrt, _assemble({**meta, "n_samples": 1}, p), match="3333 samples")
    _raises(read_scrt, _assemble({**meta, "frames_per_packet": 2}, p), match="allows 2")
    # a gap with consistent sequence numbers: renumber the frames of packet 1
    gap = encode_packet(Packet.tokens(1, 4, ids[3:6]), 10, 13)
    _raises(read_scrt, _assemble(meta, [p[0], gap, *p[2:]]), match="starts at frame 4, expected 3")
    # an id beyond the non-power-of-two vocab with valid CRCs
    wild = encode_packet(Packet.tokens(0, 0, [[1023, 0], *ids[1:3]]), 10, 13)
    _raises(read_scrt, _assemble(meta, [wild, *p[1:]]), match="semantic id 1023")
    _raises(read_scrt, _assemble(meta, p)[:-1], match="truncated")
    _raises(read_scrt, _assemble(meta, p[:-1]) + b"\x00\x03abc", match="below the minimum")


def test_model_mismatch_names_both_models():
    a, b = official_config(100, 32768), official_config(25, 4096)
    info = StreamInfo.from_config(a, n_samples=0)
    check_model(info, a.sha(), a.name)
    with pytest.raises(ModelMismatchError) as e:
        check_model(info, b.sha(), b.name)
    msg = str(e.value)
    assert isinstance(e.value, BitstreamError)
    assert a.name in msg and a.sha() in msg and b.name in msg and b.sha() in msg


# ---------------------------------------------------------------------------------------------
# robustness: only BitstreamError, whatever the input



def _raw_mutation(r, op: int, base: bytes, *, truncate: bool, prefix: int) -> bytearray:
    """The byte-level mutations both fuzzers share: bit flips (0), byte changes (1), inserted (2)
    or deleted bytes (3; ``truncate``: sometimes everything after a point), garbage (4),
    sometimes behind up to ``prefix`` valid bytes."""
    b = bytearray(base)
    if op == 0:  # bit flips
        for _ in range(r.randint(1, 4)):
            i = r.randrange(len(b) * 8)
            b[i // 8] ^= 1 << (i % 8)
    elif op == 1:  # byte changes
        for _ in range(r.randint(1, 3)):
            b[r.randrange(len(b))] = r.randrange(256)
    elif op == 2:  # insert bytes
        i = r.randrange(len(b) + 1)
        b[i:i] = r.randbytes(r.randint(1, 8))
    elif op == 3:  # delete bytes (or truncate)
        i = r.randrange(len(b))
        del b[i : i + r.randint(1, 8) if not truncate or r.random() < 0.7 else len(b)]
    else:  # garbage, sometimes behind a valid-looking prefix
        g = r.randbytes(r.randrange(600))
        b = bytearray(g if r.random() < 0.5 else base[: r.randrange(prefix)] + g)
    return b

class _Mutator:
    """Seeded corruptions of a valid stream; each call returns one candidate input."""

    def __init__(self, seed: int, meta: dict, packets: list[bytes]):
        self.rng = random.Random(seed)
        self.meta, self.packets = meta, packets
        self.base = _assemble(meta, packets)

    def __call__(self) -> bytes:
        r = self.rng
        op = r.randrange(9)
        if op <= 4:
            b = _raw_mutation(r, op, self.base, truncate=False, prefix=30)
        elif op == 5:  # valid CRC, semantically wrong header
            b = bytearray(_assemble(self._bad_meta(), self.packets))
        elif op == 6:  # valid CRCs, a packet field changed
            b = bytearray(_assemble(self.meta, self._bad_packets()))
        elif op == 7:  # packets dropped, duplicated or swapped (valid CRCs)
            p = list(self.packets)
            i, j = r.randrange(len(p)), r.randrange(len(p))
            action = r.randrange(3)
            if action == 0:
                del p[i]
            elif action == 1:
                p.insert(i, p[j])
            else:
                p[i] = p[j]
            b = bytearray(_assemble(self.meta, p))
        else:  # header length / version / length prefixes changed
            b = bytearray(_assemble(self.meta, self.packets, version=r.choice([0, 2, 255]),
                                    json_len=r.choice([None, 0, 5, 1 << 31, 0xFFFFFFFF])))
        return bytes(b)

    def _bad_meta(self):
        r, m = self.rng, dict(self.meta)
        key = r.choice([*m, "extra"])
        choice = r.randrange(4)
        if choice == 0:
            m.pop(key, None)
        elif choice == 1:
            m[key] = r.choice([None, -1, 0, 1, 2, 1.5, "x", "", True, [], {}, 1 << 70, "y" * 300,
                               10**5, 1 << 32, 31, 33])
        elif choice == 2:
            m[key] = r.randrange(-3, 1 << 20)
        else:
            raw = r.choice([b"", b"null", b"[]", b"\"s\"", b"1e999", b"-Infinity", b"{\"a\":}",
                            b"\xc3\x28", b"{" * 3000, b"9" * 5000, b"[" * 65536])
            return raw
        return m

    def _bad_packets(self):
        r, p = self.rng, list(self.packets)
        i = r.randrange(len(p))
        body = bytearray(p[i][:-4])
        field = r.randrange(6)
        sb, ab = self.meta["semantic_bits"], self.meta["acoustic_bits"]
        if field == 5 and body[0] == PacketKind.TOKENS:  # an id beyond its vocab, bits intact
            ids = decode_packet(p[i], sb, ab).ids.copy()
            col = r.randrange(2)
            vocab = self.meta["semantic_vocab" if col == 0 else "acoustic_vocab"]
            top = 1 << (sb if col == 0 else ab)
            ids[r.randrange(len(ids)), col] = r.randrange(vocab, top) if vocab < top else vocab - 1
            body = bytearray(body[:11] + pack_fields(ids, (sb, ab)))
        if field == 0:
            body[0] = r.randrange(256)
        elif field in (1, 2):  # seq or first_frame
            off = 1 if field == 1 else 5
            value = r.choice([0, 1, 2, 3, 4, 0xFFFFFFFF, r.randrange(1 << 32)])
            body[off : off + 4] = struct.pack("!I", value)
        elif field == 3:
            body[9:11] = struct.pack("!H", r.choice([0, 1, 2, 3, 4, 100, 0xFFFF]))
        elif len(body) > 11:
            j = r.randrange(11, len(body))
            body[j] = r.randrange(256)
        if r.random() < 0.2:
            body += r.randbytes(r.randint(1, 3))
        p[i] = bytes(body) + _crc(bytes(body))
        return p


def _only_bitstream_errors(fn, data) -> bool:
    """True if ``fn(data)`` raised BitstreamError (with a one-line message), False if it passed."""
    try:
        fn(data)
    except BitstreamError as e:
        assert str(e) and "\n" not in str(e), repr(e)
        return True
    return False


def test_fuzz_only_bitstream_errors():
    t0 = time.perf_counter()
    n_inputs = n_mutated = n_rejected = 0
    files = [_small_file(11, 3, 1000), _small_file(0, 8, 4096), _small_file(9, 8, 32768)]
    for k, (_, _, meta, packets) in enumerate(files):
        base = _assemble(meta, packets)
        for cut in range(len(base)):  # truncation at every length
            assert _only_bitstream_errors(read_scrt, base[:cut])
            n_inputs += 1
        mutate = _Mutator(1000 + k, meta, packets)
        for _ in range(3000):
            n_rejected += _only_bitstream_errors(read_scrt, mutate())
            n_mutated += 1
    # single packets through decode_packet
    r = random.Random(7)
    _, _, _, packets = files[0]
    for _ in range(2000):
        b = bytearray(r.choice(packets))
        op = r.randrange(4)
        if op == 0:
            i = r.randrange(len(b) * 8)
            b[i // 8] ^= 1 << (i % 8)
        elif op == 1:
            b = b[: r.randrange(len(b))]
        elif op == 2:
            b = bytearray(r.randbytes(r.randrange(40)))
        else:  # valid CRC over a changed body
            body = b[:-4]
            body[r.randrange(len(body))] = r.randrange(256)
            b = body + _crc(bytes(body))
        n_rejected += _only_bitstream_errors(
            lambda d: decode_packet(d, 10, 13, semantic_vocab=1000), bytes(b))
        n_mutated += 1
    elapsed = time.perf_counter() - t0
    assert n_inputs + n_mutated >= 10_000
    # Some mutations stay valid (an id changed within range, a reseal that changes nothing),
    # but nearly all must be caught.
    assert n_rejected > 0.9 * n_mutated, (n_rejected, n_mutated)
    assert elapsed < 60, f"fuzzing took {elapsed:.1f} s"


# ---------------------------------------------------------------------------------------------
# format version 2: lean files, same checks


def _speech_stream(seconds: float, **kw) -> tuple[StreamInfo, np.ndarray]:
    """A stream like the previous default model's (rt-small): rate 100, vocab 8192 + 8192 (1.30 kbit/s), frames
    rounded up to whole 160 ms units of 8 positions as its windowing does."""
    n = math.ceil(seconds * 50 / 8) * 8
    info = StreamInfo.from_config(official_config(100, 8192), n_samples=round(seconds * 16000),
                                  n_frames=n, **kw)
    info = dataclasses.replace(info, config="rt-small-r100-v8192-distilled-s4")  # that model's name
    return info, _ids(np.random.default_rng(int(seconds * 10)), n, 8192)


def test_varint():
    for value, raw in ((0, b"\x00"), (1, b"\x01"), (127, b"\x7f"), (128, b"\x80\x01"),
                       (300, b"\xac\x02"), (16000, b"\x80\x7d"), ((1 << 64) - 1, b"\xff" * 9 + b"\x01")):
        assert encode_uvarint(value) == raw == _uv(value)
        assert decode_uvarint(iter(raw).__next__, "x") == value
    for bad in (-1, 1 << 64, True, 1.0):
        _raises(encode_uvarint, bad)
    _raises(decode_uvarint, iter(b"\x80\x00").__next__, "n", match="n: varint is not in its shortest")
    _raises(decode_uvarint, iter(b"\xff" * 11).__next__, "n", match="longer than 10")
    _raises(decode_uvarint, iter(b"\xff" * 9 + b"\x7f").__next__, "n", match="n a huge number exceeds")
    _raises(decode_uvarint, iter(b"\x81\x01").__next__, "n", 128, match="n 129 exceeds 128")


def test_v2_file_rate_is_near_the_payload(tmp_path):
    """Issue 15: a 10 s clip at 1.30 kbit/s of ids is at most 1.1 x that as a file."""
    rows = []
    for seconds in (3, 10, 60):
        info, ids = _speech_stream(seconds)
        assert info.payload_bps == 1300
        path = tmp_path / f"{seconds}.scrt"
        write_scrt(path, info, ids)
        r = scrt_report(path)
        live = io.BytesIO()  # written live: no totals in the header
        with ScrtWriter(live, dataclasses.replace(info, n_samples=None, n_frames=None)) as w:
            w.write_frames(ids)
            w.close(n_samples=info.n_samples)
        v1 = _scrt(info, ids, format_version=1)
        rows.append((seconds, r["file_bps"], len(live.getvalue()) * 8 / seconds, len(v1) * 8 / seconds))
        assert r["file_bytes"] == path.stat().st_size == len(_v2(info, ids))
        assert r["file_bps"] == r["file_bytes"] * 8 / seconds
        # the payload bytes are the ids' bits, rounded up once; the rest is header and framing
        assert r["payload_bytes"] == math.ceil(len(ids) * 26 / 8)
        assert r["overhead_bytes"] == r["header_bytes"] + r["framing_bytes"]
        assert r["format_version"] == 2 and r["n_packets"] == len(ids) // 8 + 1
        if seconds == 10:
            assert r["file_bps"] <= 1.1 * info.payload_bps, r
            assert len(live.getvalue()) * 8 / seconds <= 1.1 * info.payload_bps
            assert r["file_bytes"] <= 1790
    print("\n  s   v2 file bps  (live)   v1 file bps   (payload 1300 bps)")
    for row in rows:
        print("  %-3d %8.0f %9.0f %10.0f" % row)


def test_v2_every_single_byte_corruption_is_detected():
    info, ids = _speech_stream(10)
    data = _v2(info, ids)
    np.testing.assert_array_equal(read_scrt(data)[1], ids)
    r = random.Random(15)
    header = len(_v2_header(info)) + 4
    positions = [*range(header + 8), *r.sample(range(header + 8, len(data)), 400)]
    n = 0
    for pos in positions:
        for flip in {1 << r.randrange(8), 0xFF, r.randrange(1, 256)}:
            b = bytearray(data)
            b[pos] ^= flip
            assert _only_bitstream_errors(read_scrt, bytes(b)), (pos, flip)
            n += 1
    assert n > 1000


def test_v2_truncation_is_detected():
    info, ids = _speech_stream(3)
    live = dataclasses.replace(info, n_frames=None, n_samples=None)
    for data in (_v2(info, ids), _v2(live, ids, n_samples=info.n_samples)):
        assert read_scrt(data)[0] == info
        for cut in range(len(data)):
            msg = _raises(read_scrt, data[:cut])
            assert "truncated" in msg, (cut, msg)


def test_v2_streams_chunk_by_chunk():
    info, ids = _speech_stream(10)
    c = default_chunk_frames(info)
    assert c == 104 and c * info.frame_bits % 8 == 0 and c % info.frames_per_packet == 0
    buf = io.BytesIO()
    w = ScrtWriter(buf, info)
    head = buf.tell()
    assert head == w.bytes_written == len(_v2_header(info)) + 4
    w.write_frames(ids[: c - 1])
    assert buf.tell() == head  # nothing until a chunk is full
    w.write_frames(ids[c - 1 : c + 1])
    assert buf.tell() == head + 1 + c * 26 // 8 + 4 == w.bytes_written
    # a reader of the unfinished file yields the first chunk's packets, then reports truncation
    reader = ScrtReader(buf.getvalue())
    it = iter(reader)
    got = [next(it).ids for _ in range(c // 8)]
    np.testing.assert_array_equal(np.concatenate(got), ids[:c])
    _raises(next, it, match="truncated stream: no end record after 1 chunks")
    w.write_frames(ids[c + 1 :])
    w.close()
    assert buf.getvalue() == _v2(info, ids)


def test_v2_writer_arguments():
    info, ids = _speech_stream(1)
    _raises(ScrtWriter, io.BytesIO(), info, chunk_frames=12, match="multiple of frames_per_packet 8")
    _raises(ScrtWriter, io.BytesIO(), info, chunk_frames=0, match="multiple")
    _raises(ScrtWriter, io.BytesIO(), info, chunk_frames=8.0, match="integer")
    _raises(ScrtWriter, io.BytesIO(), info, chunk_frames=8 * (MAX_CHUNK_BYTES // 8), match="bytes per chunk")
    _raises(ScrtWriter, io.BytesIO(), info, chunk_frames=8, format_version=1, match="version 2 only")
    _raises(ScrtWriter, io.BytesIO(), info, format_version=3, match="format version 3")
    _raises(ScrtWriter, b"", info, match="bytes object")
    w = ScrtWriter(io.BytesIO(), dataclasses.replace(info, n_samples=None, n_frames=None))
    _raises(w.close, -1, match="u64")
    _raises(w.close, True, match="integer")
    # odd packet sizes: chunks are whole packets, and whole bytes where that fits
    for fpp, bits, vocab in ((3, 23, 1000), (4, 27, 16384), (8, 26, 8192), (5, 28, 32768)):
        i = dataclasses.replace(_info(100, vocab), frames_per_packet=fpp)
        c = default_chunk_frames(i)
        assert c % fpp == 0 and c * bits % 8 == 0 and 100 <= c < 100 + 8 * fpp, (fpp, c)
    huge = StreamInfo(model="m", config="c", token_rate=100, semantic_vocab=1 << 32,
                      acoustic_vocab=1 << 32, sample_rate=16000, frames_per_packet=8000)
    assert default_chunk_frames(huge) % 8000 == 0  # 8000 x 64 bits: whole bytes already


def _v2_bad(info, ids, *, header=None, bodies=None, **hkw):
    h, b = _v2_parts(info, ids, 6)
    return _v2_seal(_v2_header(info, **hkw) if hkw else (h if header is None else header),
                    b if bodies is None else bodies)


def _rejects(data: bytes, match: str) -> str:
    return _raises(read_scrt, data, match=match)


def test_v2_rejects_bad_headers():
    info = _info(100, 1000, frames_per_packet=3, n_samples=3333, n_frames=11)
    ids = _ids(np.random.default_rng(5), 11, 1000)
    good = _v2_bad(info, ids)
    got, toks, packets = read_scrt(good)
    assert got == info and [p.n_frames for p in packets] == [3, 3, 3, 2, 0]
    np.testing.assert_array_equal(toks, ids)
    _rejects(_v2_bad(info, ids, magic=b"RIFF"), "not a .scrt stream")
    _rejects(_v2_bad(info, ids, version=9), "version 9; this reader supports versions 1 and 2")
    h, b = _v2_parts(info, ids, 6)
    _rejects(_v2_seal(h, b, header_crc=0), "header CRC mismatch")
    _rejects(_v2_bad(info, ids, flags=0x0B), "reserved bits")
    for key, value, match in (
        ("token_rate", 0, "token_rate=0"),
        ("frames_per_packet", 0, "frames_per_packet"),
        ("frames_per_packet", 1 << 16, "frames_per_packet"),
        ("semantic_vocab", 1, "semantic_vocab"),
        ("acoustic_vocab", (1 << 48) + 1, "acoustic_vocab"),
        ("sample_rate", 1 << 30, "sample_rate"),
        ("n_frames", 1 << 32, "n_frames"),
        ("token_rate", b"\x80\x00", "shortest form"),
        ("n_samples", b"\xff" * 10 + b"\x01", "longer than 10"),
    ):
        _rejects(_v2_bad(info, ids, fields={key: value}), match)
    for key, value, match in (
        ("config", b"\xff\xfe", "config is not valid UTF-8"),
        ("version", b"", "version must be a non-empty"),
        ("model", b"", "model must be a non-empty"),
        ("config", b"x" * 1025, "length 1025 exceeds 1024"),
        ("config", b"x" * 300, "at most 256"),
    ):
        _rejects(_v2_bad(info, ids, texts={key: value}), match)
    # the header totals are checked against the end record
    _rejects(_v2_bad(info, ids, fields={"n_samples": 3334}), "3333 samples, the header declares 3334")
    _rejects(_v2_bad(info, ids, fields={"n_frames": 12}), "11 frames, the header declares 12")
    _rejects(_v2_bad(info, ids, fields={"n_frames": 10}), "more than the header's 10")


def test_v2_rejects_bad_records():
    info = _info(100, 1000, frames_per_packet=3, n_samples=3333, n_frames=11)
    ids = _ids(np.random.default_rng(5), 11, 1000)
    h, b = _v2_parts(info, ids, 6)  # chunks of 6 and 5 frames, then the end record
    data = _v2_seal(h, b)
    widths = (10, 13)
    # corrupted, dropped, repeated or swapped records break the CRC chain
    flipped = bytearray(data)
    flipped[len(h) + 10] ^= 4
    _rejects(bytes(flipped), "chunk 0: CRC mismatch")
    head, chunk0 = data[: len(h) + 4], len(b[0]) + 4
    records = data[len(h) + 4 :]
    _rejects(head + records[chunk0:], "chunk 0: CRC mismatch")
    _rejects(head + records[:chunk0] + records, "chunk 1: CRC mismatch")
    _rejects(data + data[-len(b[-1]) - 4 :], "trailing bytes after the end record")
    _rejects(data + b"\x00", "trailing")
    # resealed: the structure checks
    _rejects(_v2_seal(h, [b[1], b[2]]), "end record says 11 frames, the stream holds 5")
    _rejects(_v2_seal(h, [b[0], b[2]]), "end record says 11 frames, the stream holds 6")
    _rejects(_v2_seal(h, [b[0], b[2], b[1]]), "end record says 11 frames, the stream holds 6")
    _rejects(_v2_seal(h, b[:2]), "no end record after 2 chunks")
    _rejects(_v2_seal(h, [b[1], b[0], b[2]]), "chunk 1 follows a chunk of 5 frames")
    _rejects(_v2_seal(h, [*b[:2], _v2_end(11, 3334)]), "3334 samples")
    _rejects(_v2_seal(h, [*b[:2], b"\x00" + _uv(11) + _uv(1 << 64)]), "exceeds")
    _rejects(_v2_seal(h, [b[0], b"\x80\x00" + b[1][1:], b[2]]), "chunk 1 frame count: varint")
    _rejects(_v2_seal(h, [b[0], _uv(1 << 20) + b[1][1:], b[2]]), "chunk 1 frame count 1048576 exceeds")
    _rejects(_v2_seal(h, [b[0], b[1] + b"\x00", b[2]]), "CRC")  # longer than its count says
    padded = b[1][:-1] + bytes([b[1][-1] | 0x80])
    _rejects(_v2_seal(h, [b[0], padded, b[2]]), "chunk 1: non-zero padding")
    wild = ids.copy()
    wild[7, 0] = 1023
    _rejects(_v2_seal(h, [b[0], _v2_chunk(wild[6:], widths), b[2]]), "chunk 1: semantic id 1023 at frame 7")
    # a live-written header leaves the totals to the end record
    live = _v2_header(dataclasses.replace(info, n_samples=None, n_frames=None))
    got, toks, _ = read_scrt(_v2_seal(live, b))
    assert got == info
    np.testing.assert_array_equal(toks, ids)
    _rejects(_v2_seal(live, [*b[:2], _v2_end(12, 3333)]), "says 12 frames, the stream holds 11")


def test_v2_model_check_and_texts():
    a, other = official_config(100, 8192), official_config(25, 4096)
    info = StreamInfo.from_config(a, n_samples=320 * 4, n_frames=4)
    data = _scrt(info, np.zeros((4, 2), np.int64))
    got = read_scrt(data)[0]
    assert got.model == a.sha() and got.config == a.name
    check_model(ScrtReader(data).info, a.sha(), a.name)
    with pytest.raises(ModelMismatchError) as e:
        check_model(ScrtReader(data).info, other.sha(), other.name)
    msg = str(e.value)
    assert a.name in msg and a.sha() in msg and other.name in msg and other.sha() in msg
    # a model id that is not lowercase hex, and non-ASCII texts, are stored as UTF-8 text
    for model in ("soak", "ABCDEF12", "abc", "0123456789abcdef" * 8, "ñ-model"):
        i = dataclasses.replace(info, model=model, config="réglage ✓", version="1.0+ü")
        got = read_scrt(_scrt(i, np.zeros((4, 2), np.int64)))[0]
        assert (got.model, got.config, got.version) == (model, "réglage ✓", "1.0+ü")
    _raises(write_scrt, io.BytesIO(), dataclasses.replace(info, config="\ud800"), np.zeros((4, 2), np.int64),
            match="UTF-8")


@pytest.mark.parametrize("version", [1, 2])
def test_report_accounts_for_every_byte(tmp_path, version):
    info, ids = _speech_stream(5)
    path = tmp_path / "r.scrt"
    write_scrt(path, dataclasses.replace(info, frames_per_packet=3), ids, format_version=version)
    r = scrt_report(path)
    size = path.stat().st_size
    assert r["file_bytes"] == size == r["payload_bytes"] + r["header_bytes"] + r["framing_bytes"]
    assert r["n_packets"] == math.ceil(len(ids) / 3) + 1 and r["format_version"] == version
    if version == 1:
        assert r["payload_bytes"] == sum(packed_size(min(3, len(ids) - i), 26) for i in range(0, len(ids), 3))
        assert r["framing_bytes"] == (2 + PACKET_OVERHEAD) * (r["n_packets"] - 1) + 2 + 23
        assert r["n_chunks"] == r["n_packets"] - 1
    else:
        c = default_chunk_frames(dataclasses.replace(info, frames_per_packet=3))
        assert r["n_chunks"] == math.ceil(len(ids) / c)
        assert r["payload_bytes"] == math.ceil(len(ids) * 26 / 8)
        counts = [min(c, len(ids) - i) for i in range(0, len(ids), c)]
        end = len(_v2_end(len(ids), info.n_samples)) + 4
        assert r["framing_bytes"] == sum(len(_uv(n)) + 4 for n in counts) + end


class _V2Mutator:
    """Seeded corruptions of a valid version 2 stream; each call returns one candidate input."""

    def __init__(self, seed: int, info: StreamInfo, ids: np.ndarray, chunk_frames: int):
        self.rng = random.Random(seed)
        self.info, self.ids = info, ids
        self.n_samples = info.n_samples or 4321  # a live header leaves it to the end record
        self.header, self.bodies = _v2_parts(info, ids, chunk_frames, self.n_samples)
        self.base = _v2_seal(self.header, self.bodies)

    def __call__(self) -> bytes:
        r = self.rng
        op = r.randrange(9)
        if op <= 4:
            b = _raw_mutation(r, op, self.base, truncate=True, prefix=40)
        elif op == 5:  # valid CRCs, a header field changed
            b = bytearray(_v2_seal(self._bad_header(), self.bodies))
        elif op == 6:  # valid CRCs, a record changed
            b = bytearray(_v2_seal(self.header, self._bad_bodies()))
        elif op == 7:  # records dropped, repeated or swapped, with or without resealing
            p = list(self.bodies)
            i, j = r.randrange(len(p)), r.randrange(len(p))
            action = r.randrange(3)
            if action == 0:
                del p[i]
            elif action == 1:
                p.insert(i, p[j])
            else:
                p[i], p[j] = p[j], p[i]
            b = bytearray(_v2_seal(self.header, p))
        else:  # version byte or flags changed (CRC intact or not)
            b = bytearray(self.base)
            b[4 + r.randrange(2)] = r.choice([0, 1, 3, 7, 8, 255, r.randrange(256)])
        return bytes(b)

    def _bad_header(self) -> bytes:
        r = self.rng
        if r.random() < 0.3:
            return _v2_header(self.info, flags=r.randrange(256))
        if r.random() < 0.5:
            key = r.choice(["model", "config", "version"])
            value = r.choice([b"", b"\xff", b"x" * r.choice([255, 256, 257, 1024, 1025]), r.randbytes(5)])
            return _v2_header(self.info, texts={key: value})
        key = r.choice(["token_rate", "semantic_vocab", "acoustic_vocab", "sample_rate",
                        "frames_per_packet", "n_samples", "n_frames"])
        value = r.choice([0, 1, 2, 3, 7, 8, 1 << 16, 1 << 20, (1 << 32) + 1, (1 << 64) - 1,
                          r.randrange(1 << 40), b"\x80\x00", b"\xff" * 11])
        return _v2_header(self.info, fields={key: value})

    def _bad_bodies(self) -> list[bytes]:
        r, p = self.rng, list(self.bodies)
        i = r.randrange(len(p))
        body = bytearray(p[i])
        choice = r.randrange(4)
        if choice == 0:  # the frame count
            n = r.choice([0, 1, 2, 3, 5, 8, 127, 128, 1 << 14, 1 << 21, r.randrange(1 << 30)])
            body = bytearray(_uv(n) + body[1 if body[0] < 0x80 else 2 :])
        elif choice == 1 and len(body) > 2:  # a byte of ids or of the end record
            body[r.randrange(1, len(body))] = r.randrange(256)
        elif choice == 2:  # bytes added or removed
            if r.random() < 0.5:
                body += r.randbytes(r.randint(1, 3))
            else:
                del body[-r.randint(1, min(3, len(body))) :]
        else:  # an end record with other totals
            body = bytearray(_v2_end(r.choice([0, len(self.ids), len(self.ids) + 1, 1 << 33]),
                                     r.choice([0, self.n_samples, 1 << 63])))
        p[i] = bytes(body)
        return p


def test_fuzz_v2_only_bitstream_errors():
    """The v2 reader under a few thousand mutations: only BitstreamError, fast, small memory."""
    t0 = time.perf_counter()
    n_mutated = n_rejected = 0
    files = [(_info(100, 1000, frames_per_packet=3, n_samples=3333, n_frames=31), 31, 1000, 6),
             (_info(50, 4096, n_samples=None, n_frames=None), 9, 4096, 4),
             (_info(100, 8192, acoustic_vocab=8192, n_samples=16000, n_frames=50), 50, 8192, 16)]
    tracemalloc.start()
    try:
        for k, (info, n, vocab, chunk) in enumerate(files):
            ids = _ids(np.random.default_rng(k), n, vocab)
            mutate = _V2Mutator(2000 + k, info, ids, chunk)  # the second: a live header
            np.testing.assert_array_equal(read_scrt(mutate.base)[1], ids)
            for _ in range(1500):
                n_rejected += _only_bitstream_errors(read_scrt, mutate())
                n_mutated += 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - t0
    assert n_mutated == 4500
    assert n_rejected > 0.9 * n_mutated, (n_rejected, n_mutated)
    assert peak < 4 << 20, f"peak allocation {peak} bytes"
    assert elapsed < 60, f"fuzzing took {elapsed:.1f} s"


# ---------------------------------------------------------------------------------------------
# golden file


def _golden_module():
    path = ASSETS / "make_golden_scrt.py"
    spec = importlib.util.spec_from_file_location("make_golden_scrt", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_golden_file_is_stable():
    gold = _golden_module()
    data = gold.GOLDEN_PATH.read_bytes()
    assert len(data) < 2048
    assert hashlib.sha256(data).hexdigest() == GOLDEN_SHA256, "golden .scrt changed"
    assert data[:5] == b"SCRT\x01"
    info, toks, packets = read_scrt(gold.GOLDEN_PATH)
    assert info == gold.golden_info()
    np.testing.assert_array_equal(toks, gold.golden_tokens())
    assert [p.n_frames for p in packets] == [8, 8, 8, 8, 5, 0]
    # the current writer reproduces the committed bytes, both from the script and from the file
    assert gold.golden_bytes() == data
    assert _scrt(info, toks, format_version=1) == data


def test_golden_v2_file_is_stable():
    gold = _golden_module()
    data = gold.GOLDEN_V2_PATH.read_bytes()
    assert hashlib.sha256(data).hexdigest() == GOLDEN_V2_SHA256, "golden v2 .scrt changed"
    assert data[:5] == b"SCRT\x02" and len(data) == 211  # v1: 505 bytes for the same stream
    info, toks, packets = read_scrt(gold.GOLDEN_V2_PATH)
    assert info == gold.golden_info()
    np.testing.assert_array_equal(toks, gold.golden_tokens())
    assert [p.n_frames for p in packets] == [8, 8, 8, 8, 5, 0]  # the packets of the v1 file
    with ScrtReader(data) as r:
        for _ in r:
            pass
    assert [c.n_frames for c in r.chunks] == [16, 16, 5]
    assert data == _v2(info, toks, gold.GOLDEN_V2_CHUNK_FRAMES)
    assert gold.golden_bytes(2) == data and FORMAT_VERSION == 2  # what write_scrt writes
    assert _scrt(info, toks, chunk_frames=gold.GOLDEN_V2_CHUNK_FRAMES) == data
    # the 16-hex model sha is stored as its 8 bytes
    assert bytes.fromhex(info.model) in data[:r.header_bytes]
    assert info.model.encode() not in data


def test_bitstream_modules_do_not_import_torch():
    """The format must stay readable without torch (a UDP relay, a file inspector)."""
    import ast

    import semanticodec_rt.bitstream as pkg

    for path in Path(pkg.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not any(n.split(".")[0] == "torch" for n in names), path.name


def test_header_layout_must_be_the_models_and_strings_print_safely():
    """A stream naming the right model sha with another layout is refused (ModelMismatchError,
    a BitstreamError); strings from a header are escaped before printing."""
    from semanticodec_rt.bitstream import ModelMismatchError, check_model, layout_mismatch, printable

    ok = StreamInfo(model="abc", config="m", token_rate=100, semantic_vocab=8192, acoustic_vocab=8192,
                    sample_rate=16000)
    check_model(ok, "abc", "m", ok)
    for field, value in (("token_rate", 50), ("semantic_vocab", 1 << 20), ("acoustic_vocab", 4096),
                         ("sample_rate", 8000)):
        bad = dataclasses.replace(ok, **{field: value})
        assert field in layout_mismatch(bad, ok)
        with pytest.raises(ModelMismatchError, match=field):
            check_model(bad, "abc", "m", ok)
    assert layout_mismatch(ok, ok) is None
    evil = "x\x1b[2J\x1b]0;pwned\x07\ud800" + "y" * 100
    shown = printable(evil)
    assert "\x1b" not in shown and "\x07" not in shown and "\\x1b" in shown and shown.endswith("...")
    shown.encode("utf-8")  # no lone surrogate left: printing it cannot fail
    with pytest.raises(ModelMismatchError) as e:
        check_model(dataclasses.replace(ok, model="zz", config=evil), "abc", "m")
    assert "\x1b" not in str(e.value)
