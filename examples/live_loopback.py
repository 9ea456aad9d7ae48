"""Live loopback without a sound card: a JACK dummy server, a test signal, the codec, stats.

    python examples/live_loopback.py [--seconds 20] [--passthrough] [--model preset:rt-tiny-r100]
                                     [--stats-json FILE]

Starts a private ``jackd -d dummy -r 16000`` unless a JACK server already runs (it must run at
16 kHz), plays seeded white noise into the live engine's input port with a JACK client (the
"microphone"), records its output port (the "speaker"), and prints the engine's report plus the
latency measured from outside at points of the run: the recording index of a stretch of the
engine's output minus the signal index of the stretch of its input that became it (random
weights give noise out, but the same noise bit for bit, so the stretch is found exactly).
Needs libportaudio2 + jackd2 (apt) and sounddevice + JACK-Client (pip).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys

import numpy as np

from semanticodec_rt.live import CodecProcessor, LiveEngine, Passthrough, devices, format_report
from semanticodec_rt.live.jack_harness import LoopbackHarness, latency_checks
from semanticodec_rt.live.jack_server import JackServer, jack_running
from semanticodec_rt.live.session import run_session

SR = 16000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="length of the test signal")
    ap.add_argument("--passthrough", action="store_true", help="no codec")
    ap.add_argument("--model", default="preset:rt-tiny-r100", help="preset:NAME (random weights) or a checkpoint")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the worker")
    ap.add_argument("--stats-json", help="write the stats here")
    args = ap.parse_args()

    with contextlib.ExitStack() as stack:
        if not jack_running(os.environ.get("JACK_DEFAULT_SERVER")):
            server = stack.enter_context(JackServer(rate=SR, period=320))
            print(f"started a private JACK dummy server '{server.name}' at {SR} Hz")
        devices.rescan()  # PortAudio lists JACK only if the server ran when it initialised
        stack.callback(devices.sounddevice()._terminate)  # drop PortAudio's JACK client first
        processor = Passthrough(320) if args.passthrough else load_processor(args)
        engine = LiveEngine(processor, sample_rate=SR, block=320, tap_seconds=args.seconds + 5)
        noise = np.random.default_rng(0).standard_normal(int(args.seconds * SR))
        harness = stack.enter_context(LoopbackHarness((0.1 * noise).astype(np.float32)))
        result = run_session(engine, "system", "system", duration=args.seconds + 2,
                             on_started=lambda i, o: harness.wire())
    print(format_report(result.stats))
    for pos, measured, reported in latency_checks(engine, harness):
        print(f"at {pos / SR:5.1f} s: measured from outside {measured:.1f} ms, reported {reported:.1f} ms")
    if args.stats_json:
        with open(args.stats_json, "w") as f:
            json.dump(result.stats, f, indent=2)
    return 0


def load_processor(args) -> CodecProcessor:
    import torch

    from semanticodec_rt.cli.models import load_codec

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # denormals make the small models' CPU kernels ~20x slower
    codec = load_codec(argparse.Namespace(model=args.model, device="cpu", random_weights_ok=True))
    processor = CodecProcessor(codec)
    processor.warmup()
    return processor


if __name__ == "__main__":
    sys.exit(main())
