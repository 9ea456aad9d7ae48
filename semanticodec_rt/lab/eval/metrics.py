"""Objective metrics: each ``f(ref, deg, sr=16000) -> float`` on an aligned pair.

==========  ===========================================  ====================  ===========
name        what                                          package               better
==========  ===========================================  ====================  ===========
stoi        short-time objective intelligibility         pystoi                higher (0-1)
estoi       extended STOI                                 pystoi                higher (0-1)
pesq_wb     PESQ wide-band (P.862.2), MOS-LQO 1.04-4.64   pesq                  higher
visqol      ViSQOL v3 speech mode at 16 kHz, MOS-LQO      visqol-python (+      higher (1-5)
            (mapping pinned, see below)                   ai-edge-litert)
visqol_     ViSQOL v3 audio mode (music, effects): 48 kHz visqol-python         higher (1-5)
audio       of the 16 kHz pair upsampled, SVR mapping;
            opt-in (not in the default set)
logmel      log-mel L1 distance (own, see below)          numpy                 lower (0 = same)
si_sdr      scale-invariant SDR in dB (own)               numpy                 higher
wer         word error rate of pocketsphinx en-us ASR     pocketsphinx          lower (0 = exact)
            on ``deg`` against a transcript
==========  ===========================================  ====================  ===========

All metrics score 16 kHz mono; other rates are resampled to 16 kHz first
(:func:`semanticodec_rt.audio.resample.resample`).  ``ref`` and ``deg`` must already be
aligned (:mod:`.align`); if their lengths differ both are cut to the shorter one.

**ViSQOL mapping.**  visqol-python's speech mode maps similarity to MOS with the deep-lattice
TFLite model when ``ai-edge-litert`` is importable and with the exponential fallback otherwise;
the two give very different scales (codec2 1600: 2.13 vs 3.13).  This module pins the mapping
(:data:`VISQOL_SPEECH_MAPPING`, ``"lattice"``: ai-edge-litert installs cleanly on the project's
machines) and never falls back: without ai-edge-litert ViSQOL is NaN with a reason, so scores
from different installs stay comparable.  Reports record the mapping.

**ViSQOL audio mode.**  The mode meant for music and general sound: it works at 48 kHz only, so
both signals are upsampled from 16 kHz (:func:`semanticodec_rt.audio.resample.resample`, the same
filter for both: what is above 8 kHz is empty in each and the score compares the 0-8 kHz band),
then mapped to MOS by visqol's bundled support-vector model.  Its patches need ~0.96 s of audio,
so a pair shorter than :data:`VISQOL_AUDIO_MIN_S` is padded with the same silence at the end of
both signals (short sound effects would otherwise have no score).  It costs ~0.2 s per second of audio,
so it is opt-in (``--metrics ...,visqol_audio``; :data:`DEFAULT_METRICS` leaves it out).

**log-mel distance.**  Mean absolute difference of ``log(mel + 1e-5)`` where mel is the power
spectrogram (Hann window, n_fft 1024, hop 256, centred with zero padding) through 80 Slaney-style
mel filters (0-8 kHz, area-normalised) -- the definition of ``librosa.feature.melspectrogram``
with its defaults, so values compare with the notes' table.  Identical signals give 0.

**SI-SDR.**  Mean removed, ``alpha = <deg, ref> / <ref, ref>``, ``10 log10(|alpha ref|^2 /
|deg - alpha ref|^2)`` with 1e-12 guards (identity gives ~150 dB).  Meaningless for parametric
codecs (codec2 scores -25 to -40 dB).

**WER.**  pocketsphinx 5 with its bundled en-us model (wide-band acoustic model, 3-gram LM);
text is lower-cased and stripped of punctuation before a word-level Levenshtein distance,
divided by the number of transcript words.  Without a transcript WER is NaN ("n/a").

A metric whose package is missing returns NaN and records why (:func:`unavailable`); a metric
that cannot score a particular pair (e.g. PESQ finds no utterance in music) returns NaN and
leaves the reason in :func:`last_failures`.  :func:`score` collects both per call.
"""

