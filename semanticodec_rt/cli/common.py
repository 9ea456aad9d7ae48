"""What every command of the command line shares: names, errors, options, model and file handling.

The commands (:mod:`.codec_cmds`, :mod:`.data_cmd`, :mod:`.eval_cmd`, :mod:`.bench_cmd`,
:mod:`.train_cmd`, :mod:`.live_cmd`, :mod:`.link_cmd`) import this module; :mod:`.app` imports
the commands.  Nothing here imports a command, so the imports run one way.
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import contextmanager
from pathlib import Path

from ..config import SAMPLE_RATE

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


class Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line (through :class:`CliError`), not two."""

    def error(self, message: str):
        raise CliError(f"{message} (see '{self.prog} --help')", 2)


# -- options ---------------------------------------------------------------------------------------
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


def add_threads_option(p: argparse.ArgumentParser, default: int = 1) -> None:
    p.add_argument(
        "--threads", type=positive_int, default=default, metavar="N",
        help=f"torch CPU threads (default {default}: the models' small per-window tensors run "
             "faster on one thread than two, and far faster when the machine is busy)",
    )


def add_encode_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--mono", choices=("first", "mean"), default="first",
        help="files with several channels: keep the first (default, as the published model) or average them",
    )


def add_decode_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--steps", type=nonnegative_int, metavar="N",
        help="decoder steps (default: the model's, 4 for rt presets, 50 official); more = cleaner, slower; "
             "0 = the speech route's regression path alone (diffusion models need at least 1)",
    )
    p.add_argument(
        "--cfg-scale", type=float, metavar="S",
        help="classifier-free guidance scale (default: the model's: 1.0 for the shipped distilled "
             "model, whose guidance is folded in; 2.0 for the published model and rt presets)",
    )
    p.add_argument("--seed", type=int, default=0, help="noise seed; equal seeds give equal audio (default 0)")
    p.add_argument("--float", action="store_true", help="write 32-bit float samples instead of 16-bit PCM")
    p.add_argument("--route", choices=("auto", "speech", "general"),
                   help="models with a general-audio route: let the router pick per 40 ms position from the "
                        "tokens (auto, the default) or force the speech or the general (music, effects) route")


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
    return value


def nonnegative_int(text: str) -> int:
    """argparse type: a whole number >= 0."""
    return _int_at_least(text, 0)


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    return _int_at_least(text, 1)


# -- messages ----------------------------------------------------------------------------------------
def progress_enabled(args) -> bool:
    return not args.quiet and sys.stderr.isatty()


def say(args, message: str) -> None:
    if not args.quiet:
        print(message)


# -- the model ---------------------------------------------------------------------------------------
def load_codec(args: argparse.Namespace):
    """The codec named by ``--model`` (or the shipped default) on ``--device``, with ``--threads``
    torch threads; a spec that names nothing loadable is a :class:`CliError`."""
    import torch

    from ..api import ModelSpecError, load_model

    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    try:
        codec = load_model(args.model, device=args.device, random_weights_ok=args.random_weights_ok)
    except ModelSpecError as e:
        raise CliError(str(e)) from None
    route = getattr(args, "route", None)
    if route is not None:
        if not hasattr(codec.decoder, "route"):
            raise CliError(f"--route: {codec.cfg.name} decodes through one route only (no router)")
        try:
            codec.decoder.route = route
        except ValueError as e:
            raise CliError(f"--route: {e}") from None
    return codec


# -- files -------------------------------------------------------------------------------------------
def input_path(text: str) -> Path:
    path = Path(text)
    if not path.exists():
        raise CliError(f"{text}: no such file")
    if path.is_dir():
        raise CliError(f"{text}: is a folder, not a file")
    return path


def output_path(text: str, force: bool, src: Path, wav: bool = False) -> Path:
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
def atomic_output(path: Path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def read_source(path: Path, mono: str):
    """The audio file as a checked :class:`~semanticodec_rt.audio.load.FileWaveform`: read once
    (block by block) to validate it and count its samples; encoding reads it again."""
    from ..audio.load import FileWaveform

    return FileWaveform(path, mono=mono).check()


def say_decoded(args, dst: Path, written: int, clipped: int, nonfinite: int = 0) -> None:
    say(args, f"{dst}: {written / SAMPLE_RATE:.2f} s ({written} samples at {SAMPLE_RATE} Hz)")
    if nonfinite:
        print(f"{PROG}: warning: the decoder gave {nonfinite} NaN or infinite samples, written as silence "
              "(damaged model weights?)", file=sys.stderr)
    if clipped:
        print(f"{PROG}: note: {clipped} samples beyond [-1, 1] were clipped (--float keeps them)",
              file=sys.stderr)
