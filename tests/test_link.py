"""The UDP voice link (``semanticodec_rt.link``, ``link send|recv``).

Three kinds of tests: the pure parts (datagrams, sequence window, concealment, jitter buffer) with
explicit times; long runs through :class:`ReceiverCore` on a virtual clock with a silent decoder
(60 s of stream in well under a second); and short real-time runs over 127.0.0.1 with the rt-tiny
random-weight codec, through a seeded lossy relay.  The codec is noise, so these check plumbing
(ids, lengths, counters), not sound.  Nothing asserts wall-clock times: "keeps up" is read off
the receiver's own counters (no unit dropped by the decode queue, no late packet the relay did
not delay).
"""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from semanticodec_rt import StreamingDecoder, StreamingEncoder, cli
from semanticodec_rt.audio.load import load_waveform
from semanticodec_rt.bitstream import StreamInfo
from semanticodec_rt.codec import SemantiCodec
from semanticodec_rt.config import rt_config
from semanticodec_rt.link import (
    CodecDecoder, Concealer, DatagramError, ImpairedChannel, Impairments, JitterBuffer, NullSink, Packetizer,
    ReceiverCore, SeqWindow, SilentDecoder, WavSink, receive_stream, run_loopback,
)
from semanticodec_rt.link.datagram import MAX_DATAGRAM, DatagramKind, decode_datagram, encode_datagram
from semanticodec_rt.link.sender import file_blocks
from semanticodec_rt.link.seqwindow import SeqStatus
from semanticodec_rt.link.worker import DecodeWorker

pytestmark = pytest.mark.link

SR = 16000
UNIT_SAMPLES = 2560
SPEECH = Path("/usr/share/asterisk/sounds/en_US_f_Allison/demo-congrats.wav")
KEY = b"0123456789abcdef-test-key"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: sender, relay, receiver and decoder share two busy cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def codec():
    return SemantiCodec.random(rt_config("rt-tiny", 100), seed=0)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """2 s of real speech at 8 kHz (the front end resamples), else a synthetic tone burst."""
    path = tmp_path_factory.mktemp("link") / "clip.wav"
    if SPEECH.exists():
        x, sr = sf.read(str(SPEECH), dtype="float32")
        x = x[: 2 * sr]
    else:
        sr = 8000
        t = np.arange(2 * sr) / sr
        x = (0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 2 * t) > 0)).astype(np.float32)
    sf.write(str(path), x, sr)
    return path


@pytest.fixture(scope="module")
def wave(clip) -> np.ndarray:
    return load_waveform(clip)[0][0].numpy()


@pytest.fixture(scope="module")
def offline_ids(codec, wave) -> np.ndarray:
    enc = StreamingEncoder(codec)
    x = torch.from_numpy(wave)[None]
    return torch.cat([enc.push(x), enc.flush()], dim=1)[0].numpy()


def _info(fpp: int = 8, model: str = "m0del") -> StreamInfo:
    return StreamInfo(model=model, config="rt-tiny-r100-v8192", token_rate=100, semantic_vocab=8192,
                      acoustic_vocab=8192, sample_rate=SR, frames_per_packet=fpp)


class Recording:
    """A unit decoder that records what it is given, in front of another."""

    def __init__(self, inner):
        self.inner, self.unit_samples = inner, inner.unit_samples
        self.ids, self.pad = [], []

    def push(self, ids, pad):
        self.ids.append(ids)
        self.pad.append(pad)
        return self.inner.push(ids, pad)

    def flush(self):
        return self.inner.flush()

    def reset(self):
        self.inner.reset()

    def frames(self):
        return np.concatenate(self.ids), np.concatenate(self.pad)


