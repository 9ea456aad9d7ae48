"""The command line: ``semanticodec-rt`` (or ``python -m semanticodec_rt``).

Commands::

    semanticodec-rt encode    IN.wav  OUT.scrt    audio -> tokens
    semanticodec-rt decode    IN.scrt OUT.wav     tokens -> 16 kHz audio
    semanticodec-rt roundtrip IN.wav  OUT.wav     both, in memory
    semanticodec-rt info      FILE.scrt           what a .scrt holds (no model needed)
    semanticodec-rt data build --out DIR --tier T  the offline training corpus (semanticodec_rt.data)
    semanticodec-rt eval --ref DIR|MANIFEST       objective scores vs baselines (semanticodec_rt.eval)

Without a command name the mode follows the suffixes, as in encodec's CLI: ``IN.wav OUT.scrt``
encodes, ``IN.scrt OUT.wav`` decodes, ``IN.wav OUT.wav`` does both.

Real-time presets are encoded in ~1 s blocks by the streaming encoder and their packets written as
they come; they are decoded by the streaming decoder a few units at a time straight into the WAV
file, so neither side holds a long file's tokens or audio twice.  Official configs go through
``SemantiCodec.encode`` / ``decode`` on the whole file (their 10.24 s windows need no more).

Outputs are written to a temporary file next to the target and renamed at the end, so a failed
run never leaves half a file behind (nor destroys the old one under ``--force``).

Expected failures print one line ``semanticodec-rt: error: <message>`` to stderr and exit with

* 2 -- the command line or an input is unusable: bad options, a missing or unreadable input,
  unsupported/empty/non-finite audio, a malformed ``.scrt`` (:class:`BitstreamError`), a
  ``.scrt`` made by another model (:class:`ModelMismatchError`), an existing output without
  ``--force``, no model given and none shipped;
* 1 -- the model cannot be loaded (:class:`CheckpointError`, :class:`CheckpointMismatchError`)
  or the system refuses (an ``OSError`` such as a full disk); for ``data``: a missing tool
  (apt-get, dpkg-deb), an unreachable Debian mirror or another :class:`DataError`.

Anything else is a bug and keeps its traceback.  This module imports torch only for commands that
run the model, so ``info``, ``data`` and ``--help`` start quickly.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from . import __version__
from .bitstream import (
    BitstreamError,
    PacketKind,
    ScrtReader,
    ScrtWriter,
    StreamInfo,
    check_model,
    packed_size,
    read_scrt,
)

PROG = "semanticodec-rt"
COMMANDS = ("encode", "decode", "roundtrip", "info", "data", "eval", "bench")
SAMPLE_RATE = 16000  # the codec's rate; decoded WAVs are written at it
#: the model used when --model is omitted (not shipped yet)
DEFAULT_MODEL = Path(__file__).resolve().parent / "assets" / "default.safetensors"
ENCODE_BLOCK = SAMPLE_RATE  # samples per streaming-encoder call: 1 s
DECODE_UNITS = 8  # units per streaming-decoder call: one UNet batch, as SemantiCodec.decode uses

_MODEL_HELP = (
    "the model: PATH of a checkpoint saved by semanticodec_rt.checkpoint; "
    "official:DIR[:RATE[:VOCAB]] for the published checkpoints in folder DIR (default rate 100, "
    "vocab 32768); preset:NAME for random weights of a preset (needs --random-weights-ok). "
    "Default: the model shipped with the package, if any."
)


class CliError(Exception):
    """An expected failure: ``message`` is printed as one line, ``code`` is the exit status."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line (through :class:`CliError`), not two."""

    def error(self, message: str):
        raise CliError(f"{message} (see '{self.prog} --help')", 2)


# -- entry point -----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 on success)."""
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    try:
        args = parse_args(argv)
    except SystemExit as e:  # --help and --version exit through argparse
        return e.code if isinstance(e.code, int) else 0
    except CliError as e:
        return _fail(str(e), e.code)
    if args.command not in ("info", "data"):
        import torch

        # Denormal floats make the small models' CPU kernels ~20x slower; nothing here needs them.
        torch.set_flush_denormal(True)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        code = _error_code(e)
        if code is None:
            raise
        return _fail(str(e) or type(e).__name__, code)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse ``argv``: a command name first, or two paths whose suffixes give the mode."""
    if not argv or argv[0] in COMMANDS or argv[0] in ("-h", "--help", "-V", "--version"):
        args = build_parser().parse_args(argv)
        if args.command is None:
            raise CliError(f"no command given (see '{PROG} --help')")
        return args
    late = [a for a in argv if a in COMMANDS and not Path(a).exists()]
    if late:
        raise CliError(f"the command comes first: '{PROG} {late[0]} [options] ...'")
    args = _suffix_parser().parse_args(argv)
    args.command = _mode_from_suffixes(args.input, args.output)
    args.func = _COMMAND_FUNCS[args.command]
    return args


# -- parsers ---------------------------------------------------------------------------------------
_FORMATTER = argparse.RawDescriptionHelpFormatter

_MAIN_DESCRIPTION = """\
Compress audio into SemantiCodec tokens (.scrt files) and turn tokens back into audio.

