"""The entry point of the command line: argument parsing, suffix mode, errors and exit codes.

:func:`main` parses the command line (a command name first, or two paths whose suffixes give the
mode), runs the command and turns expected failures into one line on stderr and an exit status;
the commands themselves live in :mod:`.codec_cmds`, :mod:`.data_cmd`, :mod:`.eval_cmd` and
:mod:`.bench_cmd` and :mod:`.train_cmd`, and are imported only when the parser is built.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import __version__
from ..bitstream import BitstreamError

PROG = "semanticodec-rt"
COMMANDS = ("encode", "decode", "roundtrip", "info", "data", "eval", "bench", "train", "live", "link")
FORMATTER = argparse.RawDescriptionHelpFormatter

MODEL_HELP = (
    "the model: PATH of a checkpoint saved by semanticodec_rt.weights.checkpoint; "
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
    from .codec_cmds import COMMAND_FUNCS

    args = _suffix_parser().parse_args(argv)
    args.command = _mode_from_suffixes(args.input, args.output)
    args.func = COMMAND_FUNCS[args.command]
    return args


# -- parsers ---------------------------------------------------------------------------------------
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


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``semanticodec-rt COMMAND ...``."""
    from . import bench_cmd, codec_cmds, data_cmd, eval_cmd, train_cmd
    from . import live_cmd
    from . import link_cmd

    parser = _Parser(prog=PROG, description=_MAIN_DESCRIPTION, epilog=_MAIN_EPILOG,
                     formatter_class=FORMATTER)
    parser.add_argument("-V", "--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    codec_cmds.add_parsers(sub)
    data_cmd.add_parser(sub)
    eval_cmd.add_parser(sub)
    bench_cmd.add_parser(sub)
    train_cmd.add_parser(sub)
    live_cmd.add_parser(sub)
    link_cmd.add_parser(sub)
    return parser


def _suffix_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        usage="%(prog)s [options] IN OUT   (or: %(prog)s COMMAND ...; see --help)",
        formatter_class=FORMATTER,
    )
    p.add_argument("input", metavar="IN")
    p.add_argument("output", metavar="OUT")
    add_common_options(p)
    add_encode_options(p)
    add_decode_options(p)
    return p


def add_common_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="SPEC", help=MODEL_HELP)
    p.add_argument(
        "--random-weights-ok", action="store_true",
        help="allow --model preset:NAME (random weights: noise out; for tests and benchmarks)",
    )
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="where the model runs (default cpu)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite the output file if it exists")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary")


def add_encode_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--mono", choices=("first", "mean"), default="first",
        help="files with several channels: keep the first (default, as the published model) or average them",
    )


def add_decode_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--steps", type=positive_int, metavar="N",
        help="diffusion steps (default: the model's, 4 for rt presets, 50 official); more = cleaner, slower",
    )
    p.add_argument(
        "--cfg-scale", type=float, metavar="S",
        help="classifier-free guidance scale (default: the model's, 2.0)",
    )
    p.add_argument("--seed", type=int, default=0, help="noise seed; equal seeds give equal audio (default 0)")
    p.add_argument("--float", action="store_true", help="write 32-bit float samples instead of 16-bit PCM")


def positive_int(text: str) -> int:
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


# -- messages ----------------------------------------------------------------------------------------
def progress_enabled(args) -> bool:
    return not args.quiet and sys.stderr.isatty()


def say(args, message: str) -> None:
    if not args.quiet:
        print(message)


def _fail(message: str, code: int) -> int:
    one_line = " ".join(message.split())
    print(f"{PROG}: error: {one_line}", file=sys.stderr)
    return code


# -- exit codes --------------------------------------------------------------------------------------
_ROOT_PACKAGE = __package__.rpartition(".")[0]  # semanticodec_rt


def _classes(module: str, *names: str) -> tuple[type, ...]:
    """Exception classes of ``semanticodec_rt.<module>`` if it is imported (else none can occur)."""
    mod = sys.modules.get(f"{_ROOT_PACKAGE}.{module}")
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
