"""``live``: microphone -> codec (over the packet wire format) -> speaker, in real time.

The audio runs in PortAudio callback streams (:mod:`semanticodec_rt.live.devices`, imported only
here, so ``--help`` works without PortAudio); the codec runs in a worker thread between two
lock-free rings (:mod:`semanticodec_rt.live.engine`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..config import SAMPLE_RATE
from .common import (
    FORMATTER, MODEL_HELP, CliError, load_codec, nonnegative_int, positive_int, progress_enabled, say,
)

_DESCRIPTION = """\
Run the codec live: audio from an input device is encoded in 160 ms units, the tokens are
serialised into packets and parsed back (what a voice link would send), decoded and played
on an output device.  The audio callbacks only move samples through lock-free ring buffers;
a worker thread runs the model.  When the worker falls behind it skips whole units
(counted), so queues and latency stay bounded.

At the end (--duration, or Ctrl-C) it prints the measured end-to-end latency (capture to
playback of the same sample, device latencies included), its parts (the model's algorithmic
latency, the output buffer), the worker's real-time factor (compute s per audio s) and the
overrun / underrun / dropped-unit counters.  --passthrough skips the codec to measure the
audio path alone.  Devices must run at 16 kHz (e.g. a JACK server started with -r 16000).
"""

_EPILOG = """\
examples:
  semanticodec-rt live --list-devices
  semanticodec-rt live --passthrough --duration 10
  semanticodec-rt live --input 0 --output 0
  semanticodec-rt live --model preset:rt-tiny-r100 --random-weights-ok --duration 30 --stats-json live.json
  (without a sound card: python examples/live_loopback.py starts a private JACK dummy server)
