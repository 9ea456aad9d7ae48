"""The library's front door: load a model, compress audio to ``.scrt`` bytes, decompress them.

    import semanticodec_rt as sc

    codec = sc.load_model()                          # the model shipped in the package
    data = sc.compress("speech.wav", model=codec)    # .scrt bytes
    audio = sc.decompress(data, model=codec)         # [1, n] float32 at 16 kHz

Everything that codes audio -- the command line, the examples, live audio, the voice link, eval
and bench -- goes through here or through the codec it returns; none of them needs to know
which windowing the model uses.

Model specs (:func:`load_model`): ``None`` (the shipped default), a checkpoint PATH
(``.safetensors`` written by :mod:`semanticodec_rt.weights.checkpoint`),
``official:DIR[:RATE[:VOCAB]]`` (the published checkpoints in folder DIR), ``preset:NAME``
(random weights: noise, for tests and benchmarks), a loaded codec (returned as is), or a
function returning one (called only when the model is needed: :func:`decompress` checks the
stream's header first).
"""

from __future__ import annotations

import io
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Union

import numpy as np
import torch

from .audio.load import FileWaveform, load_waveform
from .audio.wav_writer import WavWriter
from .bitstream import BitstreamError, PacketKind, ScrtReader, ScrtWriter, StreamInfo, check_model, read_scrt
from .codec import SemantiCodec
from .config import PRESETS, RT_FAMILIES, SAMPLE_RATE, official_config, rt_config

#: the model used when none is named: the distilled rt-small shipped in the package (MODEL_CARD.md)
DEFAULT_MODEL = Path(__file__).resolve().parent / "assets" / "default.safetensors"
#: samples per streaming-encoder call when compressing samples held in memory (1 s)
ENCODE_BLOCK = SAMPLE_RATE

ModelSpec = Union[None, str, os.PathLike, SemantiCodec, Callable[[], SemantiCodec]]
AudioIn = Union[str, os.PathLike, torch.Tensor, np.ndarray, FileWaveform]


class ModelSpecError(ValueError):
    """A model spec that names nothing loadable (unknown preset, folder without ``official:``,
    missing default); the message is one line that says what to pass instead."""


class RandomWeightsWarning(UserWarning):
    """A ``preset:`` model has random weights: its audio is noise."""


# -- models ----------------------------------------------------------------------------------------
def load_model(spec: ModelSpec = None, *, device: str | torch.device = "cpu",
               random_weights_ok: bool = False) -> SemantiCodec:
    """The codec a spec names, in eval mode on ``device`` (see the module docstring for specs).

    Raises:
        ModelSpecError: the spec names nothing loadable; ``preset:`` without
            ``random_weights_ok``.
        CheckpointError / CheckpointMismatchError: a file that does not hold a valid model.
    """
    if isinstance(spec, SemantiCodec):
        return spec.to(device)
    if callable(spec):  # a loader, called only when the model is needed
        return load_model(spec(), device=device, random_weights_ok=random_weights_ok)
    if str(device) == "cuda" and not torch.cuda.is_available():
        raise ModelSpecError("device cuda: no CUDA device is available")
    if spec is None:
        default = DEFAULT_MODEL
        if not default.exists():
            raise ModelSpecError(f"the default model {default} is missing (a partial install?): "
                                 "reinstall the package, or pass --model PATH|official:DIR")
        spec = str(default)
    spec = str(spec)
    if spec.startswith("preset:"):
        return _load_preset(spec[len("preset:"):], device, random_weights_ok)
    if spec.startswith("official:"):
        return _load_official(spec[len("official:"):], device)
    from .weights import checkpoint

    path = Path(spec).expanduser()
    if path.is_dir():
        raise ModelSpecError(f"--model {spec} is a folder; for the published checkpoints use official:{spec}")
    return checkpoint.load(path, device)


def preset_names() -> list[str]:
    """The named presets (rt presets also take a vocab suffix, e.g. ``rt-tiny-r100-v256``)."""
    return sorted(PRESETS)


def _load_preset(name: str, device, allowed: bool) -> SemantiCodec:
    if not allowed:
        raise ModelSpecError(
            f"--model preset:{name} has random weights (noise, not audio); "
            "add --random-weights-ok if that is what you want (tests, benchmarks)"
        )
    cfg = PRESETS.get(name)
    m = re.fullmatch(r"(rt-[a-z]+)-r(\d+)-v(\d+)", name)
    if cfg is None and m and m.group(1) in RT_FAMILIES:
        try:
            cfg = rt_config(m.group(1), int(m.group(2)), int(m.group(3)))
        except ValueError as e:
            raise ModelSpecError(f"--model preset:{name}: {e}") from None
    if cfg is None:
        raise ModelSpecError(
            f"unknown preset {name!r}; known: {', '.join(preset_names())} "
            "(rt presets also take a vocab suffix, e.g. rt-tiny-r100-v256)"
        )
    print(f"semanticodec-rt: WARNING: --model preset:{name} has RANDOM WEIGHTS: its audio is noise "
          "(for tests and benchmarks only)", file=sys.stderr)
    return SemantiCodec.random(cfg, seed=0, device=device)