from __future__ import annotations

import importlib
import math
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ...audio.mel import mel_filterbank
from ...config import SAMPLE_RATE

#: ViSQOL speech-mode similarity -> MOS mapping: "lattice" (deep-lattice TFLite model, the C++
#: default; needs ai-edge-litert) or "exponential" (visqol's fallback).  Pinned; see module doc.
VISQOL_SPEECH_MAPPING = "lattice"

#: log-mel distance parameters
LOGMEL_N_FFT = 1024
LOGMEL_HOP = 256
LOGMEL_N_MELS = 80
LOGMEL_EPS = 1e-5

_SI_SDR_EPS = 1e-12


@dataclass(frozen=True)
class MetricInfo:
    name: str
    label: str
    higher_is_better: bool
    package: Optional[str]  # the PyPI package it needs (None: numpy only)
    unit: str = ""


INFO = {
    m.name: m
    for m in (
        MetricInfo("stoi", "STOI", True, "pystoi"),
        MetricInfo("estoi", "ESTOI", True, "pystoi"),
        MetricInfo("pesq_wb", "PESQ-WB", True, "pesq"),
        MetricInfo("visqol", "ViSQOL", True, "visqol-python"),
        MetricInfo("visqol_audio", "ViSQOL-audio", True, "visqol-python"),
        MetricInfo("logmel", "log-mel L1", False, None),
        MetricInfo("si_sdr", "SI-SDR", True, None, "dB"),
        MetricInfo("wer", "WER", False, "pocketsphinx"),
    )
}

_unavailable: dict[str, str] = {}  # metric -> why its package cannot be used (sticky)
_failures: dict[str, str] = {}  # metric -> why the last call returned NaN


def unavailable() -> dict[str, str]:
    """Metrics that cannot run in this install, with the reason (found on first use)."""
    return dict(_unavailable)


def last_failures() -> dict[str, str]:
    """Why metrics returned NaN since :func:`clear_failures` (metric -> reason)."""
    return dict(_failures)


def clear_failures() -> None:
    _failures.clear()


def _fail(name: str, reason: str) -> float:
    _failures[name] = reason
    return math.nan


def _import(metric: str, module: str, hint: str):
    """``module`` or ``None`` (recording why ``metric`` is unavailable)."""
    if metric in _unavailable:
        return None
    try:
        return importlib.import_module(module)
    except Exception as e:  # ImportError, or a broken binary wheel
        _unavailable[metric] = f"{hint} is not usable ({type(e).__name__}: {e})"
        return None