# -- pure parts ------------------------------------------------------------------------------------
def test_datagram_auth_and_rejections():
    body = b"\x01" + bytes(30)
    plain = encode_datagram(DatagramKind.DATA, 7, body)
    tagged = encode_datagram(DatagramKind.DATA, 7, body, KEY)
    assert len(plain) == 5 + len(body) and len(tagged) == len(plain) + 16
    dg = decode_datagram(tagged, KEY)
    assert (dg.kind, dg.session, dg.body, dg.authenticated) == (DatagramKind.DATA, 7, body, True)
    assert decode_datagram(plain).body == body

    def reason(data, key=None):
        with pytest.raises(DatagramError) as e:
            decode_datagram(data, key)
        return e.value.reason

    assert reason(tagged, b"another-key-of-16-bytes") == "auth"  # wrong key
    assert reason(tagged) == "auth"  # tagged, but this end has no key
    assert reason(plain, KEY) == "auth"  # a key is required
    for i in range(len(tagged)):  # any single bit flip breaks the tag (or the header)
        flipped = bytearray(tagged)
        flipped[i] ^= 1 << (i % 8)
        assert reason(bytes(flipped), KEY) in ("auth", "garbage")
    assert reason(b"") == reason(b"\x10\0\0\0") == "garbage"
    assert reason(b"\x70" + bytes(20)) == "garbage"  # link version 7
    assert reason(bytes(MAX_DATAGRAM + 1)) == "oversized"
    with pytest.raises(ValueError, match="exceeds"):
        encode_datagram(DatagramKind.DATA, 1, bytes(MAX_DATAGRAM))


def test_seq_window_wraps_and_detects_repeats():
    w = SeqWindow(64)
    seqs = [(2**32 - 3 + i) % 2**32 for i in range(8)]  # 4294967293 .. 4, across the u32 wrap
    exts = []
    for s in seqs[:4] + seqs[5:]:  # seqs[4] (= 1) comes late
        ext = w.unwrap(s)
        assert w.check(ext) is SeqStatus.NEW
        w.mark(ext)
        exts.append(ext)
    assert exts == list(range(2**32 - 3, 2**32 + 1)) + list(range(2**32 + 2, 2**32 + 5))
    late = w.unwrap(seqs[4])
    assert late == 2**32 + 1 and w.check(late) is SeqStatus.NEW
    w.mark(late)
    assert w.check(w.unwrap(seqs[4])) is SeqStatus.DUPLICATE
    assert w.check(w.unwrap(seqs[0])) is SeqStatus.DUPLICATE
    for s in range(5, 80):  # 75 more packets push seqs[0] out of the 64-packet window
        w.mark(w.unwrap(s))
    assert w.check(w.unwrap(seqs[0])) is SeqStatus.TOO_OLD
    assert w.check(w.unwrap(70)) is SeqStatus.DUPLICATE and w.check(w.unwrap(80)) is SeqStatus.NEW
    assert SeqWindow(64).check(-1) is SeqStatus.TOO_OLD  # before the stream's first number
    with pytest.raises(ValueError):
        SeqWindow(32)


def test_concealment_repeat_and_pad():
    ids = np.arange(16).reshape(8, 2)
    miss = np.array([1, 1, 0, 1, 0, 0, 1, 1], bool)
    out, pad = Concealer("repeat").apply(ids, miss)  # stream start: lead filled from the next frame
    assert not pad.any()
    assert out[:, 0].tolist() == [4, 4, 4, 4, 8, 10, 10, 10]
    c = Concealer("repeat")
    c.apply(ids[:2], np.zeros(2, bool))
    out, pad = c.apply(ids, np.ones(8, bool))  # a whole unit lost: hold the last frame
    assert (out == ids[1]).all() and not pad.any()
    out, pad = Concealer("repeat").apply(ids, np.ones(8, bool))  # nothing ever came: pad
    assert pad.all()
    out, pad = Concealer("pad").apply(ids, miss)
    assert (pad == miss).all() and (out[miss] == 0).all() and (out[~miss] == ids[~miss]).all()
    with pytest.raises(ValueError):
        Concealer("interpolate")