SemantiCodec describes sound with two streams of ids: "semantic" ids (what is said or
played) and "acoustic" ids (how it sounds).  A diffusion decoder turns them back into
16 kHz audio.  The real-time presets work in 160 ms units and stream; the published
(official) model works in 10.24 s windows.
"""

_MAIN_EPILOG = f"""\
modes by file suffix (when the first argument is not a command):
  {PROG} IN.wav OUT.scrt    encode
  {PROG} IN.scrt OUT.wav    decode
  {PROG} IN.wav OUT.wav     roundtrip (encode + decode)

examples:
  {PROG} speech.wav speech.scrt --model mymodel.safetensors
  {PROG} speech.scrt decoded.wav --model mymodel.safetensors --steps 8
  {PROG} encode --model official:~/semanticodec:50 talk.flac talk.scrt
  {PROG} info talk.scrt --json
  {PROG} encode --help        (options of one command)

exit status: 0 success; 2 bad command line or unusable input (missing, unreadable or
empty audio, corrupt .scrt, .scrt from another model, output exists without -f);
1 the model cannot be loaded or the system refused (e.g. disk full).
"""

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
  {PROG} encode speech.wav speech.scrt --model mymodel.safetensors
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
  {PROG} decode speech.scrt decoded.wav --model mymodel.safetensors
  {PROG} decode --steps 25 --seed 7 --float speech.scrt decoded.wav --model mymodel.safetensors
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
  {PROG} roundtrip speech.wav speech_codec.wav --model mymodel.safetensors
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

_DATA_TEXTS = (
    "training data: build the offline corpus from Debian packages",
    """\
Training data.  'data build' makes a 16 kHz corpus of real speech, music and sound
effects from audio that ships in Debian main packages (see 'data build --help').
""",
    f"""\
examples:
  {PROG} data build --out corpus --tier smoke
  {PROG} data build --out corpus --tier core --work /var/tmp/debs --jobs 2
""",
)

_DATA_BUILD_TEXTS = (
    "download Debian packages and build the 16 kHz FLAC corpus",
    """\
Download the tier's packages with 'apt-get download' (no root; run 'apt-get update'
once before), unpack them with 'dpkg-deb -x', sort their audio files into speech, music
and sfx by per-package path rules, and write 16 kHz mono 16-bit FLAC to
OUT/{train,valid,test,test_unseen}/<class>/<package>/, with OUT/manifest.jsonl (path,
cls, pkg, licence, src, orig_sr, dur, split, group) and OUT/summary.md + summary.json
(hours per class and split).  Clips under 0.25 s or silent are dropped.  The split is
90/5/5 by sha1 of a group key; held-out packages form test_unseen.

Tiers: smoke (4 small packages, ~25 MB, a pipeline check: every class and a held-out
package), core (~1.4 GB of .deb files, ~23 h), full (~3.8 GB, ~33 h).  .g722 and .wv
files need ffmpeg; without it they are skipped with a warning.

The build resumes: finished files are kept and a finished build re-runs as a no-op
that writes the same manifest.
""",
    f"""\
examples:
  {PROG} data build --out corpus --tier smoke
  {PROG} data build --out corpus --tier full --work /var/tmp/scrt-debs
  {PROG} data build --out corpus --tier core --only klettres-data lomiri-sounds
""",
)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``semanticodec-rt COMMAND ...``."""
    parser = _Parser(prog=PROG, description=_MAIN_DESCRIPTION, epilog=_MAIN_EPILOG,
                     formatter_class=_FORMATTER)
    parser.add_argument("-V", "--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, (summary, description, epilog) in _COMMAND_TEXTS.items():
        p = sub.add_parser(name, help=summary, description=description, epilog=epilog,
                           formatter_class=_FORMATTER)
        p.set_defaults(func=_COMMAND_FUNCS[name])
        if name == "info":
            p.add_argument("input", metavar="FILE.scrt", help="the .scrt file to describe")
            p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
            continue
        in_meta, out_meta = {"encode": ("IN", "OUT.scrt"), "decode": ("IN.scrt", "OUT.wav"),
                             "roundtrip": ("IN", "OUT.wav")}[name]
        in_help = "input .scrt file" if name == "decode" else "input audio file"
        p.add_argument("input", metavar=in_meta, help=in_help)
        p.add_argument("output", metavar=out_meta, help="output file (refused if it exists, unless -f)")
        _add_common_options(p)
        if name in ("encode", "roundtrip"):
            _add_encode_options(p)
        if name in ("decode", "roundtrip"):
            _add_decode_options(p)
    _add_data_parser(sub)
    _add_eval_parser(sub)
    _add_bench_parser(sub)
    return parser


def _add_data_parser(sub) -> None:
    from .data.packages import TIERS

    summary, description, epilog = _DATA_TEXTS
    p = sub.add_parser("data", help=summary, description=description, epilog=epilog,
                       formatter_class=_FORMATTER)
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND", title="subcommands",
                            required=True)
    summary, description, epilog = _DATA_BUILD_TEXTS
    b = dsub.add_parser("build", help=summary, description=description, epilog=epilog,
                        formatter_class=_FORMATTER)
    b.set_defaults(func=cmd_data_build)
    b.add_argument("--out", required=True, metavar="DIR", help="the corpus folder (created if needed)")
    b.add_argument("--tier", required=True, choices=TIERS, help="which packages (see above)")
    b.add_argument("--work", metavar="DIR",
                   help="downloads and extractions (default OUT/.work); reused by later builds")
    b.add_argument("--jobs", type=_positive_int, default=2, metavar="N",
                   help="conversion processes (default 2)")
    b.add_argument("--only", nargs="+", metavar="PKG",
                   help="process just these packages of the tier (the manifest keeps the others "
                        "already built in OUT)")
    b.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no messages")