def _mono16k(x, sr: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2 and 1 in x.shape:
        x = x.reshape(-1)
    if x.ndim != 1:
        raise ValueError(f"expected mono audio [N], got shape {list(x.shape)}")
    if sr != SAMPLE_RATE:
        import torch

        from ...audio.resample import resample

        x = resample(torch.from_numpy(x), int(sr), SAMPLE_RATE).numpy()
    return x


def _pair(ref, deg, sr: int) -> tuple[np.ndarray, np.ndarray]:
    r, d = _mono16k(ref, sr), _mono16k(deg, sr)
    n = min(len(r), len(d))
    if n == 0:
        raise ValueError("empty audio")
    r, d = r[:n], d[:n]
    if not (np.isfinite(r).all() and np.isfinite(d).all()):
        raise ValueError("audio has non-finite samples")
    return r, d


# -- intelligibility ---------------------------------------------------------------------------
def _stoi(name: str, ref, deg, sr: int, extended: bool) -> float:
    mod = _import(name, "pystoi", "pystoi (pip install pystoi)")
    if mod is None:
        return math.nan
    r, d = _pair(ref, deg, sr)
    try:
        import warnings

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = float(mod.stoi(r, d, SAMPLE_RATE, extended=extended))
        if any("Not enough STFT frames" in str(w.message) for w in caught):
            return _fail(name, "too short after silence removal (pystoi needs 30 frames of 25.6 ms)")
        return value
    except Exception as e:
        return _fail(name, f"{type(e).__name__}: {e}")


def stoi(ref, deg, sr: int = SAMPLE_RATE) -> float:
    """STOI (Taal et al. 2011) via pystoi; 0-1, higher is better."""
    return _stoi("stoi", ref, deg, sr, False)


def estoi(ref, deg, sr: int = SAMPLE_RATE) -> float:
    """Extended STOI (Jensen & Taal 2016) via pystoi; 0-1, higher is better."""
    return _stoi("estoi", ref, deg, sr, True)


# -- quality -----------------------------------------------------------------------------------
def pesq_wb(ref, deg, sr: int = SAMPLE_RATE) -> float:
    """PESQ wide-band (ITU-T P.862.2) MOS-LQO via the ``pesq`` package; higher is better."""
    mod = _import("pesq_wb", "pesq", "pesq (pip install pesq)")
    if mod is None:
        return math.nan
    r, d = _pair(ref, deg, sr)
    try:
        return float(mod.pesq(SAMPLE_RATE, r.astype(np.float32), d.astype(np.float32), "wb"))
    except Exception as e:  # NoUtterancesError on music/silence, BufferTooShortError, ...
        msg = str(e).strip() or type(e).__name__
        return _fail("pesq_wb", f"{type(e).__name__}: {msg}")


_visqol_api = None


def _visqol():
    global _visqol_api
    if _visqol_api is not None:
        return _visqol_api
    mod = _import("visqol", "visqol", "visqol-python (pip install visqol-python libsvm-official)")
    if mod is None:
        return None
    if VISQOL_SPEECH_MAPPING == "lattice":
        try:
            importlib.import_module("ai_edge_litert.interpreter")
        except Exception as e:
            _unavailable["visqol"] = (
                "the pinned lattice mapping needs ai-edge-litert (pip install ai-edge-litert); "
                f"not falling back to the exponential mapping ({type(e).__name__})"
            )
            return None
    import logging

    logging.getLogger("visqol").setLevel(logging.ERROR)
    api = mod.VisqolApi()
    with _native_stderr_silenced():  # TFLite prints "INFO: Created ... XNNPACK delegate" on fd 2
        api.create(mode="speech", use_lattice_model=VISQOL_SPEECH_MAPPING == "lattice")
    _visqol_api = api
    return api


@contextmanager
def _native_stderr_silenced():
    """Send file descriptor 2 to /dev/null for the block (native libraries' chatter)."""
    import os
    import sys

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters)
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def visqol_speech(ref, deg, sr: int = SAMPLE_RATE) -> float:
    """ViSQOL v3 speech mode at 16 kHz (MOS-LQO 1-5, mapping :data:`VISQOL_SPEECH_MAPPING`)."""
    api = _visqol()
    if api is None:
        return math.nan
    r, d = _pair(ref, deg, sr)
    try:
        return float(api.measure_from_arrays(r, d, SAMPLE_RATE).moslqo)
    except Exception as e:
        return _fail("visqol", f"{type(e).__name__}: {e}")


_visqol_audio_api = None
#: the only rate visqol's audio mode accepts
VISQOL_AUDIO_RATE = 48000
#: shorter pairs are padded with silence to this length (the audio mode's shortest input)
VISQOL_AUDIO_MIN_S = 1.0


def _visqol_audio():
    global _visqol_audio_api
    if _visqol_audio_api is None:
        mod = _import("visqol_audio", "visqol", "visqol-python (pip install visqol-python libsvm-official)")
        if mod is None:
            return None
        import logging

        logging.getLogger("visqol").setLevel(logging.ERROR)
        api = mod.VisqolApi()
        api.create(mode="audio")
        _visqol_audio_api = api
    return _visqol_audio_api