def test_decoder_pad_hook_equals_the_stream_start_fill(codec, monkeypatch):
    """A masked position reads exactly like the -1 fill before the stream start."""
    import semanticodec_rt.windowing.unit_grid as rc

    windows = []

    def capture(decoder, cfg, w, unit_index, **kw):
        windows.extend(w.clone())
        return torch.zeros(w.shape[0], 1, rc.window_samples(cfg))

    monkeypatch.setattr(rc, "sample_windows", capture)
    tu = codec.cfg.tokens_per_unit
    assert rc.decoder_units(codec.cfg) == 2  # a window: the unit and the one before it
    tokens = torch.randint(0, 8192, (1, 2 * tu, 2), generator=torch.Generator().manual_seed(0))
    dec = StreamingDecoder(codec)
    dec.push(tokens[:, :tu])  # unit 0: its past is the -1 fill of the stream start
    start_window = windows[-1]
    dec = StreamingDecoder(codec)
    dec.push(tokens[:, tu:], torch.ones(1, tu, dtype=torch.bool))  # a lost unit ...
    dec.push(tokens[:, :tu])  # ... then the same ids as unit 0
    assert torch.equal(windows[-1], start_window)
    # a partly lost unit: only the masked rows are -1
    dec = StreamingDecoder(codec)
    miss = torch.zeros(1, tu, dtype=torch.bool)
    miss[0, 2:5] = True
    dec.push(tokens[:, :tu], miss)
    w = windows[-1][tu:]  # the unit's own rows
    assert (w[2:5] == -1).all() and torch.equal(w[:2], start_window[tu : tu + 2])
    assert torch.equal(w[5:], start_window[tu + 5 :])
    with pytest.raises(ValueError, match="missing"):
        StreamingDecoder(codec).push(tokens[:, :tu], torch.zeros(1, tu - 1, dtype=torch.bool))


def test_jitter_buffer_reorders_adapts_and_bounds():
    jb = JitterBuffer(8, 50.0, 8, min_delay=0.04, max_delay=0.5)
    ids = np.arange(80).reshape(40, 2)
    # one unit per packet, ready every 160 ms, unit 1 arriving after unit 2
    arrive = {0: 0.17, 2: 0.50, 1: 0.51, 3: 0.65}
    for p, t in arrive.items():
        jb.insert(8 * p, ids[8 * p : 8 * p + 8], t)
    units = jb.pop(0.66)
    assert [u.index for u in units] == [0, 1, 2, 3] and not any(u.missing.any() for u in units)
    assert np.array_equal(np.concatenate([u.ids for u in units]), ids[:32])
    assert jb.frames_concealed == 0 and jb.held == 0
    # unit 4 never comes: concealed at its deadline, not before
    dl = jb.deadline(4)
    assert jb.pop(dl - 1e-6) == [] and jb.pop(dl)[0].missing.all()
    placed = jb.insert(32, ids[32:40], dl + 0.01)  # too late now
    assert placed.late == 8 and placed.new == 0
    # steady 100 ms jitter raises the delay, bounded by max_delay; calm lets it fall back
    rng = np.random.default_rng(0)
    for u in range(5, 300):
        t = (u + 1) * 0.16 + 0.01 + rng.uniform(0, 0.1 if u < 150 else 0.003)
        jb.insert(8 * u, ids[:8], t)
        jb.pop(t)
        assert jb.delay <= 0.5 and jb.held <= jb.capacity
        if u == 149:
            assert jb.delay > 0.08
    assert jb.delay < 0.05
    # far ahead of the ring: dropped, not stored
    assert jb.insert(10**6, ids[:8], 50.0).overflow == 8


def test_decode_worker_is_bounded_and_keeps_the_length():
    class Slow(SilentDecoder):
        def push(self, ids, pad):
            time.sleep(0.002)
            return super().push(ids, pad)

    sink = NullSink()
    worker = DecodeWorker(Slow(8, UNIT_SAMPLES), sink, capacity=4, batch=2)
    ids, pad = np.zeros((8, 2), np.int64), np.zeros(8, bool)
    for _ in range(200):
        worker.put(ids, pad)
    worker.put(ids, pad, block=True)
    worker.close()
    assert worker.max_queue <= 4 and worker.dropped > 0
    assert worker.decoded + worker.dropped == 201
    assert sink.n_samples == 201 * UNIT_SAMPLES  # dropped units became silence


