"""``encode``, ``decode``, ``roundtrip`` and ``info``: .scrt files in and out, streamed.

The work is the library's (:func:`semanticodec_rt.compress` / :func:`~semanticodec_rt.decompress`):
an input file is read, resampled and encoded block by block and its packets written as they come
(the streaming regimes; the published model's windowing encodes the whole 16 kHz signal at once),
and tokens are decoded a few at a time straight into the WAV file, so memory does not grow with
the duration or the input's sample rate.  Outputs go to a temporary file that is renamed onto the
target only when the command succeeds.
"""

from __future__ import annotations

import argparse
import json

from ..bitstream.errors import printable
from ..bitstream.report import scrt_report
from .common import (
    FORMATTER, PROG, SAMPLE_RATE, add_common_options, add_decode_options, add_encode_options,
    add_threads_option, atomic_output, input_path, load_codec, output_path, progress_enabled, read_source,
    say, say_decoded,
)

# -- parsers ---------------------------------------------------------------------------------------
_COMMAND_TEXTS = {
    "encode": (
        "audio file -> .scrt tokens",
        """\
Read an audio file (wav, flac, ogg, ...; any sample rate, resampled to 16 kHz) and
write its tokens to a .scrt file.  The file records the model (its sha), the audio
length and the token count, so decoding gives back exactly as many samples.
Stereo files use the first channel unless you ask for --mono mean.
""",
        f"""\
examples:
  {PROG} encode speech.wav speech.scrt
  {PROG} encode --model official:~/semanticodec:100:8192 song.flac song.scrt
  {PROG} encode -f --mono mean interview.ogg interview.scrt
""",
    ),
    "decode": (
        ".scrt tokens -> 16 kHz wav",
        """\
Turn a .scrt file back into audio: a 16 kHz mono WAV (16-bit PCM, or 32-bit float
with --float), cut to the original length.  The model must be the one that encoded
the file; another model is refused with both names in the message.
More diffusion --steps give cleaner audio and take longer.
""",
        f"""\
examples:
  {PROG} decode speech.scrt decoded.wav
  {PROG} decode --steps 8 --seed 7 --float speech.scrt decoded.wav --model mymodel.safetensors
""",
    ),
    "roundtrip": (
        "audio -> tokens -> audio, nothing stored in between",
        """\
Encode an audio file and decode the tokens again in one go, to hear what the codec
keeps.  Prints the token count and the payload bitrate.  The result equals
'encode' followed by 'decode' with the same options.
""",
        f"""\
examples:
  {PROG} roundtrip speech.wav speech_codec.wav
  {PROG} roundtrip --steps 4 -q music.flac music_codec.wav --model official:~/semanticodec
""",
    ),
    "info": (
        "describe a .scrt file (no model needed)",
        """\
Show what a .scrt file holds: the model sha and config name, duration, token rate,
bits per id, payload bitrate, frames (token positions), packets, file size and the
bytes spent on headers and packet framing.  The whole file is checked on the way.
""",
        f"""\
examples:
  {PROG} info speech.scrt
  {PROG} info --json speech.scrt
""",
    ),
}


def add_parsers(sub) -> None:
    """The parsers of encode, decode, roundtrip and info, added to the subparsers ``sub``."""
    for name, (summary, description, epilog) in _COMMAND_TEXTS.items():
        p = sub.add_parser(name, help=summary, description=description, epilog=epilog,
                           formatter_class=FORMATTER)
        p.set_defaults(func=COMMAND_FUNCS[name])
        if name == "info":
            p.add_argument("input", metavar="FILE.scrt", help="the .scrt file to describe")
            p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
            continue
        in_meta, out_meta = {"encode": ("IN", "OUT.scrt"), "decode": ("IN.scrt", "OUT.wav"),
                             "roundtrip": ("IN", "OUT.wav")}[name]
        in_help = "input .scrt file" if name == "decode" else "input audio file"
        p.add_argument("input", metavar=in_meta, help=in_help)
        p.add_argument("output", metavar=out_meta, help="output file (refused if it exists, unless -f)")
        add_common_options(p)
        add_threads_option(p)
        if name in ("encode", "roundtrip"):
            add_encode_options(p)
        if name in ("decode", "roundtrip"):
            add_decode_options(p)


