"""Live loopback without a sound card: a JACK dummy server, a test signal, the codec, stats.

    python examples/live_loopback.py [--seconds 20] [--passthrough] [--model SPEC]
                                     [--threads 1] [--stats-json FILE]

Loads the model with ``sc.load_model`` (default: the shipped model; ``--model PATH``,
``official:DIR...`` or ``preset:NAME``, random weights, for speed tests), starts a private
``jackd -d dummy -r 16000`` unless a JACK server already runs (it must run at 16 kHz), plays
seeded white noise into the live engine's input port with a JACK client (the "microphone"),
records its output port (the "speaker"), and prints the engine's report plus the latency
measured from outside at points of the run: the recording index of a stretch of the engine's
output minus the signal index of the stretch of its input that became it (JACK moves float32
samples unchanged, so both stretches are found bit-exactly, whatever the model makes of noise).

Needs jackd2 and libportaudio2 (apt) and sounddevice + JACK-Client (pip); when one is missing
it prints one line saying what to install and exits with status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys

import numpy as np

from semanticodec_rt.live import CodecProcessor, LiveEngine, Passthrough, devices, format_report
from semanticodec_rt.live.jack_harness import LoopbackHarness, latency_checks
from semanticodec_rt.live.jack_server import JackServer, JackUnavailable, jack_running
from semanticodec_rt.live.session import run_session

SR = 16000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="length of the test signal")
    ap.add_argument("--passthrough", action="store_true", help="no codec")
    ap.add_argument("--model", help="model spec: a checkpoint path, official:DIR[:RATE[:VOCAB]], or "
                    "preset:NAME (random weights); default: the shipped model")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the worker (default 1)")
    ap.add_argument("--stats-json", help="write the stats here")
    args = ap.parse_args()

    os.environ.setdefault("JACK_NO_START_SERVER", "1")  # never let a client start a server of its own
    missing = missing_parts()
    if missing:
        print(f"live_loopback: {missing}", file=sys.stderr)
        return 1
    try:
        processor = Passthrough(320) if args.passthrough else load_processor(args)
        with contextlib.ExitStack() as stack:
            if not jack_running(os.environ.get("JACK_DEFAULT_SERVER")):
                server = stack.enter_context(JackServer(rate=SR, period=320))
                print(f"started a private JACK dummy server '{server.name}' at {SR} Hz")
            devices.rescan()  # PortAudio lists JACK only if the server ran when it initialised
            stack.callback(devices.sounddevice()._terminate)  # drop PortAudio's JACK client first
            engine = LiveEngine(processor, sample_rate=SR, block=320, tap_seconds=args.seconds + 5)
            noise = np.random.default_rng(0).standard_normal(int(args.seconds * SR))
            harness = stack.enter_context(LoopbackHarness((0.1 * noise).astype(np.float32)))
            result = run_session(engine, "system", "system", duration=args.seconds + 2,
                                 on_started=lambda i, o: harness.wire())
    except (JackUnavailable, devices.AudioUnavailable) as e:  # jackd did not start, a device refused
        print(f"live_loopback: {e}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as e:  # a model spec or checkpoint that does not load
        print(f"live_loopback: error: {e}", file=sys.stderr)
        return 1
    print(format_report(result.stats))
    for pos, measured, reported in latency_checks(engine, harness):
        print(f"at {pos / SR:5.1f} s: measured from outside {measured:.1f} ms, reported {reported:.1f} ms")
    if args.stats_json:
        with open(args.stats_json, "w") as f:
            json.dump(result.stats, f, indent=2)
    return 0


def missing_parts() -> str | None:
    """One line naming the missing optional parts and how to install them, or ``None``."""
    apt, pip, what = [], [], []
    if shutil.which("jackd") is None or shutil.which("jack_lsp") is None:
        what.append("jackd")
        apt.append("jackd2")
    try:
        import sounddevice  # noqa: F401  (initialises PortAudio; devices.rescan() redoes it later)
    except ImportError:
        what.append("the sounddevice package")
        pip.append("sounddevice")
    except OSError:  # "PortAudio library not found"
        what.append("the PortAudio library")
        apt.append("libportaudio2")
    try:
        import jack  # noqa: F401  (JACK-Client; opens no client)
    except ImportError:
        what.append("the JACK-Client package")
        pip.append("JACK-Client")
    except OSError:  # "JACK library not found"
        what.append("the JACK library")
        if "jackd2" not in apt:
            apt.append("jackd2")
    if not what:
        return None
    fix = [f"apt-get install {' '.join(apt)}"] * bool(apt) + [f"pip install {' '.join(pip)}"] * bool(pip)
    return f"missing {', '.join(what)}: {'; '.join(fix)}"


def load_processor(args) -> CodecProcessor:
    import torch

    import semanticodec_rt as sc

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # denormals make the small models' CPU kernels ~20x slower
    spec = args.model
    codec = sc.load_model(spec, random_weights_ok=bool(spec) and spec.startswith("preset:"))
    processor = CodecProcessor(codec)  # ValueError for a model that cannot run live
    processor.warmup()
    return processor


if __name__ == "__main__":
    sys.exit(main())