def _suffix_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        usage="%(prog)s [options] IN OUT   (or: %(prog)s COMMAND ...; see --help)",
        formatter_class=_FORMATTER,
    )
    p.add_argument("input", metavar="IN")
    p.add_argument("output", metavar="OUT")
    _add_common_options(p)
    _add_encode_options(p)
    _add_decode_options(p)
    return p


def _add_common_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="SPEC", help=_MODEL_HELP)
    p.add_argument(
        "--random-weights-ok", action="store_true",
        help="allow --model preset:NAME (random weights: noise out; for tests and benchmarks)",
    )
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="where the model runs (default cpu)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite the output file if it exists")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary")


def _add_encode_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--mono", choices=("first", "mean"), default="first",
        help="files with several channels: keep the first (default, as the published model) or average them",
    )


def _add_decode_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--steps", type=_positive_int, metavar="N",
        help="diffusion steps (default: the model's, 4 for rt presets, 50 official); more = cleaner, slower",
    )
    p.add_argument(
        "--cfg-scale", type=float, metavar="S",
        help="classifier-free guidance scale (default: the model's, 2.0)",
    )
    p.add_argument("--seed", type=int, default=0, help="noise seed; equal seeds give equal audio (default 0)")
    p.add_argument("--float", action="store_true", help="write 32-bit float samples instead of 16-bit PCM")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _mode_from_suffixes(src: str, dst: str) -> str:
    src_scrt = Path(src).suffix.lower() == ".scrt"
    dst_scrt = Path(dst).suffix.lower() == ".scrt"
    if src_scrt and dst_scrt:
        raise CliError("both files are .scrt: give audio on one side (IN.wav OUT.scrt or IN.scrt OUT.wav)")
    if src_scrt:
        return "decode"
    return "encode" if dst_scrt else "roundtrip"


# -- commands --------------------------------------------------------------------------------------
def cmd_encode(args: argparse.Namespace) -> int:
    src = _input_path(args.input)
    dst = _output_path(args.output, args.force, src)
    codec = load_codec(args)
    wave = _read_wave(src, args.mono)
    n = wave.shape[-1]
    n_frames = _expected_frames(codec, n)
    whole = None
    if n_frames is None:  # official windows: the whole file at once
        whole = codec.encode(wave, SAMPLE_RATE)[0].numpy()
        n_frames = len(whole)
    info = stream_info(codec, n_samples=n, n_frames=n_frames)
    with _atomic_output(dst) as tmp, ScrtWriter(tmp, info) as writer:
        if whole is not None:
            writer.write_frames(whole)
        else:
            _stream_encode(codec, wave, writer.write_frames, args)
    _say(args, f"{dst}: {n_frames} frames for {n / SAMPLE_RATE:.2f} s, payload {info.payload_bps:g} bps, "
               f"{dst.stat().st_size} bytes")
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    src = _input_path(args.input)
    dst = _output_path(args.output, args.force, src, wav=True)
    with ScrtReader(src) as reader:  # the header is checked before the model loads
        info = reader.info
        codec = load_codec(args)
        check_model(info, codec.model_sha, codec.cfg.name)
        if codec.cfg.stream is not None and info.n_frames is not None and info.n_samples is not None:
            chunks = (pkt.ids for pkt in reader if pkt.kind is PacketKind.TOKENS)  # streamed
        else:  # live-written header (totals only in END) or official windows: read it all
            info, tokens, _ = read_scrt(src)
            chunks = [tokens]
        with _atomic_output(dst) as tmp:
            written, clipped = _decode_to_wav(codec, chunks, info.n_frames, info.n_samples, args, tmp)
    _say_decoded(args, dst, written, clipped)
    return 0


