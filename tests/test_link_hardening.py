"""The voice link against a stranger with a handful of well-formed datagrams (issue 16).

Each test replays one attack that once broke ``link recv`` -- an END with a huge frame total or
sample count, a first packet far ahead, a recorded keyed session replayed into a new receiver,
repeated HELLOs that kept a dead session alive -- through :class:`ReceiverCore` on a virtual
clock, and checks that the receiver's memory, its output and its session stay what the real
sender made them.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from semanticodec_rt.bitstream import Packet, StreamInfo, encode_packet
from semanticodec_rt.link import JitterBuffer, Packetizer, ReceiverCore
from semanticodec_rt.link.datagram import DatagramKind, encode_datagram, peek_header
from semanticodec_rt.link.handshake import Accept, encode_accept

pytestmark = pytest.mark.link

SR = 16000
TU = 8  # frames per unit at token rate 100
UNIT_SAMPLES = 2560
UNIT_S = 0.16
KEY = b"0123456789abcdef-test-key"


def _info(fpp: int = 8) -> StreamInfo:
    return StreamInfo(model="m0del", config="rt-tiny-r100-v8192", token_rate=100, semantic_vocab=8192,
                      acoustic_vocab=8192, sample_rate=SR, frames_per_packet=fpp)


def _forged(session: int, packet: Packet, key: bytes | None = None) -> bytes:
    return encode_datagram(DatagramKind.DATA, session, encode_packet(packet, 13, 13), key)


def _talk(core: ReceiverCore, pk: Packetizer, units: int, t0: float = 0.0, start: bool = True) -> float:
    """The sender ``pk`` sends ``units`` units in real time into ``core`` (ACCEPTs go back at once);
    returns the time after the last one."""
    rng = np.random.default_rng(1)

    def deliver(datagrams, t):
        for d in datagrams:
            for reply in core.handle(d, t):
                deliver(pk.accept(reply), t)

    if start:
        deliver(pk.start(), t0)
    t = t0
    for _ in range(units):
        t += UNIT_S
        deliver(pk.push(rng.integers(0, 8192, (TU, 2))), t)
        core.poll(t)
    return t


def _played(core: ReceiverCore) -> int:
    return core.snapshot()["frames_played"]


# -- totals from the wire are bounded by what the receiver knows -----------------------------------
@pytest.mark.parametrize("total", [0xFFFFFFFF, 10**6])
def test_end_with_a_huge_frame_total_is_refused(total):
    info = _info()
    pk, core = Packetizer(info, session=5, hello_every=0), ReceiverCore(info, TU)
    t = _talk(core, pk, 10)
    core.handle(_forged(5, Packet.end(1000, total, total * 320)), t)
    snap = core.snapshot()
    assert snap["end_refused"] == 1 and snap["rejected"]["malformed"] == 1 and not snap["end_received"]
    t = _talk(core, pk, 10, t, start=False)  # the real stream goes on
    for d in pk.end(20 * UNIT_SAMPLES - 5):
        core.handle(d, t)
    core.poll(t + 2)
    out = core.finish()
    assert core.done and len(out) <= 20 and _played(core) == 20 * TU
    assert core.n_samples() == 20 * UNIT_SAMPLES - 5


@pytest.mark.parametrize("n_samples", [1 << 50, 1 << 28, 9 * UNIT_SAMPLES])
def test_end_whose_samples_do_not_fit_its_frames_is_refused(n_samples):
    info = _info()
    pk, core = Packetizer(info, session=5, hello_every=0), ReceiverCore(info, TU)
    t = _talk(core, pk, 10)
    core.handle(_forged(5, Packet.end(1000, 10 * TU, n_samples)), t)
    assert core.snapshot()["end_refused"] == 1 and core.end is None
    core.handle(_forged(5, Packet.end(1001, 10 * TU, 10 * UNIT_SAMPLES - 7)), t)  # a true one
    assert core.end is not None and core.n_samples() == 10 * UNIT_SAMPLES - 7


def test_end_below_the_frames_received_is_refused():
    info = _info()
    pk, core = Packetizer(info, session=5, hello_every=0), ReceiverCore(info, TU)
    t = _talk(core, pk, 10)
    core.handle(_forged(5, Packet.end(1000, 3 * TU, 3 * UNIT_SAMPLES)), t)
    assert core.snapshot()["end_refused"] == 1 and not core.done


@pytest.mark.parametrize("first", [320_000, (1 << 32) - 4 * TU])
def test_far_ahead_first_packet_plays_no_silence(first):
    """The first packet's position says nothing about how long ago the stream began: the units
    before it are skipped, not played, and the written length counts only what was played."""
    info = _info()
    core = ReceiverCore(info, TU)
    core.handle(Packetizer(info, session=5).start()[0], 0.0)
    tracemalloc.start()
    try:
        ids = np.zeros((TU, 2), np.int64)
        for k in range(4):
            core.handle(_forged(5, Packet.tokens(k, first + k * TU, ids)), 0.01 * (k + 1))
        units = core.poll(0.05) + core.finish()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(units) <= 4 and peak < 5_000_000
    snap = core.snapshot()
    assert snap["frames_skipped"] == first // TU * TU and snap["frames_played"] == 4 * TU
    assert core.n_samples() == 4 * UNIT_SAMPLES


def test_output_never_runs_ahead_of_real_time():
    """A sender (or forger) that delivers a minute of packets in one second gets at most the
    elapsed time plus the ring's allowance played, however complete its units are."""
    jb = JitterBuffer(TU, 50.0, TU, min_delay=0.04, max_delay=1.0)
    ids = np.zeros((TU, 2), np.int64)
    released = 0
    for k in range(375):  # 60 s of units, 1 s of arrivals
        now = k / 375
        jb.insert(k * TU, ids, now)
        released += len(jb.pop(now))
        assert released * UNIT_S <= now + jb.allowance + 1e-9
    assert released * UNIT_S < 1.0 + jb.allowance + UNIT_S