# -- virtual-clock runs (silent decoder) -----------------------------------------------------------
def _simulate(seconds, imp, *, key=None, recv_key=None, plc="repeat", fpp=8, inject=None, drop_end=False):
    """Sender -> impaired channel -> ReceiverCore on a virtual clock; returns the pieces.

    ``inject(t, datagrams_so_far) -> [bytes]`` adds datagrams (attacks) at each unit time.
    """
    info = _info(fpp)
    pk = Packetizer(info, key=key, session=11)
    core = ReceiverCore(info, 8, key=recv_key if recv_key is not None else key, plc=plc)
    ch = ImpairedChannel(imp)
    rng = np.random.default_rng(5)
    sent_ids, got_ids, got_pad, sent = [], [], [], []

    def deliver(until):
        while True:
            times = [t for t in (ch.next_due(), core.next_deadline()) if t is not None and t <= until]
            if not times:
                return
            t = min(times)
            for d in ch.due(t):
                deliver_replies(core.handle(d, t), t)
            for ids, pad in core.poll(t):
                got_ids.append(ids)
                got_pad.append(pad)

    def send(datagrams, t):
        sent.extend(datagrams)
        for d in datagrams:
            ch.push(d, t)

    def deliver_replies(datagrams, t):
        for reply in datagrams:  # a keyed link's ACCEPT: back to the sender at once
            send(pk.accept(reply), t)

    send(pk.start(), 0.0)
    n_units = int(seconds / 0.16)
    for u in range(n_units):
        t = (u + 1) * 0.16
        deliver(t)
        ids = rng.integers(0, 8192, (8, 2))
        sent_ids.append(ids)
        send(pk.push(ids), t + 0.005)
        if inject is not None:
            for d in inject(t, sent):
                deliver_replies(core.handle(d, t + 0.002), t + 0.002)
    if not drop_end:
        send(pk.end(n_units * UNIT_SAMPLES - 123), n_units * 0.16 + 0.005)
    deliver(n_units * 0.16 + 5.0)
    for ids, pad in core.finish():
        got_ids.append(ids)
        got_pad.append(pad)
    return pk, core, ch, np.concatenate(sent_ids), got_ids, got_pad


def _check_accounting(pk, core, snap):
    """The counters add up."""
    if snap["end_received"]:
        assert snap["expected"] == pk.stats.packets_sent
    assert snap["packets_received"] + snap["lost"] == snap["expected"]
    assert snap["frames_received"] + snap["frames_concealed"] == snap["frames_played"]
    assert 0 <= snap["late"] <= snap["packets_received"]


@pytest.mark.parametrize("loss", [0.1, 0.2])
def test_virtual_60s_lossy_run_is_bounded_and_adds_up(loss):
    imp = Impairments(loss=loss, duplicate=0.05, reorder=0.05, jitter=0.03, late=0.02, seed=3)
    tracemalloc.start()
    try:
        _simulate(10, imp)  # warm-up: imports, numpy caches
        base = tracemalloc.get_traced_memory()[0]
        pk, core, ch, sent_ids, got_ids, got_pad = _simulate(60, imp)
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    # what the run keeps: the sent and received id lists of the test itself (~0.1 MB), the
    # receiver only its fixed ring and bounded deques
    assert grown < 1_000_000, grown
    snap = core.snapshot()
    _check_accounting(pk, core, snap)
    assert snap["end_received"] and snap["frames_played"] == len(sent_ids) == 375 * 8
    assert snap["lost"] > 0 and snap["duplicates"] > 0 and snap["reordered"] > 0 and snap["late"] > 0
    assert snap["late"] <= ch.delayed_late + ch.reordered  # late only where the channel delayed
    assert snap["buffer_max_frames"] <= snap["buffer_capacity_frames"]
    assert 40 <= snap["delay_ms"] <= snap["max_delay_ms"] <= 1000
    ids, pad = np.concatenate(got_ids), np.concatenate(got_pad)
    played = ids[: len(sent_ids)]
    received = (played == sent_ids).all(axis=1)
    assert received.sum() >= snap["frames_received"]  # a repeat can equal the lost frame
    assert not pad.any()  # repeat: the stream start came, so no pad
    # sent 1.3 kbps of ids; the receiver counts only what it played in time
    assert pk.stats.to_dict()["payload_kbps"] == 1.3
    assert snap["payload_kbps"] == pytest.approx(1.3 * snap["frames_received"] / snap["frames_played"], abs=1e-3)