def cmd_roundtrip(args: argparse.Namespace) -> int:
    src = _input_path(args.input)
    dst = _output_path(args.output, args.force, src, wav=True)
    codec = load_codec(args)
    wave = _read_wave(src, args.mono)
    n = wave.shape[-1]
    chunks: list[np.ndarray] = []
    if codec.cfg.stream is None:
        chunks.append(codec.encode(wave, SAMPLE_RATE)[0].numpy())
    else:
        _stream_encode(codec, wave, chunks.append, args)
    tokens = np.concatenate(chunks)
    info = stream_info(codec, n_samples=n, n_frames=len(tokens))
    _say(args, f"{len(tokens)} token positions ({2 * len(tokens)} ids) for {n / SAMPLE_RATE:.2f} s, "
               f"payload {info.payload_bps:g} bps")
    with _atomic_output(dst) as tmp:
        written, clipped = _decode_to_wav(codec, [tokens], len(tokens), n, args, tmp)
    _say_decoded(args, dst, written, clipped)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    src = _input_path(args.input)
    report = scrt_report(src)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    r = report
    lines = [
        ("file", r["file"]),
        ("model", f"{r['model']} ({r['config']})"),
        ("duration", f"{r['duration_s']:.3f} s ({r['n_samples']} samples at {r['sample_rate']} Hz)"),
        ("token rate", f"{r['token_rate']} ids/s ({r['frames_per_s']:g} frames/s)"),
        ("bits per id", f"semantic {r['semantic_bits']} (vocab {r['semantic_vocab']}), "
                        f"acoustic {r['acoustic_bits']} (vocab {r['acoustic_vocab']})"),
        ("payload", f"{r['payload_bps']:g} bps"),
        ("frames", f"{r['n_frames']} (up to {r['frames_per_packet']} per packet)"),
        ("packets", f"{r['n_packets']} ({r['n_packets'] - 1} tokens + END)"),
        ("file size", f"{r['file_bytes']} bytes"
                      + (f" ({r['file_bps']:.1f} bps over the duration)" if r["file_bps"] else "")),
        ("overhead", f"{r['overhead_bytes']} bytes (header and packet framing; "
                     f"payload {r['payload_bytes']} bytes)"),
        ("written by", f"semanticodec_rt {r['version']}"),
    ]
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key:<{width}}  {value}")
    return 0


def cmd_data_build(args: argparse.Namespace) -> int:
    from .data import DataError
    from .data.build import Options, build, select_packages

    try:
        select_packages(args.tier, args.only)  # a bad --only is a command-line error
    except DataError as e:
        raise CliError(f"--only: {e}") from None
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CliError(f"--out {args.out}: is a file, not a folder")
    if args.work is not None and Path(args.work).exists() and not Path(args.work).is_dir():
        raise CliError(f"--work {args.work}: is a file, not a folder")
    opts = Options(
        out=out, tier=args.tier, work=None if args.work is None else Path(args.work),
        jobs=args.jobs, only=args.only, progress=_progress_enabled(args),
        log=(lambda s: None) if args.quiet else (lambda s: print(s, flush=True)),
        warn=lambda s: print(f"{PROG}: warning: {s}", file=sys.stderr, flush=True),
    )
    build(opts)
    return 0


_COMMAND_FUNCS = {"encode": cmd_encode, "decode": cmd_decode, "roundtrip": cmd_roundtrip, "info": cmd_info}


# -- pieces ----------------------------------------------------------------------------------------
def stream_info(codec, **kwargs) -> StreamInfo:
    """Header of a stream made by ``codec``: named by its model sha (weights), not its config sha."""
    return dataclasses.replace(StreamInfo.from_config(codec.cfg, **kwargs), model=codec.model_sha)


def scrt_report(path: str | os.PathLike) -> dict:
    """What ``info`` prints, as a dict (the ``--json`` object).  Reads and checks the whole file."""
    path = Path(path)
    info, _, packets = read_scrt(path)
    size = path.stat().st_size
    payload = sum(packed_size(p.n_frames, info.frame_bits) for p in packets if p.kind is PacketKind.TOKENS)
    duration = info.n_samples / info.sample_rate
    return {
        "file": str(path),
        "model": info.model,
        "config": info.config,
        "version": info.version,
        "sample_rate": info.sample_rate,
        "n_samples": info.n_samples,
        "duration_s": duration,
        "token_rate": info.token_rate,
        "frames_per_s": info.frames_per_s,
        "semantic_vocab": info.semantic_vocab,
        "acoustic_vocab": info.acoustic_vocab,
        "semantic_bits": info.semantic_bits,
        "acoustic_bits": info.acoustic_bits,
        "payload_bps": info.payload_bps,
        "n_frames": info.n_frames,
        "frames_per_packet": info.frames_per_packet,
        "n_packets": len(packets),
        "file_bytes": size,
        "payload_bytes": payload,
        "overhead_bytes": size - payload,
        "file_bps": size * 8 / duration if duration > 0 else None,
    }