# -- commands --------------------------------------------------------------------------------------
def cmd_encode(args: argparse.Namespace) -> int:
    from ..api import compress

    src = input_path(args.input)
    dst = output_path(args.output, args.force, src)
    source = read_source(src, args.mono)  # bad input fails before the (slow) model load
    codec = load_codec(args)
    with atomic_output(dst) as tmp:
        info = compress(source, codec, tmp, progress=progress_enabled(args))
    say(args, f"{dst}: {info.n_frames} frames for {info.n_samples / SAMPLE_RATE:.2f} s, "
              f"payload {info.payload_bps:g} bps, {dst.stat().st_size} bytes")
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    from ..api import decompress

    src = input_path(args.input)
    dst = output_path(args.output, args.force, src, wav=True)
    with atomic_output(dst) as tmp:
        report = decompress(src, lambda: load_codec(args), tmp, **_sampling(args))
    say_decoded(args, dst, report.n_samples, report.n_clipped, report.n_nonfinite)
    return 0


def cmd_roundtrip(args: argparse.Namespace) -> int:
    from ..api import compress, decompress

    src = input_path(args.input)
    dst = output_path(args.output, args.force, src, wav=True)
    source = read_source(src, args.mono)  # bad input fails before the (slow) model load
    codec = load_codec(args)
    data = compress(source, codec, progress=progress_enabled(args))
    with atomic_output(dst) as tmp:
        report = decompress(data, codec, tmp, **_sampling(args))
    info = report.info
    say(args, f"{info.n_frames} token positions ({2 * info.n_frames} ids) for "
              f"{info.n_samples / SAMPLE_RATE:.2f} s, payload {info.payload_bps:g} bps")
    say_decoded(args, dst, report.n_samples, report.n_clipped, report.n_nonfinite)
    return 0


def _sampling(args) -> dict:
    return dict(steps=args.steps, cfg_scale=args.cfg_scale, seed=args.seed, float_wav=args.float,
                progress=progress_enabled(args))


def cmd_info(args: argparse.Namespace) -> int:
    src = input_path(args.input)
    report = scrt_report(src)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    r = report
    lines = [
        ("file", r["file"]),
        # header strings come from the file: printed escaped (no terminal control sequences)
        ("model", f"{printable(r['model'])} ({printable(r['config'])})"),
        ("duration", f"{r['duration_s']:.3f} s ({r['n_samples']} samples at {r['sample_rate']} Hz)"),
        ("token rate", f"{r['token_rate']} ids/s ({r['frames_per_s']:g} frames/s)"),
        ("bits per id", f"semantic {r['semantic_bits']} (vocab {r['semantic_vocab']}), "
                        f"acoustic {r['acoustic_bits']} (vocab {r['acoustic_vocab']})"),
        ("payload", f"{r['payload_bps']:g} bps"),
        ("frames", f"{r['n_frames']} (up to {r['frames_per_packet']} per packet)"),
        ("packets", f"{r['n_packets']} ({r['n_packets'] - 1} tokens + END)"),
        ("file size", f"{r['file_bytes']} bytes"
                      + (f" ({r['file_bps']:.1f} bps over the duration)" if r["file_bps"] else "")),
        ("overhead", f"{r['overhead_bytes']} bytes (header and framing of format version "
                     f"{r['format_version']}; "
                     f"payload {r['payload_bytes']} bytes)"),
        ("written by", f"semanticodec_rt {printable(r['version'])}"),
    ]
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key:<{width}}  {value}")
    return 0


COMMAND_FUNCS = {"encode": cmd_encode, "decode": cmd_decode, "roundtrip": cmd_roundtrip, "info": cmd_info}