def test_virtual_rejections_never_crash_and_are_counted():
    """Garbage, truncation, oversize, bit flips, wrong key, replays, another model, another session."""
    rng = np.random.default_rng(9)
    other_model = Packetizer(_info(model="another"), key=KEY, session=99)
    other_session = Packetizer(_info(), key=KEY, session=12)
    wrong_key = Packetizer(_info(), key=b"not-the-right-key!", session=11)
    attacks = {}

    def inject(t, sent):
        data = [d for d in sent if d[0] & 7 == DatagramKind.DATA]
        out = {
            "garbage": [rng.bytes(int(rng.integers(0, 200)))],
            "truncated": [data[-1][:-20]],  # tag cut: refused by the MAC first
            "oversized": [bytes(MAX_DATAGRAM + 5)],
            "flipped": [_flip(data[-1], rng)],
            "replay": [data[int(rng.integers(0, len(data)))]],
            "wrong_key": wrong_key.push(rng.integers(0, 8192, (8, 2))),
            "model": other_model.start()[:1] + other_model.push(rng.integers(0, 8192, (8, 2))),
            "session": other_session.start()[:1] + other_session.push(rng.integers(0, 8192, (8, 2))),
        }
        for k, v in out.items():
            attacks[k] = attacks.get(k, 0) + len(v)
        return [d for v in out.values() for d in v]

    pk, core, ch, sent_ids, got_ids, got_pad = _simulate(10, Impairments(), key=KEY, inject=inject)
    snap = core.snapshot()
    rej = snap["rejected"]
    assert snap["frames_concealed"] == 0 and snap["lost"] == 0
    assert np.array_equal(np.concatenate(got_ids)[: len(sent_ids)], sent_ids)  # the stream is intact
    assert rej["oversized"] == attacks["oversized"]
    assert rej["model_mismatch"] == attacks["model"] and "another" in snap["model_mismatch_error"]
    assert rej["other_session"] == attacks["session"]
    # tags catch truncation, flips and the wrong key; random garbage mostly fails the header
    assert rej["auth"] + rej["garbage"] == (attacks["garbage"] + attacks["truncated"] + attacks["flipped"]
                                            + attacks["wrong_key"])
    assert rej["replay"] == attacks["replay"]
    assert snap["rejected_total"] == sum(attacks.values())


def test_virtual_unauthenticated_corruption_is_classified():
    rng = np.random.default_rng(4)
    counts = {}

    def inject(t, sent):
        d = [x for x in sent if x[0] & 7 == DatagramKind.DATA][-1]
        out = {"bad_crc": [_flip(d, rng, start=5 + 11)], "truncated": [d[:-3]],
               "dup": [d]}
        for k, v in out.items():
            counts[k] = counts.get(k, 0) + len(v)
        return [x for v in out.values() for x in v]

    pk, core, ch, sent_ids, got_ids, _ = _simulate(5, Impairments(), inject=inject)
    snap = core.snapshot()
    assert snap["rejected"]["bad_crc"] == counts["bad_crc"]
    assert snap["rejected"]["truncated"] == counts["truncated"]
    assert snap["duplicates"] == counts["dup"]
    assert np.array_equal(np.concatenate(got_ids)[: len(sent_ids)], sent_ids)


def test_virtual_pending_until_hello_and_lost_end():
    """DATA before any HELLO waits (bounded); without END the length is the whole units received."""
    info = _info()
    pk = Packetizer(info, session=3, hello_every=0)
    core = ReceiverCore(info, 8)
    hellos = pk.start()
    data = [d for u in range(80) for d in pk.push(np.full((8, 2), u))]
    for i, d in enumerate(data):
        core.handle(d, 0.16 * (i + 1))  # 80 packets, more than the pending buffer holds
    assert core.stats.rejected["no_session"] == 80 - 64
    core.handle(hellos[0], 13.0)
    units = core.poll(13.0) + core.finish()
    snap = core.snapshot()
    assert snap["packets_received"] == 64 and snap["lost"] == 16
    # playout starts at the first packet that came (the 16 units before it are not played); a
    # unit past the last frame may be out already (its deadline passed) but is not in the stream
    assert len(units) >= 64 and core.n_samples() == 64 * UNIT_SAMPLES
    assert (snap["frames_played"], snap["frames_skipped"], snap["frames_concealed"]) == (64 * 8, 16 * 8, 0)
    assert np.array_equal(np.concatenate([ids for ids, _ in units[:64]])[::8, 0], np.arange(16, 80))


def _flip(data: bytes, rng, start: int = 0) -> bytes:
    out = bytearray(data)
    i = int(rng.integers(start, len(out)))
    out[i] ^= 1 << int(rng.integers(0, 8))
    return bytes(out)


# -- real time over 127.0.0.1 ----------------------------------------------------------------------
def _run_link(codec, wave, tmp_path, *, plc="repeat", **kw):
    """:func:`run_loopback` into a float WAV, recording what the decoder is given."""
    out = tmp_path / f"heard_{plc}.wav"
    dec = Recording(CodecDecoder(codec))
    sent, got, ch = run_loopback(codec, wave, plc=plc, decoder=dec, sink=WavSink(out, SR, 3 * SR, use_float=True),
                                 **kw)
    audio, sr = sf.read(str(out), dtype="float32")
    assert sr == SR
    return sent, got, audio, dec, ch


