"""Unit tests of the front end that need no golden file: I/O errors, policies, formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from semanticodec_rt.audio.files import (
    AudioFileNotFoundError, AudioInputError, apply_channel_policy, read_audio,
)
from semanticodec_rt.audio.resample import resample, resampled_length, sinc_resample_kernel
from semanticodec_rt.encoder.fbank import kaldi_fbank, mel_filterbank, n_frames, pad_or_cut
from semanticodec_rt.windowing import official_lengths as lengths
from semanticodec_rt.windowing.official import load_audio, prepare_waveform
from semanticodec_rt.windowing.overlap_add import numpy_linspace, overlap_add

SR = 16000


def _tone(n: int, sr: int = SR, f: float = 440.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(n) / sr
    return (amp * np.sin(2 * np.pi * f * t)).astype(np.float32)


# -- audio_io errors ---------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match="no such file") as e:
        read_audio(tmp_path / "nope.wav")
    assert isinstance(e.value, AudioFileNotFoundError)
    assert isinstance(e.value, FileNotFoundError)


def test_corrupt_file(tmp_path):
    p = tmp_path / "bad.wav"
    p.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    with pytest.raises(AudioInputError, match="unsupported or corrupt"):
        read_audio(p)
    q = tmp_path / "text.flac"
    q.write_text("this is not audio")
    with pytest.raises(ValueError, match="unsupported or corrupt"):
        read_audio(q)


def test_directory_is_rejected(tmp_path):
    with pytest.raises(AudioInputError, match="directory"):
        read_audio(tmp_path)


def test_empty_audio(tmp_path):
    p = tmp_path / "empty.wav"
    sf.write(p, np.zeros((0, 1), np.float32), SR, subtype="FLOAT")
    with pytest.raises(AudioInputError, match="empty"):
        read_audio(p)
    with pytest.raises(AudioInputError, match="empty"):
        read_audio(np.zeros(0, np.float32), SR)
    with pytest.raises(AudioInputError, match="empty"):
        load_audio(torch.zeros(2, 0), sample_rate=SR)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_audio(tmp_path, bad):
    x = _tone(1000)
    x[10] = bad
    with pytest.raises(AudioInputError, match="non-finite"):
        read_audio(x, SR)
    with pytest.raises(ValueError, match="non-finite"):
        load_audio(torch.from_numpy(x), sample_rate=SR)
    p = tmp_path / "nan.wav"
    sf.write(p, x, SR, subtype="FLOAT")
    with pytest.raises(AudioInputError, match="non-finite"):
        read_audio(p)


def test_array_input_errors():
    with pytest.raises(AudioInputError, match="sample_rate"):
        read_audio(np.zeros(10, np.float32))
    with pytest.raises(AudioInputError, match="shape"):
        read_audio(np.zeros((1, 2, 3), np.float32), SR)
    with pytest.raises(AudioInputError, match="dtype"):
        read_audio(np.zeros(10, np.uint8), SR)
    with pytest.raises(AudioInputError, match="source type"):
        read_audio([0.0, 1.0], SR)
    with pytest.raises(ValueError, match="mono"):
        read_audio(np.zeros(10, np.float32), SR, mono="left")
    with pytest.raises(AudioInputError, match="sample_rate"):
        read_audio(np.zeros(10, np.float32), 0)


def test_file_rate_mismatch(tmp_path):
    p = tmp_path / "a.wav"
    sf.write(p, _tone(100), SR)
    with pytest.raises(AudioInputError, match="sample rate"):
        read_audio(p, 44100)
    assert read_audio(p, SR)[1] == SR


# -- mono policies -----------------------------------------------------------------------------


def test_mono_policies():
    left, right = _tone(500), _tone(500, f=1000.0)
    x = np.stack([left, right])  # [C, N]
    first, sr = read_audio(x, SR)
    assert sr == SR and first.shape == (1, 500)
    assert torch.equal(first[0], torch.from_numpy(left))
    mean, _ = read_audio(x, SR, mono="mean")
    assert torch.allclose(mean[0], torch.from_numpy((left + right) / 2), atol=1e-7)
    both, _ = read_audio(x, SR, mono=None)
    assert both.shape == (2, 500)
    nc, _ = read_audio(x.T, SR, channels_first=False)
    assert torch.equal(nc, first)
    with pytest.raises(ValueError):
        apply_channel_policy(torch.zeros(2, 5), "sum")


def test_array_inputs_are_not_aliased():
    t = torch.from_numpy(_tone(300))
    wave, _ = read_audio(t, SR)
    wave.mul_(0.0)
    assert float(t.abs().max()) > 0.1


def test_int16_array_scaling():
    x = np.array([0, 16384, -32768, 32767], np.int16)
    wave, _ = read_audio(x, SR)
    assert wave.dtype == torch.float32
    assert wave[0].tolist() == [0.0, 0.5, -1.0, 32767 / 32768]


# -- file round trips --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "suffix,subtype,tol",
    [
        (".wav", "FLOAT", 0.0),
        (".wav", "PCM_16", 1.0 / 32768),
        (".flac", "PCM_16", 1.0 / 32768),
        (".ogg", "VORBIS", None),
    ],
)
def test_round_trip(tmp_path, suffix, subtype, tol):
    n = 8000
    x = np.stack([_tone(n, f=440.0), _tone(n, f=660.0, amp=0.25)], axis=1)  # [N, C] for soundfile
    p = tmp_path / f"rt{suffix}"
    sf.write(p, x, SR, subtype=subtype)
    wave, sr = read_audio(p, mono=None)
    assert sr == SR and wave.dtype == torch.float32 and wave.shape[0] == 2
    if tol is None:
        # Lossy Vorbis: same length, correlated content.
        assert wave.shape[1] == n
        c = np.corrcoef(wave[0].numpy(), x[:, 0])[0, 1]
        assert c > 0.99
    else:
        assert wave.shape == (2, n)
        assert float(np.abs(wave.numpy() - x.T).max()) <= tol
    first, _ = read_audio(p)
    assert torch.equal(first, wave[0:1])


# -- resampler ---------------------------------------------------------------------------------


def test_resample_identity_equal_rates():
    x = torch.randn(2, 1234)
    assert resample(x, SR, SR) is x
    assert resample(x, 44100.0, 44100) is x
    assert resampled_length(1234, SR, SR) == 1234


@pytest.mark.parametrize(
    "orig,new", [(44100, 16000), (48000, 16000), (8000, 16000), (22050, 16000), (16000, 44100)]
)
def test_resample_lengths_and_tone(orig, new):
    n = orig // 2 + 7
    x = torch.from_numpy(_tone(n, sr=orig, f=300.0))
    y = resample(x[None].repeat(3, 1), orig, new)
    assert y.shape == (3, math.ceil(new * n / orig))
    # A 300 Hz tone is preserved away from the edges (passband gain ~1).
    ref = _tone(y.shape[-1], sr=new, f=300.0)
    mid = slice(200, y.shape[-1] - 200)
    assert float(np.abs(y[1, mid].numpy() - ref[mid]).max()) < 2e-3
    assert torch.equal(y[0], y[2])


def test_resample_kernel_shape_and_dc_gain():
    k, width = sinc_resample_kernel(44100, 16000)
    assert width == 17 and k.shape == (160, 1, 2 * 17 + 441)
    # Each phase sums to ~1 (unity DC gain).
    assert torch.allclose(k.double().sum(-1), torch.ones(160, 1, dtype=torch.float64), atol=2e-3)


def test_resample_float32_length_quirk():
    """Above 2**22 output samples the float32 ceil of the reference can drop one sample."""
    n = 44100 * 600 + 1
    assert resampled_length(n, 44100, 16000) == 9_600_000
    assert -(-(160 * n) // 441) == 9_600_001


def test_resample_rejects_bad_rates():
    x = torch.zeros(10)
    with pytest.raises(ValueError):
        resample(x, 0, SR)
    with pytest.raises(ValueError):
        resample(x, 44100.5, SR)
    with pytest.raises(TypeError):
        resample(torch.zeros(10, dtype=torch.int16), 44100, SR)


# -- fbank shapes ------------------------------------------------------------------------------


def test_fbank_shapes():
    assert n_frames(399) == 0 and n_frames(400) == 1 and n_frames(163840) == 1022
    out = kaldi_fbank(torch.zeros(2, 300))
    assert out.shape == (2, 0, 128)
    out = kaldi_fbank(torch.from_numpy(_tone(16000)))
    assert out.shape == (1, 98, 128)
    assert pad_or_cut(out, 100).shape == (1, 100, 128)
    assert torch.count_nonzero(pad_or_cut(out, 100)[:, 98:]) == 0
    assert pad_or_cut(out[0], 10).shape == (10, 128)
    fb = mel_filterbank()
    assert fb.shape == (128, 257) and float(fb[:, -1].abs().max()) == 0.0
    assert float(fb[3].max()) == 0.0  # the empty filter of the reference
    with pytest.raises(ValueError):
        kaldi_fbank(torch.zeros(1, 2, 3))


def test_fbank_does_not_modify_input():
    x = torch.from_numpy(_tone(4000)) + 0.1
    x0 = x.clone()
    kaldi_fbank(x)
    assert torch.equal(x, x0)


# -- shape / length formulas on a couple of durations ------------------------------------------


@pytest.mark.parametrize("seconds,rate", [(3.7, 100), (12.5, 50), (21.0, 25), (10.24, 100)])
def test_load_audio_shapes(seconds, rate):
    n = int(round(seconds * SR))
    mel, info = load_audio(_tone(n), rate, sample_rate=SR)
    n_seg = n // 163840 + 1  # always at least one zero of padding
    assert info.n_segments == n_seg == lengths.n_segments(n)
    assert mel.shape == (1, 1024 * n_seg, 128)
    assert info.padded_samples == n_seg * 163840
    assert info.n_tokens == math.ceil(lengths.target_token_len(n, rate))
    assert info.n_tokens <= n_seg * lengths.tokens_per_window(rate)
    # Last two frames are zero-pad rows.
    assert torch.allclose(mel[0, -2:], torch.tensor(0.46703237), atol=1e-7)
    wave, _ = prepare_waveform(_tone(n), rate, sample_rate=SR)
    assert wave.shape == (1, n_seg * 163840)


def test_length_formulas():
    assert lengths.segment_padding(163840) == 163840  # whole extra segment quirk
    assert lengths.segment_padding(1) == 163839
    assert lengths.decoder_windows(512, 100) == [(0, 512)]
    assert lengths.decoder_windows(513, 100) == [(0, 512), (480, 33)]
    assert lengths.decoder_windows(0, 100) == []
    assert lengths.decoder_windows(300, 25) == [(0, 128), (120, 128), (240, 60)]
    assert lengths.decode_len_before_trim(1) == 163872
    assert lengths.decode_len_before_trim(4) == 163872 + 3 * 153632
    assert lengths.trim_length(803, 100) == 256959  # int() truncation quirk
    assert lengths.trim_length(800, 100) == 256000
    with pytest.raises(ValueError):
        lengths.stack_factor(30)


# -- overlap-add generic -----------------------------------------------------------------------


def test_overlap_add_generic():
    ws = [torch.full((2, 1, 100), float(k + 1)) for k in range(3)]
    out = overlap_add(ws, overlap=20)
    assert out.shape == (2, 1, 100 + 2 * 80)
    # Constant windows: the crossfade interpolates linearly between the two levels.
    fade = numpy_linspace(0.0, 1.0, 20).float()
    assert torch.allclose(out[0, 0, 80:100], 1.0 * (1 - fade) + 2.0 * fade, atol=1e-6)
    assert torch.equal(overlap_add(ws[:1]), ws[0])
    with pytest.raises(ValueError):
        overlap_add([])
    with pytest.raises(ValueError):
        overlap_add([torch.zeros(1, 1, 10), torch.zeros(1, 1, 10)], overlap=20)
    with pytest.raises(ValueError):
        overlap_add([torch.zeros(1, 1, 30), torch.zeros(2, 1, 30)], overlap=20)