def test_packets_past_the_ring_do_not_move_the_clock():
    jb = JitterBuffer(TU, 50.0, TU)
    ids = np.zeros((TU, 2), np.int64)
    jb.insert(0, ids, 0.17)
    dl = jb.deadline(1)
    assert jb.insert(10**6, ids, 0.18).overflow == TU
    assert jb.deadline(1) == dl and jb.pop(0.2) != [] and jb.pop(0.21) == []


def test_hello_that_cannot_fit_a_datagram_is_refused():
    info, big = _info(), _info(fpp=2000)  # 2000 frames x 26 bits: 6.5 kB, past one datagram
    core = ReceiverCore(info, TU)
    core.handle(Packetizer(big, session=9).start()[0], 0.0)
    assert core.session is None and core.snapshot()["rejected"]["model_mismatch"] + \
        core.snapshot()["rejected"]["malformed"] == 1


# -- keyed sessions: handshake, replay, sequenced HELLOs ---------------------------------------------
def test_keyed_session_recorded_and_replayed_never_locks_a_new_receiver():
    info = _info()
    first = ReceiverCore(info, TU, key=KEY)
    recorded: list[bytes] = []
    pk = Packetizer(info, session=21, key=KEY, hello_every=0.5)

    def record(datagrams, t):
        for d in datagrams:
            recorded.append(d)
            for reply in first.handle(d, t):
                record(pk.accept(reply), t)

    record(pk.start(), 0.0)
    for u in range(20):
        record(pk.push(np.full((TU, 2), u)), (u + 1) * UNIT_S)
    record(pk.end(20 * UNIT_SAMPLES), 3.3)
    assert first.session == 21 and first.end is not None and pk.stats.accepted

    second = ReceiverCore(info, TU, key=KEY)  # the next run: the recording comes first
    for i, d in enumerate(recorded):
        second.handle(d, 10.0 + 0.01 * i)
    snap = second.snapshot()
    assert second.session is None and snap["packets_received"] == 0 and snap["accepts_sent"] >= 1
    assert snap["rejected"]["auth"] == sum(peek_header(d)[0] is DatagramKind.DATA for d in recorded)
    assert second.last_heard is None  # a replayed HELLO keeps nobody waiting
    real = Packetizer(info, session=21, key=KEY)  # the real talker, even under the same session id
    _talk(second, real, 5, t0=11.0)
    assert second.session == 21 and _played(second) >= 4 * TU and real.stats.accepted