def visqol_audio(ref, deg, sr: int = SAMPLE_RATE) -> float:
    """ViSQOL v3 audio mode (MOS-LQO 1-5) of the 16 kHz pair upsampled to 48 kHz."""
    api = _visqol_audio()
    if api is None:
        return math.nan
    import torch

    from ...audio.resample import resample

    r, d = _pair(ref, deg, sr)
    short = int(VISQOL_AUDIO_MIN_S * SAMPLE_RATE) - len(r)
    if short > 0:
        r, d = np.pad(r, (0, short)), np.pad(d, (0, short))
    up = resample(torch.from_numpy(np.stack([r, d])), SAMPLE_RATE, VISQOL_AUDIO_RATE).numpy()
    try:
        return float(api.measure_from_arrays(up[0].astype(np.float64), up[1].astype(np.float64),
                                             VISQOL_AUDIO_RATE).moslqo)
    except Exception as e:
        return _fail("visqol_audio", f"{type(e).__name__}: {e}")


# -- spectral / waveform distances (own implementations; mel filters: semanticodec_rt.audio.mel) ---
def log_mel(x, sr: int = SAMPLE_RATE) -> np.ndarray:
    """``[n_mels, frames]`` of ``log(mel power + 1e-5)`` (parameters in the module doc)."""
    x = _mono16k(x, sr)
    n_fft, hop = LOGMEL_N_FFT, LOGMEL_HOP
    pad = n_fft // 2
    xp = np.pad(x, (pad, pad))
    if len(xp) < n_fft:
        xp = np.pad(xp, (0, n_fft - len(xp)))
    frames = np.lib.stride_tricks.sliding_window_view(xp, n_fft)[::hop]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    power = np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2  # [frames, bins]
    mel = mel_filterbank(SAMPLE_RATE, n_fft, LOGMEL_N_MELS) @ power.T
    return np.log(mel + LOGMEL_EPS)


def logmel_distance(ref, deg, sr: int = SAMPLE_RATE) -> float:
    """Mean absolute log-mel difference (0 for identical audio; lower is better)."""
    r, d = _pair(ref, deg, sr)
    return float(np.mean(np.abs(log_mel(r) - log_mel(d))))


def si_sdr(ref, deg, sr: int = SAMPLE_RATE) -> float:
    """Scale-invariant signal-to-distortion ratio in dB (higher is better)."""
    r, d = _pair(ref, deg, sr)
    r = r - r.mean()
    d = d - d.mean()
    alpha = (d @ r + _SI_SDR_EPS) / (r @ r + _SI_SDR_EPS)
    target = alpha * r
    err = d - target
    return float(10 * np.log10((target @ target + _SI_SDR_EPS) / (err @ err + _SI_SDR_EPS)))


# -- ASR ---------------------------------------------------------------------------------------
_decoder = None


def transcribe(x, sr: int = SAMPLE_RATE) -> Optional[str]:
    """pocketsphinx en-us transcript of ``x`` (``None`` if pocketsphinx is not usable)."""
    global _decoder
    mod = _import("wer", "pocketsphinx", "pocketsphinx (pip install pocketsphinx)")
    if mod is None:
        return None
    if _decoder is None:
        _decoder = mod.Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")
    pcm = (np.clip(_mono16k(x, sr), -1.0, 1.0) * 32767.0).astype(np.int16)
    _decoder.start_utt()
    _decoder.process_raw(pcm.tobytes(), full_utt=True)
    _decoder.end_utt()
    hyp = _decoder.hyp()
    return hyp.hypstr if hyp is not None else ""


