"""Devices at 44.1/48 kHz: the resampling bridge (``live.rate_bridge``) and real streams on a 48 kHz
JACK dummy server, for ``live`` and for the voice link's device I/O (``link send --input``,
``link recv --output``).

Without devices, each bridge is compared with the whole-signal resampler: the streaming one
applies the same taps to the same samples on any blocking (to float rounding), so the live path
at 48 kHz must give ``resample(resample(x, 48k, 16k), 16k, 48k)`` sample for sample.  On JACK, the same holds for
the recording of a passthrough when nothing glitched, and the reported latency must match the
one measured outside the app, as at 16 kHz (tests/test_live.py).
"""

from __future__ import annotations

import json
import socket
import threading
import time

import numpy as np
import pytest
import torch
from conftest import private_jack_server

from semanticodec_rt import cli
from semanticodec_rt.audio.resample import resample
from semanticodec_rt.codec import SemantiCodec
from semanticodec_rt.config import rt_config
from semanticodec_rt.live import CodecProcessor, LiveEngine, Passthrough
from semanticodec_rt.live.rate_bridge import (
    ResampledPlayback, ResampledProcessor, resampled_capture, resampling_lag_ms,
)

pytestmark = pytest.mark.live

DEV, SR = 48000, 16000
BLOCK = 960  # 20 ms at 48 kHz


def _noise(seconds: float, rate: int = DEV, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * rate))).astype(np.float32)


def _round_trip(x: np.ndarray, rate: int = DEV) -> np.ndarray:
    t = torch.from_numpy(x)
    return resample(resample(t, rate, SR), SR, rate).numpy()


@pytest.fixture(autouse=True)
def _no_denormals():
    prev = torch.set_flush_denormal(True)
    yield
    torch.set_flush_denormal(prev)


# -- the bridge without devices ----------------------------------------------------------------------
@pytest.mark.parametrize("rate", [48000, 44100])
def test_resampled_processor_equals_the_whole_signal_round_trip(rate):
    x = _noise(2.0, rate, seed=1)
    proc = ResampledProcessor(Passthrough(320), rate)
    assert proc.unit == round(320 * rate / SR) and proc.algorithmic_latency_ms == proc.resampling_lag_ms
    rng = np.random.default_rng(2)
    out, i = [], 0
    while i < len(x):  # the engine hands over whatever the input ring holds: any size
        n = int(rng.integers(1, 3000))
        out.append(proc.process(x[i : i + n]))
        i += n
    y = np.concatenate(out)
    want = _round_trip(x, rate)
    # all but what the resamplers still wait for: their kernels' reach and one block of phases
    # (~1 ms at 48 kHz, where the phases repeat every 3 samples; ~21 ms at 44.1 kHz: every 441)
    assert len(want) - proc.resampling_lag_ms * rate / 1000 <= len(y) <= len(want)
    # the same taps on the same samples; a convolution over another length may round the last bit
    np.testing.assert_allclose(y, want[: len(y)], rtol=0, atol=1e-6)
    assert 0 < resampling_lag_ms(rate) < (2.0 if rate == 48000 else 25.0)


def test_resampled_capture_and_playback_equal_the_whole_signal():
    x = _noise(1.0, DEV, seed=3)
    blocks = [(x[i : i + 777], float(i)) for i in range(0, len(x), 777)]
    got = list(resampled_capture(iter(blocks), DEV))
    assert [t for _, t in got] == sorted(t for _, t in got)
    down = np.concatenate([b for b, _ in got])
    want = resample(torch.from_numpy(x), DEV, SR).numpy()
    np.testing.assert_allclose(down, want[: len(down)], rtol=0, atol=1e-6)
    assert len(want) - len(down) < 20

    class Sink:
        def __init__(self):
            self.parts, self.closed = [], False

        def write(self, pcm):
            self.parts.append(np.array(pcm))

        def close(self, n_samples=None):
            self.closed = True

    sink = Sink()
    play = ResampledPlayback(sink, DEV)
    for i in range(0, len(want), 500):
        play.write(want[i : i + 500])
    play.close()
    up = np.concatenate(sink.parts)
    assert sink.closed and play.n_samples == len(want)
    np.testing.assert_allclose(up, resample(torch.from_numpy(want), SR, DEV).numpy(), rtol=0, atol=1e-6)


# -- real callback streams on a 48 kHz JACK server ------------------------------------------------------
@pytest.fixture(scope="module")
def jack48():
    """A private ``jackd -d dummy -r 48000 -p 960``: the rate most sound cards run at."""
    yield from private_jack_server(DEV, BLOCK)


def _run(processor, signal: np.ndarray, settle_s: float = 2.0):
    from semanticodec_rt.live.jack_harness import LoopbackHarness
    from semanticodec_rt.live.session import run_session

    seconds = len(signal) / DEV
    engine = LiveEngine(processor, sample_rate=DEV, block=BLOCK, tap_seconds=seconds + settle_s + 3)
    with LoopbackHarness(signal) as harness:
        assert harness.rate == DEV
        result = run_session(engine, "system", "system", duration=seconds + settle_s,
                             on_started=lambda i, o: harness.wire())
        assert harness.wait(10), "the harness did not get through its signal"
    s = result.stats
    print(f"{s['mode']} at {s['sample_rate']} Hz: latency {s['latency_ms']}, worker {s['worker']}, "
          f"input {s['input']}, output {s['output']}")
    return engine, harness, s