@pytest.mark.heavy
def test_udp_lossless_equals_offline(codec, wave, offline_ids, tmp_path):
    """0 % loss: the same ids as encoding the whole file, the same audio as decoding them; junk
    sent to the receiver's port mid-stream is counted and changes nothing."""

    def with_junk(blocks, tx, target):
        for k, item in enumerate(blocks):
            if k == 4:
                for junk in (b"", b"\x72garbage", bytes(MAX_DATAGRAM + 1), b"\x11\0\0\0\x01" + bytes(9)):
                    tx.sendto(junk, target)
            yield item

    sent, got, audio, dec, _ = _run_link(codec, wave, tmp_path, min_delay=0.5, wrap_blocks=with_junk)
    ids, pad = dec.frames()
    assert np.array_equal(ids, offline_ids) and not pad.any()
    ref = StreamingDecoder(codec, n_samples=len(wave))
    x = torch.from_numpy(offline_ids)[None]
    ref = torch.cat([ref.push(x), ref.flush()], dim=-1)[0, 0].numpy()
    assert audio.shape == ref.shape == wave.shape
    assert np.abs(audio - ref).max() < 1e-5
    assert got["lost"] == got["late"] == got["frames_concealed"] == got["decode_dropped_units"] == 0
    assert got["packets_received"] == got["expected"] == sent["packets_sent"]
    assert got["frames_received"] == sent["frames_sent"] == len(offline_ids)
    rejected = got["rejected"]
    assert (rejected["garbage"], rejected["oversized"], rejected["other_session"]) == (2, 1, 1)
    assert got["rejected_total"] == 4
    assert got["payload_kbps"] == sent["payload_kbps"] == 1.3
    assert got["wire_kbps"] > got["payload_kbps"]


@pytest.mark.heavy
@pytest.mark.parametrize("loss,plc,fpp,seed", [(0.1, "repeat", 2, 1), (0.2, "pad", 1, 2)])
def test_udp_lossy_relay_keeps_up_and_adds_up(codec, wave, tmp_path, loss, plc, fpp, seed):
    """Small packets (1-2 positions) for many datagrams: ~100 in 2 s of speech."""
    imp = Impairments(loss=loss, duplicate=0.1, reorder=0.1, jitter=0.01, late=0.05, late_delay=1.2, seed=seed)
    # min_delay 0.3 s: a sender thread stalled by a busy machine is not what this test is about
    sent, got, audio, dec, ch = _run_link(codec, wave, tmp_path, imp=imp, plc=plc, key=KEY, min_delay=0.3,
                                          frames_per_packet=fpp)
    assert ch.dropped and ch.duplicated and ch.reordered and ch.delayed_late  # all of it happened
    assert got["end_received"]  # END goes three times: with these seeds one copy arrives
    assert len(audio) == len(wave)
    assert got["expected"] == sent["packets_sent"]
    assert got["packets_received"] + got["lost"] == got["expected"] and got["lost"] > 0
    assert got["frames_received"] + got["frames_concealed"] == got["frames_played"] == sent["frames_sent"]
    # keeps up: the decode queue never overflowed, nothing was late that the relay did not delay
    assert got["decode_dropped_units"] == 0 and got["decode_queue_max"] < got["decode_queue_capacity"]
    assert got["late"] <= ch.delayed_late + ch.reordered
    # with a key, network duplicates are refused as replays
    assert got["duplicates"] == 0 and got["rejected"]["replay"] <= ch.duplicated
    ids, pad = dec.frames()
    assert len(ids) == sent["frames_sent"]
    if plc == "pad":
        assert pad.sum() == got["frames_concealed"]
    else:
        assert not pad[8:].any()