def test_keyed_hellos_are_sequenced():
    info = _info()
    core = ReceiverCore(info, TU, key=KEY)
    pk = Packetizer(info, session=3, key=KEY, hello_every=0.32)
    seen: list[bytes] = []
    orig = pk._next_hello_datagram

    def keep():
        d = orig()
        seen.append(d)
        return d

    pk._next_hello_datagram = keep
    t = _talk(core, pk, 10)
    assert core.session == 3 and len(seen) > 3
    heard = core.last_heard
    core.handle(seen[1], t + 1.0)  # a HELLO of this session, repeated by a stranger
    assert core.last_heard == heard and core.snapshot()["rejected"]["replay"] == 1


def test_sender_ignores_a_replayed_or_foreign_accept():
    info = _info()
    pk = Packetizer(info, session=4, key=KEY, nonce=bytes(16))
    pk.start()
    good = encode_datagram(DatagramKind.ACCEPT, 4, encode_accept(Accept(0, bytes(16), b"r" * 16)), KEY)
    stale = encode_datagram(DatagramKind.ACCEPT, 4, encode_accept(Accept(0, bytes(16), b"x" * 16)), KEY)
    other_nonce = encode_datagram(DatagramKind.ACCEPT, 4, encode_accept(Accept(1, b"n" * 16, b"y" * 16)), KEY)
    unkeyed = encode_datagram(DatagramKind.ACCEPT, 4, encode_accept(Accept(2, bytes(16), b"z" * 16)))
    future = encode_datagram(DatagramKind.ACCEPT, 4, encode_accept(Accept(99, bytes(16), b"w" * 16)), KEY)
    assert pk.accept(other_nonce) == [] and pk.accept(unkeyed) == [] and pk.accept(future) == []
    assert not pk.accepted
    pk.accept(good)
    key = pk._data_key
    assert pk.accepted and pk.accept(stale) == [] and pk._data_key == key  # an old ACCEPT again
    assert pk.stats.replies_refused == 4 and pk.stats.accepts == 1


def test_keyed_sender_holds_a_bounded_backlog_until_accepted():
    info = _info()
    pk = Packetizer(info, session=4, key=KEY, backlog=1.0)
    pk.start()
    out = [d for u in range(50) for d in pk.push(np.full((TU, 2), u))]
    assert all(peek_header(d)[0] is DatagramKind.HELLO for d in out)  # no DATA before the ACCEPT
    core = ReceiverCore(info, TU, key=KEY)
    (accept,) = core.handle(out[-1], 8.0)
    released = pk.accept(accept)
    assert len(released) == 6 and pk.stats.frames_unsent == 44 * TU  # <= 1 s of packets kept
    for d in released:
        core.handle(d, 8.01)
    assert core.session == 4 and core.snapshot()["packets_received"] == 6


def test_a_receiver_held_back_by_real_time_sleeps_until_it_may_release():
    jb = JitterBuffer(TU, 50.0, TU, min_delay=0.04, max_delay=1.0)
    ids = np.zeros((TU, 2), np.int64)
    for k in range(60):  # ~10 s of complete units, all at once
        jb.insert(k * TU, ids, 0.0)
    jb.pop(0.0)
    due = jb.next_deadline()
    assert due > 0.0 and jb.pop(due - 1e-6) == [] and len(jb.pop(due)) == 1