def _load_official(rest: str, device) -> SemantiCodec:
    from .weights.official import CheckpointMismatchError, load_official, parse_official_spec

    folder, rate, vocab = parse_official_spec(rest)
    if not folder:
        raise ModelSpecError("--model official:DIR[:RATE[:VOCAB]] needs a folder")
    try:
        official_config(rate, vocab)
    except ValueError as e:
        raise ModelSpecError(f"--model official:{rest}: {e}") from None
    try:
        return load_official(Path(folder).expanduser(), rate, vocab, device=device)
    except (FileNotFoundError, CheckpointMismatchError):
        raise  # already one clear line
    except Exception as e:  # torch.load of a damaged file fails with any of a dozen error types
        msg = str(e).splitlines()[0] if str(e) else ""
        raise CheckpointMismatchError(
            f"cannot read the official checkpoints in {folder} (damaged file?): {type(e).__name__} {msg}"
        ) from None


# -- streams ---------------------------------------------------------------------------------------
def StreamingEncoder(codec: SemantiCodec, batch_size: int = 1):
    """``push(pcm [B, n]) -> tokens [B, m, 2]``, ``flush()``, ``reset()``, ``state``: the
    codec's streaming encoder (same tokens as ``codec.encode`` for any block sizes)."""
    return codec.stream_encoder(batch_size=batch_size)


def StreamingDecoder(codec: SemantiCodec, batch_size: int = 1, steps: int | None = None,
                     cfg_scale: float | None = None, eta: float | None = None, seed: int = 0,
                     n_samples: int | None = None):
    """``push(tokens [B, m, 2]) -> pcm [B, 1, n]``, ``flush()``, ``reset()``, ``state``: the
    codec's streaming decoder (same audio as ``codec.decode`` with the same options)."""
    return codec.stream_decoder(batch_size=batch_size, steps=steps, cfg_scale=cfg_scale, eta=eta,
                                seed=seed, n_samples=n_samples)


# -- compress / decompress -------------------------------------------------------------------------
def compress(audio: AudioIn, model: ModelSpec = None, out: str | os.PathLike | BinaryIO | None = None, *,
             sample_rate: int | None = None, mono: str = "first", progress: bool = False):
    """Audio -> a ``.scrt`` stream, encoded (and written) as it goes.

    A file is read, resampled and encoded block by block (:class:`~.audio.load.FileWaveform`):
    it is read once first to check it and count its samples (the header states the totals), then
    again to encode it, so memory does not grow with its duration or sample rate (the published
    model's windowing excepted: it holds the 16 kHz signal, see ``OfficialWindowing``).

    Args:
        audio: a file path (wav, flac, ogg, ...; any rate, resampled to 16 kHz), a
            :class:`~.audio.load.FileWaveform` (its own channel policy), or samples ``[N]`` /
            ``[C, N]`` (numpy or torch; then ``sample_rate`` is required unless 16 kHz).
        model: a loaded codec or a model spec (:func:`load_model`); default the shipped model.
        out: a path or binary file to write; ``None`` returns the bytes.
        mono: several channels: keep the ``"first"`` (the reference) or average (``"mean"``).
        progress: a progress bar on stderr.
    Returns:
        the ``.scrt`` bytes when ``out`` is None, else the stream's :class:`StreamInfo`.
    """
    codec = load_model(model)
    n, blocks = _blocks(audio, sample_rate, mono)
    windowing = codec.windowing
    info = StreamInfo.for_codec(codec, n_samples=n, n_frames=windowing.frames_for_samples(n))
    target = io.BytesIO() if out is None else out
    with torch.inference_mode(), _bar(progress, n, "encode", "sample") as bar, \
            ScrtWriter(target, info) as writer:
        for ids in windowing.encode_blocks(codec, blocks, on_progress=bar.update):
            writer.write_frames(ids)
    return target.getvalue() if out is None else info


@dataclass(frozen=True)
class WavReport:
    """What :func:`decompress` wrote: ``n_samples`` at 16 kHz, ``n_clipped`` of them clipped to
    [-1, 1] (16-bit PCM only), the stream it decoded, and ``n_nonfinite`` samples the decoder
    gave as NaN or infinity (written as silence)."""

    n_samples: int
    n_clipped: int
    info: StreamInfo
    n_nonfinite: int = 0