def test_udp_lost_end_times_out_with_the_received_length(tmp_path):
    """No END: the receiver stops after --timeout and writes the whole units it got."""
    info = _info()
    pk = Packetizer(info)
    datagrams = pk.start() + [d for u in range(12) for d in pk.push(np.full((8, 2), u))]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        rx.bind(("127.0.0.1", 0))

        def send():
            for d in datagrams:
                tx.sendto(d, rx.getsockname())
                time.sleep(0.005)

        thread = threading.Thread(target=send)
        thread.start()
        out = tmp_path / "no_end.wav"
        got = receive_stream(rx, ReceiverCore(info, 8), SilentDecoder(8, UNIT_SAMPLES),
                             WavSink(out, SR, 2 * SR), timeout=0.3, wait=10)
        thread.join()
    assert got["timed_out"] and not got["end_received"]
    assert got["n_samples"] == sf.info(str(out)).frames == 12 * UNIT_SAMPLES
    assert got["frames_played"] == got["frames_received"] == 96 and got["lost"] == 0


# -- command line ----------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_recv(args: list) -> tuple[threading.Thread, dict]:
    """``link recv`` on a thread; returns once its port is bound (the model is loaded by then)."""
    result = {}
    port = int(args[args.index("--port") + 1])
    thread = threading.Thread(target=lambda: result.update(rc=cli.main(["link", "recv", *args])))
    thread.start()
    udp = Path("/proc/net/udp")
    if not udp.exists():  # not Linux: give the model time to load
        time.sleep(10)
        return thread, result
    for _ in range(1200):  # bound = listed in /proc/net/udp (binding it ourselves could race)
        if f":{port:04X} " in udp.read_text():
            return thread, result
        assert thread.is_alive(), result
        time.sleep(0.05)
    raise AssertionError("link recv did not start")


@pytest.mark.heavy
def test_cli_send_recv_with_key(clip, wave, tmp_path, capsys):
    key = tmp_path / "link.key"
    key.write_text("c2VjcmV0LWtleS1mb3ItdGhlLWxpbmstdGVzdAo=\n")
    out, rstats, sstats = tmp_path / "heard.wav", tmp_path / "r.json", tmp_path / "s.json"
    port = _free_port()
    model = ["--model", "preset:rt-tiny-r100", "--random-weights-ok", "--key-file", key, "-q"]
    thread, result = _start_recv(["--port", port, "--bind", "127.0.0.1", "--file", out, "--plc", "pad",
                                  "--wait", 30, "--stats-json", rstats, "--steps", 1, *model])
    rc = cli.main(["link", "send", "--to", f"127.0.0.1:{port}", "--file", clip, "--frames-per-packet", 5,
                   "--stats-json", sstats, *model])
    thread.join()
    assert rc == 0 and result["rc"] == 0
    assert sf.info(str(out)).frames == len(wave)
    s, r = json.loads(sstats.read_text()), json.loads(rstats.read_text())
    assert (s["role"], r["role"], r["plc"]) == ("send", "recv", "pad")
    assert r["session"] == s["session"] and r["packets_received"] == s["packets_sent"]
    assert s["overhead_kbps"]["auth"] > 0 and s["wire_kbps"] > s["payload_kbps"] == 1.3
    capsys.readouterr()