def load_codec(args: argparse.Namespace):
    """The :class:`SemantiCodec` named by ``--model`` (or the shipped default), on ``--device``."""
    import torch

    spec = args.model
    if spec is None:
        if not DEFAULT_MODEL.exists():
            raise CliError("no default model is shipped yet: pass --model PATH|official:DIR")
        spec = str(DEFAULT_MODEL)
    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise CliError("--device cuda: no CUDA device is available")
    if spec.startswith("preset:"):
        return _load_preset(spec[len("preset:"):], device, args.random_weights_ok)
    if spec.startswith("official:"):
        return _load_official(spec[len("official:"):], device)
    from . import checkpoint

    path = Path(spec).expanduser()
    if path.is_dir():
        raise CliError(f"--model {spec} is a folder; for the published checkpoints use official:{spec}")
    return checkpoint.load(path, device)


def _load_preset(name: str, device: str, allowed: bool):
    from .config import PRESETS, RT_FAMILIES, rt_config
    from .model import SemantiCodec

    if not allowed:
        raise CliError(
            f"--model preset:{name} has random weights (noise, not audio); "
            "add --random-weights-ok if that is what you want (tests, benchmarks)"
        )
    cfg = PRESETS.get(name)
    m = re.fullmatch(r"(rt-[a-z]+)-r(\d+)-v(\d+)", name)
    if cfg is None and m and m.group(1) in RT_FAMILIES:
        try:
            cfg = rt_config(m.group(1), int(m.group(2)), int(m.group(3)))
        except ValueError as e:
            raise CliError(f"--model preset:{name}: {e}") from None
    if cfg is None:
        raise CliError(
            f"unknown preset {name!r}; known: {', '.join(sorted(PRESETS))} "
            "(rt presets also take a vocab suffix, e.g. rt-tiny-r100-v256)"
        )
    print(f"{PROG}: WARNING: --model preset:{name} has RANDOM WEIGHTS: its audio is noise "
          "(for tests and benchmarks only)", file=sys.stderr)
    return SemantiCodec.random(cfg, seed=0, device=device)


def _load_official(rest: str, device: str):
    from .config import official_config
    from .model import SemantiCodec
    from .official import CheckpointMismatchError

    parts = rest.split(":")
    numbers: list[int] = []
    while len(parts) > 1 and len(numbers) < 2 and parts[-1].isdigit():
        numbers.insert(0, int(parts.pop()))
    folder = ":".join(parts)
    if not folder:
        raise CliError("--model official:DIR[:RATE[:VOCAB]] needs a folder")
    rate = numbers[0] if numbers else 100
    vocab = numbers[1] if len(numbers) > 1 else 32768
    try:
        official_config(rate, vocab)
    except ValueError as e:
        raise CliError(f"--model official:{rest}: {e}") from None
    try:
        return SemantiCodec.from_official(Path(folder).expanduser(), rate, vocab, device=device)
    except (FileNotFoundError, CheckpointMismatchError):
        raise  # already one clear line
    except Exception as e:  # torch.load of a damaged file fails with any of a dozen error types
        msg = str(e).splitlines()[0] if str(e) else ""
        raise CliError(
            f"cannot read the official checkpoints in {folder} (damaged file?): {type(e).__name__} {msg}", 1
        ) from None


def _read_wave(path: Path, mono: str):
    """``[1, N]`` float32 at 16 kHz (validated: finite, non-empty)."""
    from .frontend.load import load_waveform

    return load_waveform(path, mono=mono)[0]


def _expected_frames(codec, n_samples: int) -> int | None:
    """Token positions an rt preset makes for ``n_samples``; ``None`` for official configs."""
    cfg = codec.cfg
    if cfg.stream is None:
        return None
    from .streaming.rt_compute import units_for_samples

    return units_for_samples(cfg, n_samples) * cfg.tokens_per_unit


def _stream_encode(codec, wave, sink, args) -> None:
    """Feed ``wave`` ``[1, N]`` to the streaming encoder in 1 s blocks; ``sink([m, 2] ids)`` per block."""
    from .streaming import StreamingEncoder

    enc = StreamingEncoder(codec)
    n = wave.shape[-1]
    with _progress(args, n, "encode", "sample") as bar:
        for start in range(0, n, ENCODE_BLOCK):
            block = wave[:, start : start + ENCODE_BLOCK]
            sink(enc.push(block)[0].numpy())
            bar.update(block.shape[-1])
        sink(enc.flush()[0].numpy())