def decompress(scrt: bytes | str | os.PathLike | BinaryIO, model: ModelSpec = None,
               out: str | os.PathLike | None = None, *, steps: int | None = None,
               cfg_scale: float | None = None, seed: int = 0, float_wav: bool = False,
               progress: bool = False):
    """A ``.scrt`` stream -> 16 kHz audio, cut to the original length.

    The header is checked before anything is decoded; the model must be the one that encoded
    the stream (:class:`~semanticodec_rt.bitstream.ModelMismatchError` names both).

    Args:
        scrt: the bytes, a path or a binary file.
        model: a loaded codec or a model spec; default the shipped model.
        out: a ``.wav`` path to write block by block (16-bit PCM, or 32-bit float with
            ``float_wav``); ``None`` returns the audio.
        steps, cfg_scale, seed: sampling options (default: the model's; seed 0).
    Returns:
        ``[1, n]`` float32 samples when ``out`` is None, else a :class:`WavReport`.
    """
    if isinstance(scrt, (str, os.PathLike)):
        path = scrt

        def src():
            return path
    else:  # bytes or a file object: held in memory, since a live-written stream is read twice
        data = bytes(scrt) if isinstance(scrt, (bytes, bytearray)) else scrt.read()

        def src():
            return io.BytesIO(data)

    with ScrtReader(src()) as reader:  # the header is checked before the model loads
        info = reader.info
        codec = load_model(model)
        check_model(info, codec.model_sha, codec.cfg.name, StreamInfo.for_codec(codec))
        if info.n_frames is not None and info.n_samples is not None:
            chunks = (pkt.ids for pkt in reader if pkt.kind is PacketKind.TOKENS)  # streamed
        else:  # written live: the totals are only in the END packet, so read it all first
            info, tokens, _ = read_scrt(src())
            chunks = iter([tokens])
        if not info.n_frames:
            raise BitstreamError("the stream holds no tokens")
        _check_length(info, codec)
        sampler = codec.sampler(steps, cfg_scale)
        windowing = codec.windowing
        with torch.inference_mode(), _bar(progress, info.n_frames // windowing.unit_frames, "decode",
                                          "unit") as bar:
            pieces = windowing.decode_chunks(codec, chunks, info.n_frames, info.n_samples, sampler,
                                             seed=seed, on_progress=bar.update)
            if out is None:
                return torch.from_numpy(np.concatenate(list(pieces)))[None]
            with WavWriter(out, float_wav) as wav:
                for pcm in pieces:
                    wav.write(pcm)
            return WavReport(wav.n_samples, wav.n_clipped, info, wav.n_nonfinite)


# -- pieces ----------------------------------------------------------------------------------------
def _check_length(info: StreamInfo, codec) -> None:
    """The sample count must be one this model codes as the stream's frame count: a header that
    says otherwise is damaged or forged, and its ``n_samples`` would size the output (2^50
    samples of padding) before the frames could disagree at the end of the file."""
    try:
        frames = codec.windowing.frames_for_samples(info.n_samples)
    except (OverflowError, ValueError):
        frames = None
    if frames != info.n_frames:
        raise BitstreamError(f"the stream says {info.n_samples} samples in {info.n_frames} frames, but this "
                             f"model codes that many samples as {frames} frames (a damaged or forged header)")


def _blocks(audio: AudioIn, sample_rate: int | None, mono: str) -> tuple[int, Iterable[torch.Tensor]]:
    """Any accepted input -> (its length at 16 kHz, its validated mono ``[1, n]`` blocks)."""
    if isinstance(audio, (str, os.PathLike)):
        audio = FileWaveform(audio, mono=mono, sample_rate=sample_rate)
    if isinstance(audio, FileWaveform):
        if audio.n_samples is None:
            audio.check()
        return audio.n_samples, audio
    wave = _waveform(audio, sample_rate, mono)
    n = wave.shape[-1]
    return n, (wave[:, i : i + ENCODE_BLOCK] for i in range(0, n, ENCODE_BLOCK))


def _waveform(audio: AudioIn, sample_rate: int | None, mono: str) -> torch.Tensor:
    """Any accepted input -> validated mono float32 ``[1, N]`` at 16 kHz."""
    if isinstance(audio, np.ndarray):
        audio = torch.from_numpy(audio)
    if isinstance(audio, torch.Tensor) and sample_rate is None:
        sample_rate = SAMPLE_RATE
    return load_waveform(audio, sample_rate=sample_rate, mono=mono)[0]


def _bar(enabled: bool, total: int, desc: str, unit: str):
    """A tqdm bar on stderr, shown after 1 s (a no-op when disabled)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=unit == "sample", file=sys.stderr,
                disable=not enabled, delay=1.0, leave=False)
