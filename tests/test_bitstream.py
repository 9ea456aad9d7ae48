"""The ``.scrt`` bitstream: bit packing, packets, container, bitrates, robustness and a golden file.

The byte layouts are re-derived here with ``struct`` (``_assemble``, ``_packet_body``) instead
of calling the writer, so these tests pin the format itself and not only writer/reader symmetry.
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
import zlib
from pathlib import Path

import numpy as np
import pytest

from semanticodec_rt.bitstream import (
    FORMAT_VERSION, MAGIC, PACKET_OVERHEAD, BitstreamError, ModelMismatchError, Packet, PacketKind,
    ScrtReader, ScrtWriter, StreamInfo, bits_for_vocab, check_model, decode_packet, default_frames_per_packet,
    encode_packet, pack_bits, pack_fields, packed_size, read_scrt, unpack_bits, unpack_fields, write_scrt,
)
from semanticodec_rt.config import SEMANTIC_VOCAB_SIZES, TOKEN_RATES, official_config

pytestmark = pytest.mark.bitstream

ASSETS = Path(__file__).resolve().parent / "assets"
# Changing this hash means the .scrt format changed: bump FORMAT_VERSION and regenerate.
GOLDEN_SHA256 = "5b0150537dd0af193c6e6dc46a0c4a18b7bf77f8abe10aa3cbd22a590f2210bb"


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


def _assemble(meta, packets, *, magic=MAGIC, version=FORMAT_VERSION, json_len=None, crc=None):
    """A .scrt built by hand: header (+CRC), then u16-length-prefixed packets."""
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
    for bad in (1, 0, -5, (1 << 32) + 1, True, 3.0):
        _raises(bits_for_vocab, bad)


@pytest.mark.parametrize("bits", range(1, 33))
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
    for bits in (0, 33, -1, True, 8.0):
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
            data = _scrt(info, ids)
            # the file is exactly the documented layout
            assert data == _assemble(dataclasses.replace(info, n_frames=n).to_json_dict(),
                                     _encode_all(info, ids))
            got, toks, packets = read_scrt(data)
            assert got == dataclasses.replace(info, n_frames=n)
            assert toks.dtype == np.int64 and toks.shape == (n, 2)
            np.testing.assert_array_equal(toks, ids)
            assert len(packets) == math.ceil(n / fpp) + 1 and packets[-1].kind is PacketKind.END
            assert [p.first_frame for p in packets] == [*range(0, n, fpp), n]
            assert [p.seq for p in packets] == list(range(len(packets)))


def test_container_paths_and_incremental_writer(tmp_path):
    rng = np.random.default_rng(3)
    info = _info(50, 16384, n_samples=99_999)
    ids = _ids(rng, 1234, 16384)
    path = tmp_path / "a.scrt"
    written = write_scrt(path, info, ids)
    assert written.n_frames == 1234 and written.frames_per_packet == 4
    whole = path.read_bytes()
    # The live writer (totals unknown up front, odd chunk sizes) gives the same packets; only
    # the header differs (null totals), and the reader takes the totals from END.
    live = dataclasses.replace(info, n_samples=None)
    buf = io.BytesIO()
    with ScrtWriter(buf, live) as w:
        i = 0
        for size in rng.integers(0, 50, 200):
            w.write_frames(ids[i : i + size])
            i += size
        w.write_frames(ids[i:])
        assert w.frames_written == 1234
        w.close(n_samples=99_999)
    stream = buf.getvalue()
    head_live = len(_assemble(live.to_json_dict(), []))
    head_whole = len(_assemble(written.to_json_dict(), []))
    assert stream[head_live:] == whole[head_whole:]
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
    data = _scrt(info, _ids(np.random.default_rng(rate), n, vocab))
    _, _, packets = read_scrt(data)
    payload = sum(p.n_bytes - PACKET_OVERHEAD for p in packets if p.kind is PacketKind.TOKENS)
    assert payload == n * info.frame_bits // 8
    assert payload * 8 / seconds == info.payload_bps
    # and everything else is accounted for: header + 17 bytes per packet + END
    header = len(_assemble(info.to_json_dict(), []))
    assert len(data) == header + payload + (2 + PACKET_OVERHEAD) * (n // fpp) + 2 + 23


def test_payload_bitrate_examples():
    assert _info(100, 32768).payload_bps == 1400
    assert _info(100, 4096).payload_bps == 1250
    assert _info(25, 4096).payload_bps == 312.5
    assert _info(50, 1000).payload_bps == 25 * (10 + 13)
    # a partial last packet pads to whole bytes: 5 frames x 28 bits = 140 bits -> 18 bytes
    _, _, packets = read_scrt(_scrt(_info(frames_per_packet=8), np.zeros((13, 2), np.int64)))
    assert [p.n_bytes - PACKET_OVERHEAD for p in packets[:-1]] == [28, 18]


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
    msg = _raises(read_scrt, _assemble(meta, packets, version=2), match="version")
    assert "version 2" in msg and f"version {FORMAT_VERSION}" in msg
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


class _Mutator:
    """Seeded corruptions of a valid stream; each call returns one candidate input."""

    def __init__(self, seed: int, meta: dict, packets: list[bytes]):
        self.rng = random.Random(seed)
        self.meta, self.packets = meta, packets
        self.base = _assemble(meta, packets)

    def __call__(self) -> bytes:
        r, b = self.rng, bytearray(self.base)
        op = r.randrange(9)
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
        elif op == 3:  # delete bytes
            i = r.randrange(len(b))
            del b[i : i + r.randint(1, 8)]
        elif op == 4:  # random garbage, sometimes behind a valid-looking prefix
            g = r.randbytes(r.randrange(600))
            b = bytearray(g if r.random() < 0.5 else self.base[: r.randrange(30)] + g)
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
    assert _scrt(info, toks) == data


def test_bitstream_modules_do_not_import_torch():
    """The format must stay readable without torch (a UDP relay, a file inspector)."""
    import ast

    import semanticodec_rt.bitstream as pkg

    for path in Path(pkg.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not any(n.split(".")[0] == "torch" for n in names), path.name