"""



def add_parser(sub) -> None:
    p = sub.add_parser("live", help="real-time loop: microphone -> codec -> speaker",
                       description=_DESCRIPTION, epilog=_EPILOG, formatter_class=FORMATTER)
    p.set_defaults(func=cmd_live)
    p.add_argument("--list-devices", action="store_true", help="list the audio devices and exit")
    p.add_argument("--input", metavar="DEV", help="input device: number or name (default: the system's)")
    p.add_argument("--output", metavar="DEV", help="output device: number or name (default: the system's)")
    p.add_argument("--passthrough", action="store_true",
                   help="no codec: input ring -> output ring (measures the audio path alone)")
    p.add_argument("--model", metavar="SPEC", help=MODEL_HELP + " Must be a streaming (rt) preset.")
    p.add_argument("--random-weights-ok", action="store_true",
                   help="allow --model preset:NAME (random weights: noise out; fine for timing)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the model runs (default cpu)")
    p.add_argument("--device-rate", type=positive_int, metavar="HZ",
                   help="sample rate to open the devices at (default: the input device's own, e.g. 48000 "
                        "on JACK); the codec's 16 kHz is resampled to and from it")
    p.add_argument("--block-ms", type=float, default=20.0, metavar="MS",
                   help="audio callback block (default 20 ms = 320 samples)")
    p.add_argument("--jitter-ms", type=float, metavar="MS",
                   help="output buffer beyond one unit, absorbs compute jitter "
                        "(default 100 ms; passthrough: one block)")
    p.add_argument("--max-backlog-ms", type=float, metavar="MS",
                   help="how far the worker may fall behind before it skips units (default two units)")
    p.add_argument("--steps", type=nonnegative_int, metavar="N",
                   help="decoder steps (default: the model's; 0 = the speech route's regression path alone)")
    p.add_argument("--cfg-scale", type=float, metavar="S", help="guidance scale (default: the model's)")
    p.add_argument("--seed", type=int, default=0, help="decoder noise seed (default 0)")
    p.add_argument("--threads", type=positive_int, default=1, metavar="N",
                   help="torch CPU threads of the worker (default 1: more threads spin against the "
                        "audio threads and other jobs on a small machine)")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: at Ctrl-C)")
    p.add_argument("--stats-json", metavar="FILE", help="also write the stats as JSON here")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress line and no report")


def cmd_live(args: argparse.Namespace) -> int:
    from ..live import devices

    try:
        if args.list_devices:
            print(devices.list_devices())
            return 0
        devices.sounddevice()  # fail before loading a model when there is no PortAudio
    except devices.AudioUnavailable as e:
        raise CliError(f"live audio is unavailable: {e}", 1) from None
    if args.duration is not None and args.duration <= 0:
        raise CliError("--duration must be > 0")
    try:
        rate = args.device_rate or devices.device_rate("input", args.input)
    except devices.AudioUnavailable as e:
        raise CliError(f"live audio is unavailable: {e}", 1) from None
    except ValueError as e:  # no device matching a name
        raise CliError(f"--input: {e}", 2) from None
    block = round(args.block_ms * rate / 1000)
    if block < 16:
        raise CliError(f"--block-ms {args.block_ms:g} is too small (at least 1 ms)")
    engine = _make_engine(args, block, rate)
    result = _run(args, engine)
    stats = dict(result.stats, interrupted=result.interrupted,
                 input_device=args.input, output_device=args.output)
    if not args.quiet:
        if progress_enabled(args):
            print(file=sys.stderr)  # end the progress line
        from ..live import format_report

        print(format_report(stats))
        if result.interrupted:
            print("(stopped by Ctrl-C)")
    if args.stats_json:
        Path(args.stats_json).write_text(json.dumps(stats, indent=2) + "\n")
    return 0


def _make_engine(args, block: int, rate: int = SAMPLE_RATE):
    """The engine at the devices' ``rate``; a codec made for 16 kHz is resampled around."""
    from ..live import CodecProcessor, LiveEngine, Passthrough
    from ..live.rate_bridge import ResampledProcessor

    if args.passthrough:
        processor = Passthrough(block)
    else:
        codec = load_codec(args)  # with --threads
        if not codec.windowing.realtime:
            raise CliError(f"{codec.cfg.name} cannot run live ({codec.windowing.name} windows); "
                           "use a streaming rt model")
        processor = CodecProcessor(codec, steps=args.steps, cfg_scale=args.cfg_scale, seed=args.seed)
        say(args, f"model {codec.cfg.name}: algorithmic latency {processor.algorithmic_latency_ms:.0f} ms; "
                  "warming up")
        processor.warmup()
        if rate != SAMPLE_RATE:
            processor = ResampledProcessor(processor, rate)
            say(args, f"devices at {rate} Hz: resampled to {SAMPLE_RATE} Hz and back "
                      f"(+{processor.resampling_lag_ms:.1f} ms)")
    return LiveEngine(processor, sample_rate=rate, block=block, jitter_ms=args.jitter_ms,
                      max_backlog_ms=args.max_backlog_ms)


def _run(args, engine):
    from ..live import devices
    from ..live.session import run_session

    sd = devices.sounddevice()
    show = progress_enabled(args)
    say(args, f"live {engine.processor.name}: {engine.block} samples per block, "
              f"{'until Ctrl-C' if args.duration is None else f'{args.duration:g} s'}")
    try:
        return run_session(engine, devices.parse_device(args.input), devices.parse_device(args.output),
                           duration=args.duration, on_tick=_progress_line if show else None)
    except sd.PortAudioError as e:
        raise CliError(f"audio device error: {e}", 1) from None
    except ValueError as e:  # sounddevice: no device matching a name, or an ambiguous one
        raise CliError(f"--input/--output: {e}", 2) from None


def _progress_line(engine) -> None:
    s = engine.stats()
    lat = s["latency_ms"]["measured"]["last"]
    rtf = s["worker"]["rtf"]
    print(f"\r{s['seconds']:7.1f} s  latency {'-' if lat is None else f'{lat:.0f} ms'}  "
          f"rtf {'-' if rtf is None else f'{rtf:.2f}'}  overruns {s['input']['overruns']}  "
          f"underruns {s['output']['underruns']}  skipped {s['worker']['skipped_units']}  "
          f"dropped {s['worker']['dropped_units']}  ", end="", file=sys.stderr, flush=True)