@pytest.mark.heavy
def test_cli_recv_refuses_another_model(clip, tmp_path, capsys):
    out, port = tmp_path / "never.wav", _free_port()
    thread, result = _start_recv(["--port", port, "--bind", "127.0.0.1", "--file", out, "--timeout", 0.5,
                                  "--wait", 30, "--model", "preset:rt-tiny-r100", "--random-weights-ok", "-q"])
    short = tmp_path / "short.wav"
    x, sr = sf.read(str(clip), dtype="float32")
    sf.write(str(short), x[: sr // 2], sr)
    rc = cli.main(["link", "send", "--to", f"127.0.0.1:{port}", "--file", short, "-q",
                   "--model", "preset:rt-tiny-r100-v256", "--random-weights-ok"])
    thread.join()
    err = capsys.readouterr().err
    assert rc == 0 and result["rc"] == 2 and not out.exists()
    lines = [l for l in err.splitlines() if l.startswith("semanticodec-rt: error:")]
    assert len(lines) == 1 and "rt-tiny-r100-v256" in lines[0] and "rt-tiny-r100-v8192" in lines[0]


def test_cli_errors(capsys):
    for argv, frag in [
        (["link"], "needs a subcommand"),
        (["link", "send", "--to", "nohostport", "--file", "x.wav"], "HOST:PORT"),
        (["link", "recv", "--port", "5004"], "one of the arguments --file --output is required"),
    ]:
        rc = cli.main(argv)
        err = capsys.readouterr().err
        assert rc == 2 and frag in err, (argv, err)


def test_recv_listens_on_this_machine_unless_keyed_or_insecure(tmp_path, capsys):
    """The default bind is 127.0.0.1; another address without a key is refused before anything
    is bound, and with --insecure it is allowed with a warning."""
    model = ["--model", "preset:rt-tiny-r100", "--random-weights-ok", "-q", "--wait", "0.2"]
    assert cli.build_parser().parse_args(["link", "recv", "--port", "5004", "--file", "x.wav"]).bind == "127.0.0.1"
    rc = cli.main(["link", "recv", "--port", 0, "--bind", "0.0.0.0", "--file", tmp_path / "a.wav", *model])
    err = capsys.readouterr().err
    assert rc == 2 and "without a key" in err and "--key-file" in err
    assert not (tmp_path / "a.wav").exists()
    rc = cli.main(["link", "recv", "--port", 0, "--bind", "0.0.0.0", "--insecure", "--file", tmp_path / "b.wav",
                   *model])
    err = capsys.readouterr().err
    assert "warning: listening on 0.0.0.0 without a key" in err
    assert rc == 2 and "no stream received" in err  # it listened (and nothing came)
    key = tmp_path / "k"
    key.write_text("c2VjcmV0LWtleS1mb3ItdGhlLXRlc3Qtb25seS0wMTIzNDU2Nzg5\n")
    rc = cli.main(["link", "recv", "--port", 0, "--bind", "0.0.0.0", "--key-file", key, "--file", tmp_path / "c.wav",
                   *model])
    err = capsys.readouterr().err
    assert "warning" not in err and "no stream received" in err



def test_cli_device_audio_without_portaudio_is_one_line_error(monkeypatch, capsys):
    """``--input`` / ``--output`` go through the live device layer (live.streams): no PortAudio is
    one error line and exit status 1 at either end, as for ``live``."""
    from semanticodec_rt.live import devices

    def missing():
        raise devices.AudioUnavailable("PortAudio library not found (install the system package libportaudio2)")

    monkeypatch.setattr(devices, "sounddevice", missing)
    model = ["--model", "preset:rt-tiny-r100", "--random-weights-ok", "-q"]
    for argv in (["link", "send", "--to", f"127.0.0.1:{_free_port()}", "--input", "0", *model],
                 ["link", "recv", "--port", 0, "--bind", "127.0.0.1", "--output", "0", *model]):
        rc = cli.main(argv)
        err = capsys.readouterr().err
        lines = [l for l in err.splitlines() if l.startswith("semanticodec-rt: error:")]
        assert rc == 1 and len(lines) == 1 and "libportaudio2" in lines[0] and "Traceback" not in err, (argv, err)


def test_hello_with_the_models_sha_but_another_layout_is_refused():
    """The model's sha is public; a HELLO that names it with another vocab (2^20: a decode-thread
    crash) or rate (2^20: minutes of audio from a few datagrams) must not lock the session."""
    info = _info()
    for field, value in (("semantic_vocab", 1 << 20), ("token_rate", 1 << 20), ("sample_rate", 8000)):
        forged = dataclasses.replace(info, **{field: value})
        core = ReceiverCore(info, 8)
        core.handle(Packetizer(forged, session=9, hello_every=0).start()[0], 0.0)
        snap = core.snapshot()
        assert snap["rejected"]["model_mismatch"] == 1 and core.session is None, field
        assert field in snap["model_mismatch_error"]
        real = Packetizer(info, session=10, hello_every=0)
        core.handle(real.start()[0], 0.1)  # the real talker is still welcome
        assert core.session == 10


def test_file_blocks_recut_pieces_and_pace():
    """A file read in blocks of any size is replayed in blocks of one unit, paced on the clock."""
    wave = np.arange(10_000, dtype=np.float32)
    pieces = [wave[:1], wave[1:4000], wave[4000:4001], wave[4001:]]
    now = [0.0]
    naps = []

    def sleep(s):
        naps.append(s)
        now[0] += s

    got = list(file_blocks(pieces, 2560, SR, clock=lambda: now[0], sleep=sleep))
    assert [len(b) for b, _ in got] == [2560, 2560, 2560, 2320]
    assert np.array_equal(np.concatenate([b for b, _ in got]), wave)
    assert [t for _, t in got] == pytest.approx([0.16, 0.32, 0.48, 0.64]) and len(naps) == 4
