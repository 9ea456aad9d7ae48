"""The command line: ``semanticodec-rt`` (or ``python -m semanticodec_rt``).

Commands::

    semanticodec-rt encode    IN.wav  OUT.scrt    audio -> tokens
    semanticodec-rt decode    IN.scrt OUT.wav     tokens -> 16 kHz audio
    semanticodec-rt roundtrip IN.wav  OUT.wav     both, in memory
    semanticodec-rt info      FILE.scrt           what a .scrt holds (no model needed)

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
  or the system refuses (an ``OSError`` such as a full disk).

Anything else is a bug and keeps its traceback.  This module imports torch only for commands that
run the model, so ``info`` and ``--help`` start quickly.
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
COMMANDS = ("encode", "decode", "roundtrip", "info")
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
    if args.command != "info":
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
    return parser


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
                    *_classes("official", "CheckpointMismatchError"))
    if isinstance(e, model_errors):
        return 1
    if isinstance(e, OSError):
        return 1
    return None
