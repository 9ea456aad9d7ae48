"""``encode``, ``decode``, ``roundtrip`` and ``info``: .scrt files in and out, streamed.

Real-time presets are encoded in ~1 s blocks by the streaming encoder and their packets written as
they come; they are decoded by the streaming decoder a few units at a time straight into the WAV
file.  Outputs go to a temporary file that is renamed onto the target only when the command succeeds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..bitstream import (
    BitstreamError, PacketKind, ScrtReader, ScrtWriter, StreamInfo, check_model, packed_size, read_scrt,
)
from .app import (
    FORMATTER, PROG, CliError, add_common_options, add_decode_options, add_encode_options, progress_enabled,
    say,
)
from ..audio.wav_writer import WavWriter as _WavWriter
from .models import load_codec

SAMPLE_RATE = 16000  # the codec's rate; decoded WAVs are written at it
ENCODE_BLOCK = SAMPLE_RATE  # samples per streaming-encoder call: 1 s
DECODE_UNITS = 8  # units per streaming-decoder call: one UNet batch, as SemantiCodec.decode uses


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
        if name in ("encode", "roundtrip"):
            add_encode_options(p)
        if name in ("decode", "roundtrip"):
            add_decode_options(p)


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
    say(args, f"{dst}: {n_frames} frames for {n / SAMPLE_RATE:.2f} s, payload {info.payload_bps:g} bps, "
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
    say(args, f"{len(tokens)} token positions ({2 * len(tokens)} ids) for {n / SAMPLE_RATE:.2f} s, "
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


COMMAND_FUNCS = {"encode": cmd_encode, "decode": cmd_decode, "roundtrip": cmd_roundtrip, "info": cmd_info}


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


def _read_wave(path: Path, mono: str):
    """``[1, N]`` float32 at 16 kHz (validated: finite, non-empty)."""
    from ..audio.load import load_waveform

    return load_waveform(path, mono=mono)[0]


def _expected_frames(codec, n_samples: int) -> int | None:
    """Token positions an rt preset makes for ``n_samples``; ``None`` for official configs."""
    cfg = codec.cfg
    if cfg.stream is None:
        return None
    from ..windowing.units import units_for_samples

    return units_for_samples(cfg, n_samples) * cfg.tokens_per_unit


def _stream_encode(codec, wave, sink, args) -> None:
    """Feed ``wave`` ``[1, N]`` to the streaming encoder in 1 s blocks; ``sink([m, 2] ids)`` per block."""
    from ..windowing import StreamingEncoder

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
                                 progress=progress_enabled(args))
            wav.write(audio[0, 0])
            return wav.n_samples, wav.n_clipped
        from ..windowing import StreamingDecoder

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


def _progress(args, total: int, desc: str, unit: str):
    """A tqdm bar on stderr (a no-op when quiet or not a terminal; shown after 1 s)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=unit == "sample", file=sys.stderr,
                disable=not progress_enabled(args), delay=1.0, leave=False)


def _say_decoded(args, dst: Path, written: int, clipped: int) -> None:
    say(args, f"{dst}: {written / SAMPLE_RATE:.2f} s ({written} samples at {SAMPLE_RATE} Hz)")
    if clipped:
        print(f"{PROG}: note: {clipped} samples beyond [-1, 1] were clipped (--float keeps them)",
              file=sys.stderr)
