"""Decode any audio file of the corpus, make it 16 kHz mono, and write it as 16-bit FLAC.

* wav / ogg / oga / opus / flac / mp3 and headerless ``.gsm`` are read by libsndfile
  (python-soundfile; libsndfile >= 1.1 for mp3/opus);
* ``.g722`` (raw G.722, 16 kHz) and ``.wv`` (WavPack) need ffmpeg, and ``.gsm`` falls back to
  it.  ffmpeg is looked for in ``$SCRT_FFMPEG``, on ``PATH``, then in the ``imageio_ffmpeg``
  Python package; without one these files raise :class:`NeedsFfmpeg` and the builder skips
  them with a counted warning.  ffmpeg only decodes (to float WAV on a pipe, native rate and
  channels); downmix and resampling are ours for every file.

Then: the mean of the channels; :func:`semanticodec_rt.audio.resample.resample` to 16 kHz
(the torchaudio-compatible windowed sinc); clips shorter than 0.25 s or with a peak below 1e-4
are dropped; a peak above 0.999 is scaled down to 0.999; samples are rounded to int16.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import soundfile as sf

TARGET_SR = 16000
MIN_SECONDS = 0.25
MIN_SAMPLES = int(MIN_SECONDS * TARGET_SR)
SILENT_PEAK = 1e-4
MAX_PEAK = 0.999
#: formats only ffmpeg reads: extension -> ffmpeg input format (None: probe the file)
FFMPEG_ONLY = {".g722": "g722", ".wv": None}
#: formats libsndfile reads, with ffmpeg as the fallback
FFMPEG_FALLBACK = {".gsm": "gsm"}


class DecodeError(Exception):
    """The file could not be decoded (corrupt, unsupported, empty, non-finite)."""


class NeedsFfmpeg(DecodeError):
    """The file needs ffmpeg, which was not found."""


def find_ffmpeg() -> Optional[str]:
    """The ffmpeg executable: ``$SCRT_FFMPEG``, ``ffmpeg`` on PATH, or imageio_ffmpeg's; or None."""
    env = os.environ.get("SCRT_FFMPEG")
    if env:
        return env if os.access(env, os.X_OK) else None
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg  # optional: a pip-installable static ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:
        return None


def needs_ffmpeg(path: str | os.PathLike) -> bool:
    """True for files only ffmpeg can decode (``.g722``, ``.wv``)."""
    return Path(path).suffix.lower() in FFMPEG_ONLY


# -- decoding ---------------------------------------------------------------------------------------
def decode(path: str | os.PathLike, ffmpeg: Optional[str] = None) -> tuple[np.ndarray, int]:
    """``(samples [N, C] float32, sample_rate)`` of the file at ``path``."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext in FFMPEG_ONLY:
        if ffmpeg is None:
            raise NeedsFfmpeg(f"{path}: {ext} needs ffmpeg, which is not installed")
        return _decode_ffmpeg(path, ffmpeg, FFMPEG_ONLY[ext])
    try:
        x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile's errors are of several types
        if ext in FFMPEG_FALLBACK and ffmpeg is not None:
            return _decode_ffmpeg(path, ffmpeg, FFMPEG_FALLBACK[ext])
        raise DecodeError(f"{path}: {e}") from None
    return x, int(sr)


def _decode_ffmpeg(path: Path, ffmpeg: str, fmt: Optional[str]) -> tuple[np.ndarray, int]:
    cmd = [ffmpeg, "-nostdin", "-hide_banner", "-v", "error"]
    if fmt:
        cmd += ["-f", fmt]
    cmd += ["-i", str(path), "-map", "0:a:0", "-f", "wav", "-c:a", "pcm_f32le", "-"]
    try:
        proc = subprocess.run(cmd, capture_output=True, check=False)
    except OSError as e:
        raise DecodeError(f"{path}: cannot run ffmpeg ({e})") from None
    if proc.returncode != 0:
        msg = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise DecodeError(f"{path}: ffmpeg failed: {msg[-1] if msg else proc.returncode}")
    return parse_float_wav(proc.stdout, str(path))


def parse_float_wav(data: bytes, name: str = "<pipe>") -> tuple[np.ndarray, int]:
    """Samples and rate of a 32-bit float WAV as ffmpeg writes it to a pipe.

    The RIFF and data sizes of a piped WAV are placeholders, so the data chunk is taken to run
    to the end of the bytes (whole frames only).
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise DecodeError(f"{name}: ffmpeg did not return a WAV stream")
    pos, channels, rate = 12, None, None
    while pos + 8 <= len(data):
        tag, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        body = pos + 8
        if tag == b"fmt ":
            fmt_tag, channels, rate = struct.unpack("<HHI", data[body:body + 8])
            bits = struct.unpack("<H", data[body + 14:body + 16])[0]
            if fmt_tag not in (3, 0xFFFE) or bits != 32:
                raise DecodeError(f"{name}: unexpected WAV format {fmt_tag}/{bits} bits from ffmpeg")
        elif tag == b"data":
            if channels is None or not channels:
                raise DecodeError(f"{name}: WAV data before its format")
            raw = data[body:]
            usable = len(raw) // (4 * channels) * 4 * channels
            x = np.frombuffer(raw[:usable], dtype="<f4").reshape(-1, channels)
            return x.astype(np.float32), int(rate)
        pos = body + size + (size & 1)
    raise DecodeError(f"{name}: no audio data from ffmpeg")