def _glitches(s: dict) -> int:
    return s["output"]["underruns"] + s["input"]["overruns"] + s["input"]["xruns"] + s["output"]["xruns"]


def test_jack48_resampled_passthrough_is_the_round_trip_at_a_constant_delay(jack48):
    """A 16 kHz processor (the identity) behind the bridge: the 48 kHz recording is the
    whole-signal round trip, delayed by a constant, and the reported latency is the measured one."""
    from semanticodec_rt.live.jack_harness import lag_of, latency_checks

    sig = _noise(6.0, seed=5)
    engine, harness, s = _run(ResampledProcessor(Passthrough(320), DEV), sig)
    assert s["sample_rate"] == DEV and s["codec"]["device_rate"] == DEV
    rec, want = harness.recording, _round_trip(sig)
    lag = lag_of(rec, want, max_lag=DEV)
    assert 0 < lag < DEV // 2
    if not _glitches(s):
        # From 2 ms in (the kernels also saw what the app's input carried before the harness was
        # wired, which the offline reference pads as zeros) to 10 ms before the end (the last
        # samples may still sit in the resamplers).
        a, n = DEV // 500, len(sig) - lag - DEV // 100
        np.testing.assert_allclose(rec[lag + a : lag + n], want[a:n], rtol=0, atol=1e-6)
    rows = latency_checks(engine, harness, every_s=1.0, start_s=0.5)
    assert rows
    for pos, measured, reported in rows:
        assert abs(measured - reported) < 1.0, (pos, measured, reported)


@pytest.mark.heavy
def test_jack48_codec_bounded_and_latency_matches(jack48):
    codec = SemantiCodec.random(rt_config("rt-tiny", 100), seed=0)
    proc = CodecProcessor(codec)
    proc.warmup()
    from semanticodec_rt.live.jack_harness import latency_checks

    engine, harness, s = _run(ResampledProcessor(proc, DEV), _noise(8.0, seed=6))
    assert s["codec"]["packets"] > 0 and s["worker"]["audio_s"] >= 5.0
    assert s["input"]["ring_max_fill"] <= engine.max_backlog + engine.unit + 16 * BLOCK
    assert s["output"]["ring_max_fill"] <= engine.max_fill
    rows = latency_checks(engine, harness, every_s=2.0)
    assert rows, "no stretch of the codec output was found in the recording"
    for pos, measured, reported in rows:
        assert abs(measured - reported) <= 1000 * BLOCK / DEV, (pos, measured, reported)
    assert min(m for _, m, _ in rows) >= codec.windowing.algorithmic_latency_ms


def test_cli_live_opens_the_devices_at_their_rate(jack48, tmp_path, capsys):
    stats = tmp_path / "live.json"
    rc = cli.main(["live", "--passthrough", "--input", "system", "--output", "system", "--duration", "2",
                   "--stats-json", str(stats)])
    assert rc == 0, capsys.readouterr().err
    s = json.loads(stats.read_text())
    assert s["sample_rate"] == DEV and s["block"] == BLOCK and s["latency_ms"]["measured"]["n"] > 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.heavy
def test_cli_link_device_io_on_jack48(jack48, tmp_path):
    """``link send --input system`` -> UDP -> ``link recv --output system`` on a 48 kHz server, both
    ends in this process: the harness plays into the sender's capture port and records the
    receiver's playback port.  The model is random (noise), so this checks the plumbing: both
    ends at the server's rate, counters that add up, audio out of the speaker port, clean ends."""
    from semanticodec_rt.live.jack_harness import LoopbackHarness

    port, model = _free_port(), ["--model", "preset:rt-tiny-r100", "--random-weights-ok", "-q"]
    recv_stats, send_stats = tmp_path / "recv.json", tmp_path / "send.json"
    rc: dict = {}
    receiver = threading.Thread(target=lambda: rc.update(recv=cli.main(
        ["link", "recv", "--port", str(port), "--output", "system", "--timeout", "2", "--wait", "60",
         "--stats-json", str(recv_stats), *model])))
    sender = threading.Thread(target=lambda: rc.update(send=cli.main(
        ["link", "send", "--to", f"127.0.0.1:{port}", "--input", "system", "--duration", "4",
         "--stats-json", str(send_stats), *model])))
    with LoopbackHarness(_noise(5.0, seed=7)) as harness:
        receiver.start()
        time.sleep(2.0)  # the receiver's output stream first: the harness takes the first app ports
        sender.start()
        deadline = time.monotonic() + 60
        while True:  # wire once the sender's capture port exists too
            try:
                harness.wire()
                break
            except RuntimeError:
                assert time.monotonic() < deadline, "the apps' JACK ports never appeared"
                time.sleep(0.1)
        assert harness.wait(30)
        sender.join(60)
        receiver.join(60)
        rec = harness.recording
    assert rc == {"send": 0, "recv": 0}
    sent, got = json.loads(send_stats.read_text()), json.loads(recv_stats.read_text())
    print("send:", sent, "\nrecv:", got)
    assert sent["duration_s"] == pytest.approx(4.0, abs=0.2) and sent["frames_sent"] > 0
    assert got["packets_received"] > 0 and got["end_received"]
    assert got["frames_received"] + got["frames_concealed"] == got["frames_played"]
    assert np.abs(rec).max() > 0  # the receiver's decode reached the speaker port