def _decode_to_wav(codec, chunks, n_frames: int, n_samples: int, args, path: Path) -> tuple[int, int]:
    """Decode token chunks (``[m, 2]`` arrays) into a 16 kHz WAV; returns (samples, clipped samples)."""
    import torch

    if n_frames == 0:
        raise BitstreamError("the stream holds no tokens")
    cfg = codec.cfg
    with _WavWriter(path, args.float) as wav:
        if cfg.stream is None:
            tokens = torch.from_numpy(np.concatenate(list(chunks)))[None]
            audio = codec.decode(tokens, args.steps, args.cfg_scale, seed=args.seed, n_samples=n_samples,
                                 progress=_progress_enabled(args))
            wav.write(audio[0, 0])
            return wav.n_samples, wav.n_clipped
        from .streaming import StreamingDecoder

        tu = cfg.tokens_per_unit
        if n_frames % tu:
            raise BitstreamError(
                f"{n_frames} frames is not a whole number of {cfg.name} units ({tu} frames each)"
            )
        dec = StreamingDecoder(codec, steps=args.steps, cfg_scale=args.cfg_scale, seed=args.seed,
                               n_samples=n_samples)
        step = DECODE_UNITS * tu
        pending = np.zeros((0, 2), np.int64)
        with _progress(args, n_frames // tu, "decode", "unit") as bar:
            for ids in chunks:
                pending = np.concatenate([pending, ids])
                while len(pending) >= step:
                    wav.write(dec.push(torch.from_numpy(pending[:step])[None])[0, 0])
                    pending = pending[step:]
                    bar.update(DECODE_UNITS)
            if len(pending):
                wav.write(dec.push(torch.from_numpy(pending)[None])[0, 0])
                bar.update(len(pending) // tu)
            wav.write(dec.flush()[0, 0])
        return wav.n_samples, wav.n_clipped


class _WavWriter:
    """Mono 16 kHz WAV written block by block; 16-bit PCM clips to [-1, 1] and counts it."""

    def __init__(self, path: Path, use_float: bool):
        import soundfile as sf

        self.subtype = "FLOAT" if use_float else "PCM_16"
        self._f = sf.SoundFile(str(path), "w", samplerate=SAMPLE_RATE, channels=1,
                               subtype=self.subtype, format="WAV")
        self.n_samples = 0
        self.n_clipped = 0

    def write(self, pcm) -> None:
        x = pcm.detach().cpu().numpy().astype(np.float32, copy=False)
        if self.subtype == "PCM_16":
            over = int(np.count_nonzero(np.abs(x) > 1.0))
            if over:
                self.n_clipped += over
                x = np.clip(x, -1.0, 1.0)
        self._f.write(x)
        self.n_samples += len(x)

    def __enter__(self) -> "_WavWriter":
        return self

    def __exit__(self, *exc) -> None:
        self._f.close()


# -- eval ------------------------------------------------------------------------------------------
_EVAL_TEXTS = (
    "score the codec (and baseline codecs) against reference audio",
    """\
Code every reference clip with the model and with baseline codecs, align each decode to
its original and score it: STOI, ESTOI, PESQ-WB, ViSQOL (speech mode, lattice mapping
pinned), log-mel L1, SI-SDR, and WER (pocketsphinx en-us) for English clips with a
transcript (sidecar NAME.txt or a manifest 'text' field).  Writes OUT/clips.csv (per clip),
OUT/summary.md + summary.json (per class and codec: hours, bitrate from bitstream bytes,
mean scores) and PNG figures (spectrograms, bitrate vs quality).

--ref is a corpus folder with manifest.jsonl (default split: test), the manifest itself,
or any folder of audio files (class from a speech/music/sfx path component).  With
--decoded DIR the files there (same relative paths, any audio suffix) are scored instead
of coding: any codec can be compared.  Baselines run as programs: codec2:MODE (c2enc/c2dec,
MODE 3200 2400 1600 1400 1300 1200 700C) and opus:KBPS (opusenc/opusdec, 6-256).
""",
    f"""\
examples:
  {PROG} eval --ref corpus --model mymodel.safetensors --out eval-report
  {PROG} eval --ref corpus/manifest.jsonl --model none --baselines codec2:1400,opus:6
  {PROG} eval --ref clips --max-clips 20 --classes speech --model official:~/semanticodec
  {PROG} eval --ref clips --decoded other_codec_out --label other --kbps 1.5
""",
)


def _add_eval_parser(sub) -> None:
    summary, description, epilog = _EVAL_TEXTS
    p = sub.add_parser("eval", help=summary, description=description, epilog=epilog,
                       formatter_class=_FORMATTER)
    p.set_defaults(func=cmd_eval)
    p.add_argument("--ref", required=True, metavar="DIR|MANIFEST", help="the reference clips")
    p.add_argument("--decoded", metavar="DIR",
                   help="score these already-decoded files (matched to --ref by relative path)")
    p.add_argument("--label", metavar="NAME", help="codec name of --decoded (default: the folder name)")
    p.add_argument("--kbps", type=float, metavar="K", help="bitrate of --decoded, for the report")
    p.add_argument("--split", choices=("train", "valid", "test", "test_unseen", "all"),
                   help="which split (default: test for a manifest, all for a folder)")
    p.add_argument("--classes", metavar="LIST", help="comma-separated, e.g. speech,music (default: all)")
    p.add_argument("--max-clips", type=_positive_int, metavar="N",
                   help="at most N clips, classes taken in turn")
    p.add_argument("--max-seconds", type=float, default=30.0, metavar="S",
                   help="score the first S seconds of longer clips (default 30; 0: whole clips)")
    p.add_argument("--model", metavar="SPEC",
                   help=_MODEL_HELP + " 'none': baselines only (the default with --decoded).")
    p.add_argument("--random-weights-ok", action="store_true",
                   help="allow --model preset:NAME (random weights: noise out; for tests)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the model runs")
    p.add_argument("--steps", type=_positive_int, metavar="N",
                   help="diffusion steps (default: the model's, 4 for rt presets)")
    p.add_argument("--seed", type=int, default=0, help="decoder noise seed (default 0)")
    p.add_argument("--baselines", metavar="LIST",
                   help="comma-separated codec specs or 'none' (default codec2:1400,codec2:700C,opus:6; "
                        "none with --decoded)")
    p.add_argument("--metrics", metavar="LIST",
                   help="stoi,estoi,pesq_wb,visqol,logmel,si_sdr,wer or all (default all)")
    p.add_argument("--out", default="eval-report", metavar="DIR",
                   help="report folder (default eval-report)")
    p.add_argument("--save-audio", action="store_true", help="also write every aligned decode to OUT/audio/")
    p.add_argument("-f", "--force", action="store_true", help="overwrite a report already in --out")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no messages")


def cmd_eval(args: argparse.Namespace) -> int:
    from .eval import EvalError
    from .eval.baselines import parse_specs
    from .eval.metrics import parse_metric_names
    from .eval.run import EvalOptions, run_eval

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CliError(f"--out {args.out}: is a file, not a folder")
    if (out / "summary.json").exists() and not args.force:
        raise CliError(f"--out {args.out}: holds a report already (use -f/--force to overwrite)")
    if args.max_seconds < 0:
        raise CliError("--max-seconds must be >= 0")
    classes = None
    if args.classes:
        classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    try:
        metrics = parse_metric_names(args.metrics)
    except ValueError as e:
        raise CliError(f"--metrics: {e}") from None
    model_spec = args.model
    if model_spec is None and args.decoded is not None:
        model_spec = "none"
    default_baselines = None if args.decoded is not None else "codec2:1400,codec2:700C,opus:6"
    try:
        baselines = parse_specs(args.baselines if args.baselines is not None else default_baselines)
        opts = EvalOptions(
            ref=Path(args.ref), out=out, split=args.split, classes=classes, max_clips=args.max_clips,
            max_seconds=args.max_seconds, baselines=baselines, model_spec=model_spec, steps=args.steps,
            seed=args.seed, decoded=None if args.decoded is None else Path(args.decoded),
            decoded_label=args.label, decoded_kbps=args.kbps, metrics=metrics, save_audio=args.save_audio,
            progress=_progress_enabled(args),
            log=(lambda s: None) if args.quiet else (lambda s: print(s, flush=True)),
            warn=lambda s: print(f"{PROG}: warning: {s}", file=sys.stderr, flush=True),
        )
        codec = None
        if model_spec is None or model_spec.lower() != "none":
            args.model = model_spec
            codec = load_codec(args)
            opts.model_spec = model_spec or str(DEFAULT_MODEL)
        run_eval(opts, codec)
    except EvalError as e:
        raise CliError(str(e), e.code) from None
    return 0


# -- files, messages, progress -----------------------------------------------------------------------
def _input_path(text: str) -> Path:
    path = Path(text)
    if not path.exists():
        raise CliError(f"{text}: no such file")
    if path.is_dir():
        raise CliError(f"{text}: is a folder, not a file")
    return path


def _output_path(text: str, force: bool, src: Path, wav: bool = False) -> Path:
    path = Path(text)
    if wav and path.suffix.lower() != ".wav":
        raise CliError(f"{text}: decoded audio is written as WAV; name the output *.wav")
    if path.is_dir():
        raise CliError(f"{text}: is a folder; give a file name")
    if path.exists():
        if path.resolve() == src.resolve():
            raise CliError(f"{text}: output and input are the same file")
        if not force:
            raise CliError(f"{text}: already exists (use -f/--force to overwrite)")
    if not path.parent.is_dir():
        raise CliError(f"{text}: the folder {path.parent} does not exist")
    return path


@contextmanager
def _atomic_output(path: Path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def _progress_enabled(args) -> bool:
    return not args.quiet and sys.stderr.isatty()


def _progress(args, total: int, desc: str, unit: str):
    """A tqdm bar on stderr (a no-op when quiet or not a terminal; shown after 1 s)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=unit == "sample", file=sys.stderr,
                disable=not _progress_enabled(args), delay=1.0, leave=False)


def _say(args, message: str) -> None:
    if not args.quiet:
        print(message)


def _say_decoded(args, dst: Path, written: int, clipped: int) -> None:
    _say(args, f"{dst}: {written / SAMPLE_RATE:.2f} s ({written} samples at {SAMPLE_RATE} Hz)")
    if clipped:
        print(f"{PROG}: note: {clipped} samples beyond [-1, 1] were clipped (--float keeps them)",
              file=sys.stderr)


def _fail(message: str, code: int) -> int:
    one_line = " ".join(message.split())
    print(f"{PROG}: error: {one_line}", file=sys.stderr)
    return code


def _classes(module: str, *names: str) -> tuple[type, ...]:
    """Exception classes of ``semanticodec_rt.<module>`` if it is imported (else none can occur)."""
    mod = sys.modules.get(f"{__package__}.{module}")
    return tuple(getattr(mod, n) for n in names) if mod is not None else ()


def _error_code(e: BaseException) -> int | None:
    """Exit status of an expected failure, ``None`` for a bug (which then keeps its traceback)."""
    if isinstance(e, CliError):
        return e.code
    input_errors = (BitstreamError, FileNotFoundError, *_classes("frontend.audio_io", "AudioInputError"))
    if isinstance(e, input_errors):  # ModelMismatchError is a BitstreamError
        return 2
    model_errors = (*_classes("checkpoint", "CheckpointError"),
                    *_classes("official", "CheckpointMismatchError"),
                    *_classes("data", "DataError"),
                    *_classes("data.manifest", "ManifestError"))
    if isinstance(e, model_errors):
        return 1
    if isinstance(e, OSError):
        return 1
    return None


# -- bench ------------------------------------------------------------------------------------------
_BENCH_DESCRIPTION = """\
Time encode + decode of one model in two formulations, in one process, on the same weights and
input: the reference (50 DDIM steps at eta 1, guidance as two UNet calls per step, lookups as a
full distance matrix) and ours (fused nearest-centroid kernel, guidance as one batch) at each
--steps count.  Prints real-time factors (compute s per audio s), peak memory, algorithmic
latency and the speed-up over the reference.  Random weights are fine for speed."""
_BENCH_EPILOG = """\
examples:
  semanticodec-rt bench --quick
  semanticodec-rt bench --model preset:official-r100-v32768 --random-weights-ok --steps 1,4,10 --seconds 12
  semanticodec-rt bench --model model.safetensors --steps 1,2,4 --threads 1"""


def _add_bench_parser(sub) -> None:
    p = sub.add_parser("bench", help="speed of the reference formulation vs ours",
                       description=_BENCH_DESCRIPTION, epilog=_BENCH_EPILOG, formatter_class=_FORMATTER)
    p.set_defaults(func=cmd_bench)
    p.add_argument("--model", metavar="SPEC", help=_MODEL_HELP)
    p.add_argument("--random-weights-ok", action="store_true",
                   help="allow --model preset:NAME (random weights are fine for timing)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the model runs")
    p.add_argument("--steps", default="1,2,4,10,50", metavar="LIST", help="our step counts (default 1,2,4,10,50)")
    p.add_argument("--reference-steps", type=_positive_int, default=50, metavar="N",
                   help="DDIM steps of the reference formulation (default 50, as published)")
    p.add_argument("--seconds", type=float, default=12.0, metavar="S", help="length of the test signal")
    p.add_argument("--threads", type=_positive_int, metavar="N", help="torch CPU threads")
    p.add_argument("--quick", action="store_true",
                   help="a few seconds: rt-tiny with random weights (unless --model), 2 s, steps 1, reference 4")
    p.add_argument("--out", metavar="FILE.md", help="also write the table here")
    p.add_argument("-q", "--quiet", action="store_true", help="only the table and the ratio line")


def cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from . import bench

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        steps = [int(x) for x in args.steps.split(",") if x.strip()]
    except ValueError:
        raise CliError(f"--steps: expected comma-separated integers, got {args.steps!r}") from None
    if not steps or min(steps) < 1:
        raise CliError("--steps: give at least one positive step count")
    seconds, ref_steps = args.seconds, args.reference_steps
    if args.quick:
        if args.model is None:
            args.model, args.random_weights_ok = "preset:rt-tiny-r100", True
        seconds, steps, ref_steps = min(seconds, 2.0), [1], min(ref_steps, 4)
    if seconds <= 0:
        raise CliError("--seconds must be > 0")
    codec = load_codec(args)
    _say(args, f"bench {codec.cfg.name} on {args.device}, {torch.get_num_threads()} threads, {seconds:g} s signal")
    rows = bench.run(codec, seconds=seconds, steps=steps, reference_steps=ref_steps,
                     progress=lambda r: _say(args, f"  {r.mode} {r.steps} steps: decode RTF {r.decode_rtf:.3f}"))
    table = bench.format_table(rows)
    best = min(rows[1:], key=lambda r: r.decode_rtf)
    ratio = (f"ratio: decode {rows[0].decode_rtf / best.decode_rtf:.2f}x faster than the reference "
             f"({best.steps} steps vs {rows[0].steps}, guidance batched vs 2 calls); encode "
             f"{rows[0].encode_rtf / best.encode_rtf:.2f}x")
    print(table)
    print(ratio)
    if args.out:
        Path(args.out).write_text(table + "\n\n" + ratio + "\n")
    return 0
