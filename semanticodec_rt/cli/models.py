"""``--model SPEC``: the codec from a checkpoint PATH, ``official:DIR[:RATE[:VOCAB]]`` or ``preset:NAME``."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from .app import PROG, CliError

#: the model used when --model is omitted: the distilled rt-small shipped in the package (MODEL_CARD.md)
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "assets" / "default.safetensors"


def default_model() -> Path:
    """The default model path as ``semanticodec_rt.cli.DEFAULT_MODEL`` holds it now.

    Read from the package at call time, so that setting that attribute (as tests do) still moves
    the default, as it did when the command line was one module.
    """
    from . import DEFAULT_MODEL as path

    return path


def load_codec(args: argparse.Namespace):
    """The :class:`SemantiCodec` named by ``--model`` (or the shipped default), on ``--device``."""
    import torch

    spec = args.model
    if spec is None:
        default = default_model()
        if not default.exists():
            raise CliError(f"the default model {default} is missing (a partial install?): "
                           "reinstall the package, or pass --model PATH|official:DIR")
        spec = str(default)
    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise CliError("--device cuda: no CUDA device is available")
    if spec.startswith("preset:"):
        return _load_preset(spec[len("preset:"):], device, args.random_weights_ok)
    if spec.startswith("official:"):
        return _load_official(spec[len("official:"):], device)
    from ..weights import checkpoint

    path = Path(spec).expanduser()
    if path.is_dir():
        raise CliError(f"--model {spec} is a folder; for the published checkpoints use official:{spec}")
    return checkpoint.load(path, device)


def _load_preset(name: str, device: str, allowed: bool):
    from ..config import PRESETS, RT_FAMILIES, rt_config
    from ..codec import SemantiCodec

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
    from ..config import official_config
    from ..codec import SemantiCodec
    from ..weights.official import CheckpointMismatchError, parse_official_spec

    folder, rate, vocab = parse_official_spec(rest)
    if not folder:
        raise CliError("--model official:DIR[:RATE[:VOCAB]] needs a folder")
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
