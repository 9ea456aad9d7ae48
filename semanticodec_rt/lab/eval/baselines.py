"""Baseline codecs run as programs: codec2 (c2enc/c2dec) and Opus (opusenc/opusdec).

Spec strings: ``codec2:MODE`` with MODE one of 3200, 2400, 1600, 1400, 1300, 1200, 700C,
``opus:KBPS`` with KBPS a number from 6 to 256 (libopus does not go lower), and ``nolace:KBPS``:
Opus 1.5.2 wideband speech at KBPS, decoded with the NoLACE enhancement (decoder complexity 7),
by ``opus_demo`` of the opus 1.5.2 source build (:mod:`semanticodec_rt.lab.data.opus_source`,
fetched and built on first use; opus-tools 0.2 cannot set the decoder complexity).

:func:`run_baseline` takes 16 kHz mono float audio and returns the decoded 16 kHz float audio and
the **actual** bitrate, ``bitstream file bytes * 8 / duration`` -- container overhead included
(Ogg adds ~0.5-0.8 kbit/s at 6 kbit/s; headerless codec2 pads each frame to whole bytes, so 1300
codes at 1400 bit/s and 700C at 800 bit/s).  The commands are those of
``shared/notes/data_metrics_baselines.md`` section 5::

    sox -D in16.wav -r 8000 -t raw -e signed -b 16 -c 1 in8k.raw       # codec2 is 8 kHz; -D: no
                                                                        # random dither (repeatable)
    c2enc MODE in8k.raw out.bit ; c2dec MODE out.bit dec8k.raw
    sox -D -t raw -r 8000 -e signed -b 16 -c 1 dec8k.raw -r 16000 dec.wav
    opusenc --bitrate KBPS in16.wav out.opus ; opusdec --rate 16000 out.opus dec.wav
    opus_demo -e voip 16000 1 BPS -bandwidth WB in16.raw out.bit          # nolace
    opus_demo -d 16000 1 -dec_complexity 7 out.bit dec16.raw

For ``nolace`` the bitrate counts the Opus packets (``opus_demo``'s file adds 8 bytes of its own
per packet, left out); an Ogg stream of the same packets adds what ``opus:`` shows.

A missing program raises :class:`~semanticodec_rt.lab.eval.EvalError` naming the Debian package.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...config import SAMPLE_RATE
from . import EvalError

CODEC2_MODES = ("3200", "2400", "1600", "1400", "1300", "1200", "700C")
OPUS_MIN_KBPS, OPUS_MAX_KBPS = 6.0, 256.0
_PACKAGES = {"c2enc": "codec2", "c2dec": "codec2", "sox": "sox", "opusenc": "opus-tools",
             "opusdec": "opus-tools"}
_TIMEOUT_S = 600
OPUS_LOOKAHEAD = 104  # samples at 16 kHz: Opus's 6.5 ms encoder look-ahead (pre-skip 312 at 48 kHz)


@dataclass(frozen=True)
class Baseline:
    """A parsed spec: ``kind`` "codec2" or "opus", ``setting`` the mode or kbps text."""

    kind: str
    setting: str

    @property
    def name(self) -> str:
        """The canonical spec string (``codec2:700C``, ``opus:6``)."""
        return f"{self.kind}:{self.setting}"

    @property
    def nominal_kbps(self) -> float:
        if self.kind == "codec2":
            return {"700C": 0.7}.get(self.setting, int(self.setting.rstrip("C") or 0) / 1000)
        return float(self.setting)

    @property
    def programs(self) -> tuple[str, ...]:
        """System programs it runs (``nolace`` runs the opus source build instead)."""
        return {"codec2": ("sox", "c2enc", "c2dec"), "opus": ("opusenc", "opusdec")}.get(self.kind, ())


def parse_spec(spec: str) -> Baseline:
    """``"codec2:1400"`` / ``"codec2:700c"`` / ``"opus:6"`` -> :class:`Baseline`."""
    kind, sep, setting = spec.strip().partition(":")
    kind = kind.lower()
    if not sep or not setting:
        raise EvalError(f"baseline {spec!r}: expected codec2:MODE or opus:KBPS")
    if kind == "codec2":
        mode = setting.upper()
        if mode not in CODEC2_MODES:
            raise EvalError(f"baseline {spec!r}: codec2 modes are {', '.join(CODEC2_MODES)}")
        return Baseline("codec2", mode)
    if kind in ("opus", "nolace"):
        try:
            kbps = float(setting)
        except ValueError:
            raise EvalError(f"baseline {spec!r}: {kind} needs a bitrate in kbit/s, e.g. {kind}:6") from None
        if not OPUS_MIN_KBPS <= kbps <= OPUS_MAX_KBPS:
            raise EvalError(f"baseline {spec!r}: opus bitrates are {OPUS_MIN_KBPS:g} to {OPUS_MAX_KBPS:g} kbit/s")
        return Baseline(kind, f"{kbps:g}")
    raise EvalError(f"baseline {spec!r}: unknown codec {kind!r} (known: codec2, opus, nolace)")


def parse_specs(text: str | None) -> list[Baseline]:
    """A comma-separated list (``None``, ``""`` or ``"none"``: no baselines); duplicates dropped."""
    if text is None or text.strip().lower() in ("", "none"):
        return []
    out: list[Baseline] = []
    for part in text.split(","):
        if part.strip():
            b = parse_spec(part)
            if b not in out:
                out.append(b)
    return out


def check_programs(baseline: Baseline) -> None:
    """Raise :class:`EvalError` (code 1) if a program the baseline runs is not installed."""
    for prog in baseline.programs:
        if shutil.which(prog) is None:
            raise EvalError(
                f"baseline {baseline.name}: program '{prog}' not found "
                f"(apt-get install {_PACKAGES[prog]})", code=1)


def _run(cmd: list[str], baseline: Baseline) -> None:
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                           timeout=_TIMEOUT_S)
    except FileNotFoundError:
        check_programs(baseline)
        raise
    if r.returncode != 0:
        err = " ".join(r.stderr.decode(errors="replace").split())[-300:]
        raise EvalError(f"baseline {baseline.name}: '{' '.join(cmd[:2])} ...' failed "
                        f"(exit {r.returncode}): {err}", code=1)


def _write_wav(path: Path, x: np.ndarray, sr: int) -> None:
    import soundfile as sf

    sf.write(str(path), np.clip(x, -1.0, 1.0).astype(np.float32), sr, subtype="PCM_16")


def _read_wav(path: Path, expect_sr: int) -> np.ndarray:
    import soundfile as sf

    y, sr = sf.read(str(path), dtype="float32", always_2d=True)
    if sr != expect_sr:
        raise EvalError(f"decoded {path.name} is {sr} Hz, expected {expect_sr} Hz", code=1)
    return y[:, 0]


def run_baseline(spec: str | Baseline, audio, sr: int = SAMPLE_RATE, workdir: str | Path | None = None
                 ) -> tuple[np.ndarray, float]:
    """Code ``audio`` (mono float at ``sr``, resampled to 16 kHz) -> (16 kHz float32 decode, kbps).

    ``kbps`` = bitstream file bytes * 8 / input duration / 1000.  Intermediate files go to a
    temporary folder (or ``workdir``, kept).
    """
    b = spec if isinstance(spec, Baseline) else parse_spec(spec)
    check_programs(b)
    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    if sr != SAMPLE_RATE:
        import torch

        from ...audio.resample import resample

        x = resample(torch.from_numpy(x), int(sr), SAMPLE_RATE).numpy()
    if len(x) == 0:
        raise EvalError(f"baseline {b.name}: empty audio")
    duration = len(x) / SAMPLE_RATE
    with tempfile.TemporaryDirectory(prefix="scrt-eval-") as tmp:
        d = Path(workdir) if workdir is not None else Path(tmp)
        d.mkdir(parents=True, exist_ok=True)
        src = d / "in16.wav"
        _write_wav(src, x, SAMPLE_RATE)
        if b.kind == "codec2":
            raw8, bits, dec8, dec = d / "in8k.raw", d / "out.bit", d / "dec8k.raw", d / "dec.wav"
            _run(["sox", "-D", str(src), "-r", "8000", "-t", "raw", "-e", "signed", "-b", "16", "-c", "1", str(raw8)], b)
            _run(["c2enc", b.setting, str(raw8), str(bits)], b)
            _run(["c2dec", b.setting, str(bits), str(dec8)], b)
            _run(["sox", "-D", "-t", "raw", "-r", "8000", "-e", "signed", "-b", "16", "-c", "1", str(dec8),
                  "-r", "16000", str(dec)], b)
        elif b.kind == "opus":
            bits, dec = d / "out.opus", d / "dec.wav"
            _run(["opusenc", "--quiet", "--bitrate", b.setting, str(src), str(bits)], b)
            _run(["opusdec", "--quiet", "--rate", "16000", str(bits), str(dec)], b)
        else:
            return _run_nolace(b, x, d)
        kbps = bits.stat().st_size * 8 / duration / 1000
        y = _read_wav(dec, SAMPLE_RATE)
    return y, kbps


def _run_nolace(b: Baseline, x: np.ndarray, d: Path) -> tuple[np.ndarray, float]:
    from ..data import DataError
    from ..data import opus_source

    try:
        demo = str(opus_source.tools()["opus_demo"])
    except DataError as e:
        raise EvalError(f"baseline {b.name}: the opus 1.5.2 build is unavailable: {e}", code=1) from None
    raw, bits, dec = d / "in16.raw", d / "out.bit", d / "dec16.raw"
    np.round(np.clip(x, -1.0, 1.0) * 32767).astype("<i2").tofile(raw)
    bps = str(int(round(float(b.setting) * 1000)))
    _run([demo, "-e", "voip", "16000", "1", bps, "-bandwidth", "WB", str(raw), str(bits)], b)
    _run([demo, "-d", "16000", "1", "-dec_complexity", "7", str(bits), str(dec)], b)
    # opus_demo's file: per packet a 4-byte length, the 4-byte encoder range state, the packet
    data, payload, pos = bits.read_bytes(), 0, 0
    while pos + 8 <= len(data):
        n = int.from_bytes(data[pos : pos + 4], "big")
        payload += n
        pos += 8 + n
    y = np.fromfile(dec, dtype="<i2").astype(np.float32) / 32768
    # opus_demo keeps the codec's 6.5 ms look-ahead that opusdec strips (its pre-skip)
    y = np.concatenate([y[OPUS_LOOKAHEAD:], np.zeros(OPUS_LOOKAHEAD, np.float32)])
    return y[: len(x)], payload * 8 / (len(x) / SAMPLE_RATE) / 1000
