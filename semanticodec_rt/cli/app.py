"""The entry point of the command line: argument parsing, suffix mode, errors and exit codes.

:func:`main` parses the command line (a command name first, or two paths whose suffixes give the
mode), runs the command and turns expected failures into one line on stderr and an exit status;
the commands live in :mod:`.codec_cmds`, :mod:`.data_cmd`, :mod:`.eval_cmd`, :mod:`.bench_cmd`,
:mod:`.train_cmd`, :mod:`.live_cmd` and :mod:`.link_cmd` (each imports torch only when it runs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import __version__
from ..bitstream import BitstreamError
from . import bench_cmd, codec_cmds, data_cmd, eval_cmd, link_cmd, live_cmd, train_cmd
from .common import (
    COMMANDS, FORMATTER, PROG, CliError, Parser, add_common_options, add_decode_options, add_encode_options,
    add_threads_option,
)


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
    terminated, restore = _stop_on_sigterm()
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"{PROG}: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        return 143 if terminated else 130
    except Exception as e:
        code = _error_code(e)
        if code is None:
            raise
        return _fail(str(e) or type(e).__name__, code)
    finally:
        restore()


def _stop_on_sigterm():
    """SIGTERM ends a command the way Ctrl-C does: outputs in progress are removed (no hidden
    ``.OUT.<pid>.tmp`` left), ``link recv`` writes the audio it had.  Returns ``(came, restore)``:
    a list that holds ``True`` once SIGTERM came, and what puts the previous handler back (only
    the main thread can take signals; elsewhere nothing changes)."""
    import signal
    import threading

    came: list = []
    if threading.current_thread() is not threading.main_thread():
        return came, lambda: None

    def handler(signum, frame):
        came.append(True)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    return came, lambda: signal.signal(signal.SIGTERM, previous)


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
    args.func = codec_cmds.COMMAND_FUNCS[args.command]
    return args


# -- parsers ---------------------------------------------------------------------------------------
_MAIN_DESCRIPTION = """\
Compress audio into SemantiCodec tokens (.scrt files) and turn tokens back into audio.

SemantiCodec describes sound with two streams of ids: "semantic" ids (what is said or
played) and "acoustic" ids (how it sounds).  The default model (the speech route, 1.3 kbit/s,
95 ms latency) decodes them to the features of a pretrained speech vocoder (FARGAN) and
streams in 40 ms steps; the diffusion presets decode them by latent diffusion in 160 ms units;
the published (official) model works in 10.24 s windows.
"""

_MAIN_EPILOG = f"""\
modes by file suffix (when the first argument is not a command):
  {PROG} IN.wav OUT.scrt    encode
  {PROG} IN.scrt OUT.wav    decode
  {PROG} IN.wav OUT.wav     roundtrip (encode + decode)

examples:
  {PROG} speech.wav speech.scrt              (the model shipped with the package)
  {PROG} speech.scrt decoded.wav --steps 8
  {PROG} encode --model official:~/semanticodec:50 talk.flac talk.scrt
  {PROG} info talk.scrt --json
  {PROG} encode --help        (options of one command)

exit status: 0 success; 2 bad command line or unusable input (missing, unreadable or
empty audio, corrupt .scrt, .scrt from another model, output exists without -f);
1 the model cannot be loaded or the system refused (e.g. disk full).
"""


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``semanticodec-rt COMMAND ...``."""
    parser = Parser(prog=PROG, description=_MAIN_DESCRIPTION, epilog=_MAIN_EPILOG,
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
    p = Parser(
        prog=PROG,
        usage="%(prog)s [options] IN OUT   (or: %(prog)s COMMAND ...; see --help)",
        formatter_class=FORMATTER,
    )
    p.add_argument("input", metavar="IN")
    p.add_argument("output", metavar="OUT")
    add_common_options(p)
    add_threads_option(p)
    add_encode_options(p)
    add_decode_options(p)
    return p


def _mode_from_suffixes(src: str, dst: str) -> str:
    src_scrt = Path(src).suffix.lower() == ".scrt"
    dst_scrt = Path(dst).suffix.lower() == ".scrt"
    if src_scrt and dst_scrt:
        raise CliError("both files are .scrt: give audio on one side (IN.wav OUT.scrt or IN.scrt OUT.wav)")
    if src_scrt:
        return "decode"
    return "encode" if dst_scrt else "roundtrip"


# -- exit codes --------------------------------------------------------------------------------------
_ROOT_PACKAGE = __package__.rpartition(".")[0]  # semanticodec_rt


def _fail(message: str, code: int) -> int:
    one_line = " ".join(message.split())
    print(f"{PROG}: error: {one_line}", file=sys.stderr)
    return code


def _classes(module: str, *names: str) -> tuple[type, ...]:
    """Exception classes of ``semanticodec_rt.<module>`` if it is imported (else none can occur)."""
    mod = sys.modules.get(f"{_ROOT_PACKAGE}.{module}")
    return tuple(getattr(mod, n) for n in names) if mod is not None else ()


def _error_code(e: BaseException) -> int | None:
    """Exit status of an expected failure, ``None`` for a bug (which then keeps its traceback)."""
    if isinstance(e, CliError):
        return e.code
    input_errors = (BitstreamError, FileNotFoundError, *_classes("audio.files", "AudioInputError"),
                    *_classes("config", "SamplerError"))
    if isinstance(e, input_errors):  # ModelMismatchError is a BitstreamError
        return 2
    model_errors = (*_classes("weights.checkpoint", "CheckpointError"),
                    *_classes("weights.state", "CheckpointMismatchError"),
                    *_classes("lab.data", "DataError"),
                    *_classes("lab.data.manifest", "ManifestError"))
    if isinstance(e, model_errors):
        return 1
    if isinstance(e, OSError):
        return 1
    return None