def normalize_text(text: str) -> list[str]:
    """Lower-case words without punctuation (apostrophes inside words kept)."""
    text = re.sub(r"[^a-z0-9' ]+", " ", text.lower())
    return [w.strip("'") for w in text.split() if w.strip("'")]


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words, after :func:`normalize_text`."""
    ref, hyp = normalize_text(reference), normalize_text(hypothesis)
    if not ref:
        raise ValueError("the reference transcript has no words")
    prev = list(range(len(hyp) + 1))
    for i, rw in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, hw in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (rw != hw))
        prev = cur
    return prev[-1] / len(ref)


def wer(ref, deg, sr: int = SAMPLE_RATE, transcript: Optional[str] = None) -> float:
    """WER of pocketsphinx's transcript of ``deg`` against ``transcript`` (NaN without one).

    ``ref`` is not used (the transcript is the reference); it keeps the common signature.
    """
    if not transcript or not normalize_text(transcript):
        return _fail("wer", "n/a: no transcript")
    hyp = transcribe(deg, sr)
    if hyp is None:
        return math.nan
    return word_error_rate(transcript, hyp)


#: name -> function (ref, deg, sr) -> float, in report order
METRICS: dict[str, Callable[..., float]] = {
    "stoi": stoi,
    "estoi": estoi,
    "pesq_wb": pesq_wb,
    "visqol": visqol_speech,
    "visqol_audio": visqol_audio,
    "logmel": logmel_distance,
    "si_sdr": si_sdr,
    "wer": wer,
}


#: what an eval scores unless told otherwise: every metric but the slow opt-in ones
DEFAULT_METRICS = tuple(n for n in METRICS if n != "visqol_audio")


def parse_metric_names(text: Optional[str]) -> list[str]:
    """``"stoi,pesq_wb"`` -> names in report order (``None``: :data:`DEFAULT_METRICS`;
    ``"all"``: every metric, the opt-in ones included)."""
    if text is None:
        return list(DEFAULT_METRICS)
    if text.strip() == "all":
        return list(METRICS)
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in METRICS]
    if bad or not names:
        raise ValueError(f"unknown metric(s) {bad or text!r}; known: {', '.join(METRICS)}")
    return [n for n in METRICS if n in names]


def score(ref, deg, sr: int = SAMPLE_RATE, names: Optional[list[str]] = None,
          transcript: Optional[str] = None) -> tuple[dict[str, float], dict[str, str]]:
    """The default (or ``names``) metrics of one aligned pair -> (values, reasons for the NaN ones)."""
    names = list(DEFAULT_METRICS) if names is None else names
    clear_failures()
    values = {}
    for n in names:
        try:
            if n == "wer":
                values[n] = wer(ref, deg, sr, transcript=transcript)
            else:
                values[n] = METRICS[n](ref, deg, sr)
        except ValueError as e:  # empty or non-finite audio
            values[n] = _fail(n, f"{type(e).__name__}: {e}")
    notes = {n: _unavailable.get(n) or _failures.get(n, "NaN")
             for n in names if not math.isfinite(values[n])}
    return values, notes


def versions() -> dict[str, str]:
    """Installed versions of the metric packages (``"missing"`` when absent)."""
    from importlib import metadata

    out = {}
    for pkg in ("pystoi", "pesq", "visqol-python", "ai-edge-litert", "pocketsphinx"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "missing"
    return out


def settings() -> dict:
    """What a report needs to make its scores comparable across installs."""
    return {
        "sample_rate": SAMPLE_RATE,
        "visqol": {"mode": "speech", "mapping": VISQOL_SPEECH_MAPPING, "sample_rate": SAMPLE_RATE},
        "visqol_audio": {"mode": "audio", "mapping": "svr (visqol's bundled model)",
                         "sample_rate": VISQOL_AUDIO_RATE, "upsampled_from": SAMPLE_RATE,
                         "short_pairs": f"padded with silence to {VISQOL_AUDIO_MIN_S:g} s"},
        "logmel": {"n_fft": LOGMEL_N_FFT, "hop": LOGMEL_HOP, "n_mels": LOGMEL_N_MELS, "fmin": 0,
                   "fmax": SAMPLE_RATE // 2, "mel_scale": "slaney", "norm": "slaney",
                   "log_eps": LOGMEL_EPS, "distance": "mean |log-mel ref - log-mel deg|"},
        "si_sdr": {"mean_removed": True, "eps": _SI_SDR_EPS},
        "pesq": {"mode": "wb", "sample_rate": SAMPLE_RATE},
        "wer": {"asr": "pocketsphinx en-us (bundled model)", "normalize": "lower-case, no punctuation"},
        "packages": versions(),
        "unavailable": unavailable(),
    }
