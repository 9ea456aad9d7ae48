"""Kaldi-compatible log-mel filterbank of the semantic encoder (no torchaudio).

The reference calls ``torchaudio.compliance.kaldi.fbank`` (htk_compat, 16 kHz, 128 bins,
hanning window, dither 0, energy off, everything else at its default) on the globally
mean-removed waveform, pads/cuts the result to a target length and normalises it with the
AudioSet statistics of the published model.  This module re-implements that chain (errata E6):

1. subtract the global mean of the (padded) waveform;
2. cut frames of 400 samples (25 ms) every 160 samples (10 ms), ``snip_edges``: only frames
   that fit entirely, ``1 + (N - 400) // 160`` of them (none if ``N < 400``);
3. subtract each frame's own mean (Kaldi ``remove_dc_offset``);
4. pre-emphasis ``x[n] - 0.97 x[n-1]``, with ``x[-1] := x[0]``;
5. multiply by the *symmetric* Hann window ``0.5 - 0.5 cos(2 pi n / 399)``;
6. zero-pad to 512 and take the power spectrum ``|rfft|**2`` (257 bins);
7. apply 128 triangular filters, linear in HTK mel ``1127 ln(1 + f/700)`` between 20 Hz and
   8000 Hz, evaluated at ``k * 31.25`` Hz, ``k = 0..255``; the Nyquist bin gets weight 0;
8. ``ln(max(energy, float32 eps))``.

Then the reference pads with zero rows at the end (or cuts) to ``target_length`` frames and
normalises ``(x - (-4.2677393)) / (4.5689974 * 2)``.

Float quirks of the reference, reproduced here:

* Everything runs in float32 (the dtype of the waveform), including the mel filter bank, which
  Kaldi/torchaudio build in float32 from Python-float mel edges.
* The power spectrum is ``|X|**2`` computed as ``abs(X)`` (a hypot) squared, not
  ``re**2 + im**2``; they differ in the last bit.
* Mel bin 3 (0-based) has an *empty* filter at n_fft 512 (its triangle falls between two FFT
  bins), so it sits at the log floor ``ln(eps) = -15.942385`` (``-1.2775939`` normalised) in
  every frame.
* The global mean removal is redundant with step 3 up to float32 rounding, but it changes the
  rounding, so it is kept.
* Zero-padded rows are added **before** normalisation, so they become
  ``4.2677393 / 9.1379948 = 0.46703237``, not the silence value.  For a padded file of
  ``n_seg * 163840`` samples, the last 2 of the ``1024 * n_seg`` frames are such rows.
* Normalisation divides by the Python float ``4.5689974 * 2`` rounded to float32 (true
  division, not multiplication by a reciprocal).
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from ..config import SAMPLE_RATE, FbankConfig

N_FFT = 512  # 400-sample frames rounded up to a power of two (Kaldi round_to_power_of_two)
FLOAT32_EPS = float(torch.finfo(torch.float32).eps)  # 1.1920929e-07, Kaldi's log floor


def mel_scale(freq_hz: float) -> float:
    """HTK mel of a frequency in Hz: ``1127 ln(1 + f / 700)`` (Python float)."""
    return 1127.0 * math.log(1.0 + freq_hz / 700.0)


def n_frames(n_samples: int, cfg: FbankConfig = FbankConfig()) -> int:
    """Frames of a snip_edges framing: ``1 + (N - 400) // 160``, or 0 when ``N < 400``."""
    if n_samples < cfg.frame_length:
        return 0
    return 1 + (n_samples - cfg.frame_length) // cfg.frame_shift


@functools.lru_cache(maxsize=8)
def _mel_banks_cached(cfg: FbankConfig, n_fft: int, sample_rate: int, dtype: torch.dtype):
    n_bins = n_fft // 2  # 256 bins below Nyquist; Nyquist itself gets weight 0
    nyquist = 0.5 * sample_rate
    high = cfg.high_freq if cfg.high_freq > 0 else nyquist + cfg.high_freq  # Kaldi: <= 0 is offset
    low = cfg.low_freq
    if not (0.0 <= low < nyquist and 0.0 < high <= nyquist and low < high):
        raise ValueError(f"bad fbank band [{low}, {high}] Hz for sample rate {sample_rate}")
    mel_low, mel_high = mel_scale(low), mel_scale(high)
    # Edges are computed in the float32 tensor domain from Python-float constants, like Kaldi's
    # torch port: left/centre/right of filter m are mel_low + (m, m+1, m+2) * delta.
    delta = (mel_high - mel_low) / (cfg.num_mel_bins + 1)
    m = torch.arange(cfg.num_mel_bins, dtype=dtype)[:, None]
    left = mel_low + m * delta
    centre = mel_low + (m + 1.0) * delta
    right = mel_low + (m + 2.0) * delta
    bin_hz = (sample_rate / n_fft) * torch.arange(n_bins, dtype=dtype)
    mel = 1127.0 * (1.0 + bin_hz / 700.0).log()
    up = (mel - left) / (centre - left)
    down = (right - mel) / (right - centre)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)  # [num_mel_bins, n_bins]
    return F.pad(banks, (0, 1))  # Nyquist column = 0 -> [num_mel_bins, n_fft // 2 + 1]