# -- 16 kHz mono --------------------------------------------------------------------------------------
def to_mono_16k(x: np.ndarray, sr: int) -> np.ndarray:
    """The mean of the channels of ``x`` ``[N, C]``, resampled from ``sr`` to 16 kHz (float32)."""
    import torch

    from ...audio.resample import resample

    mono = np.ascontiguousarray(x.mean(axis=1, dtype=np.float64), dtype=np.float32)
    if sr == TARGET_SR or len(mono) == 0:
        return mono
    with torch.no_grad():
        y = resample(torch.from_numpy(mono), sr, TARGET_SR)
    return y.numpy().astype(np.float32, copy=False)


@dataclass
class Conditioned:
    """The outcome of :func:`condition`: ``status`` is ``ok``, ``short`` or ``silent``."""

    status: str
    samples: Optional[np.ndarray]
    peak: float
    scaled: bool = False


def condition(y: np.ndarray) -> Conditioned:
    """Drop short (< 0.25 s) or silent (peak < 1e-4) audio; scale a peak > 0.999 down to 0.999."""
    if not np.all(np.isfinite(y)):
        raise DecodeError("non-finite samples")
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    if len(y) < MIN_SAMPLES:
        return Conditioned("short", None, peak)
    if peak < SILENT_PEAK:
        return Conditioned("silent", None, peak)
    if peak > MAX_PEAK:
        return Conditioned("ok", (y * (MAX_PEAK / peak)).astype(np.float32), peak, True)
    return Conditioned("ok", y, peak)


def to_int16(y: np.ndarray) -> np.ndarray:
    """Float in [-1, 1] -> int16 by rounding ``y * 32767`` (clipped, for safety)."""
    return np.clip(np.rint(y * 32767.0), -32768, 32767).astype(np.int16)


def write_flac(path: str | os.PathLike, y: np.ndarray) -> None:
    """Write 16 kHz mono 16-bit FLAC atomically (a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        sf.write(str(tmp), to_int16(y), TARGET_SR, format="FLAC", subtype="PCM_16")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# -- one file -----------------------------------------------------------------------------------------
@dataclass
class Result:
    """What converting one file gave.  ``status``: ``ok`` (written), ``short``/``silent``
    (dropped), ``no_ffmpeg`` (skipped), ``error``."""

    status: str
    orig_sr: int = 0
    n_samples: int = 0
    message: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def convert_file(src: str | os.PathLike, dst: str | os.PathLike, ffmpeg: Optional[str] = None) -> Result:
    """Convert ``src`` to a 16 kHz mono FLAC at ``dst`` (nothing is written unless ``ok``)."""
    try:
        x, sr = decode(src, ffmpeg)
        if x.size == 0:
            return Result("short", sr, 0)
        y = to_mono_16k(x, sr)
        c = condition(y)
    except NeedsFfmpeg as e:
        return Result("no_ffmpeg", message=str(e))
    except DecodeError as e:
        return Result("error", message=str(e))
    if c.status != "ok":
        return Result(c.status, sr, len(y))
    write_flac(dst, c.samples)
    return Result("ok", sr, len(c.samples))


def worker_init() -> None:
    """Pool initializer: one torch thread per worker (the pool is the parallelism); Ctrl-C is
    left to the parent, which terminates the pool."""
    import signal

    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)


def convert_task(task: tuple[str, str, str, Optional[str]]) -> tuple[str, dict]:
    """Pool entry point: ``(key, src, dst, ffmpeg)`` -> ``(key, Result as dict)``."""
    key, src, dst, ffmpeg = task
    try:
        result = convert_file(src, dst, ffmpeg)
    except OSError:  # a full disk or a permission problem: stop the build
        raise
    except Exception as e:  # anything else is counted against this one file
        result = Result("error", message=f"{src}: {type(e).__name__}: {e}")
    return key, result.to_dict()