def mel_filterbank(
    cfg: FbankConfig = FbankConfig(),
    n_fft: int = N_FFT,
    sample_rate: int = SAMPLE_RATE,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Triangular HTK-mel filters ``[num_mel_bins, n_fft // 2 + 1]`` (weights, unitless).

    Row m rises linearly in mel from ``mel_low + m*delta`` to ``mel_low + (m+1)*delta`` and
    falls to ``mel_low + (m+2)*delta``, ``delta = (mel(high) - mel(low)) / (bins + 1)``.
    Filters are not area-normalised (Kaldi convention).  Returns a fresh tensor.
    """
    return _mel_banks_cached(cfg, int(n_fft), int(sample_rate), dtype).clone()


def _as_batch(wave: torch.Tensor) -> torch.Tensor:
    if not isinstance(wave, torch.Tensor):
        raise TypeError(f"wave must be a torch.Tensor, got {type(wave).__name__}")
    if wave.dim() == 1:
        wave = wave[None]
    if wave.dim() != 2:
        raise ValueError(f"wave must be [N] or [B, N], got shape {list(wave.shape)}")
    if not wave.is_floating_point():
        raise TypeError(f"wave must be floating point, got {wave.dtype}")
    return wave


def kaldi_fbank(
    wave: torch.Tensor,
    cfg: FbankConfig = FbankConfig(),
    sample_rate: int = SAMPLE_RATE,
    subtract_mean: bool = True,
) -> torch.Tensor:
    """Raw log-mel fbank ``[B, frames, num_mel_bins]`` (natural log of power, float dtype kept).

    Args:
        wave: ``[N]`` or ``[B, N]`` samples in [-1, 1] at ``sample_rate`` Hz (16 kHz officially).
        cfg: frame length/shift in samples, pre-emphasis, band edges, number of bins.
        subtract_mean: remove each row's global mean first, as the reference wrapper does.
            The golden ``out/fbank_raw`` is the value *with* this step.
    Returns:
        ``[B, 1 + (N - 400) // 160, 128]``; ``[B, 0, 128]`` when ``N < 400``.
    The input is never modified.
    """
    x = _as_batch(wave)
    batch, n = x.shape
    if subtract_mean:
        x = x - x.mean(dim=-1, keepdim=True)
    t = n_frames(n, cfg)
    if t == 0:
        return x.new_zeros(batch, 0, cfg.num_mel_bins)
    frames = x.unfold(-1, cfg.frame_length, cfg.frame_shift)  # [B, T, 400] (view)
    frames = frames - frames.mean(dim=-1, keepdim=True)  # per-frame DC removal
    # Pre-emphasis with the first sample as its own predecessor (replicate padding).
    prev = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
    frames = frames - cfg.preemphasis * prev
    window = torch.hann_window(cfg.frame_length, periodic=False, dtype=x.dtype, device=x.device)
    frames = frames * window
    n_fft = 1 << (cfg.frame_length - 1).bit_length()  # next power of two (512 for 400)
    spec = torch.fft.rfft(frames, n=n_fft, dim=-1)  # zero-pads each frame to n_fft
    power = spec.abs().pow(2.0)  # |X| then squared, as the reference (not re^2 + im^2)
    banks = _mel_banks_cached(cfg, n_fft, int(sample_rate), x.dtype).to(x.device)
    energies = torch.matmul(power, banks.t())  # [B, T, num_mel_bins]
    return energies.clamp_min(FLOAT32_EPS).log()


def pad_or_cut(fbank: torch.Tensor, target_length: int) -> torch.Tensor:
    """Zero-pad at the end, or cut, the time axis (dim -2) to ``target_length`` frames.

    Works on ``[T, bins]`` or ``[B, T, bins]``.  Pad rows are exact zeros *before*
    normalisation (the reference order), so they normalise to 0.46703237.
    """
    if target_length < 0:
        raise ValueError(f"target_length must be >= 0, got {target_length}")
    t = fbank.shape[-2]
    if t < target_length:
        return F.pad(fbank, (0, 0, 0, target_length - t))
    return fbank[..., :target_length, :]


def normalize(fbank: torch.Tensor, cfg: FbankConfig = FbankConfig()) -> torch.Tensor:
    """``(fbank - norm_mean) / (norm_std * 2)`` with the published statistics.

    ``norm_std * 2`` is formed in Python float64 and rounded to the tensor dtype by torch; the
    division is a true division (bitwise like the reference).
    """
    return (fbank - cfg.norm_mean) / (cfg.norm_std * 2)


def extract_fbank(
    wave: torch.Tensor,
    target_length: int = 1024,
    cfg: FbankConfig = FbankConfig(),
    sample_rate: int = SAMPLE_RATE,
) -> torch.Tensor:
    """The reference feature: normalised fbank padded/cut to ``[B, target_length, 128]``.

    Equivalent to the reference ``extract_kaldi_fbank_feature(wave, 16000, target_length)
    ["ta_kaldi_fbank"]`` (which returns ``[target_length, 128]`` for one wave) with a leading
    batch axis.  ``wave`` is ``[N]`` or ``[B, N]`` at ``sample_rate`` (must be 16 kHz for the
    published model; the mel band edges are in Hz).
    """
    raw = kaldi_fbank(wave, cfg, sample_rate=sample_rate, subtract_mean=True)
    return normalize(pad_or_cut(raw, target_length), cfg)
