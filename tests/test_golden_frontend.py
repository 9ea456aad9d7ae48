"""Front end vs the golden vectors of the published code: fbank, resampling, load_audio, lengths."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import assert_close, atol, golden, require_golden

from semanticodec_rt.audio.resample import resample
from semanticodec_rt.encoder.fbank import FLOAT32_EPS, extract_fbank, kaldi_fbank, normalize, pad_or_cut
from semanticodec_rt.windowing import official_lengths as lengths
from semanticodec_rt.windowing.official import load_audio, prepare_waveform

pytestmark = pytest.mark.golden

WAVES = ["white_noise_1s", "log_sweep_3p3s", "am_noise_10p24s", "click_train_0p05s"]


def _wave(name: str) -> torch.Tensor:
    arrays, _ = golden("fbank")
    return torch.from_numpy(arrays[f"in/wave/{name}"].copy())


# -- fbank -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", WAVES)
def test_fbank_raw(name):
    arrays, meta = golden("fbank")
    key = f"out/fbank_raw/{name}"
    raw = kaldi_fbank(_wave(name))
    assert raw.shape[0] == 1
    assert raw.shape[1] == meta["harness_meta"]["waves"][name]["raw_frames"]
    assert_close(raw[0], arrays[key], atol(meta, key), key)


@pytest.mark.parametrize("name", WAVES)
def test_fbank_normalised(name):
    arrays, meta = golden("fbank")
    key = f"out/fbank/{name}"
    out = extract_fbank(_wave(name), target_length=1024)
    assert_close(out[0], arrays[key], atol(meta, key), key)
    # Composition of the public pieces gives the same thing.
    again = normalize(pad_or_cut(kaldi_fbank(_wave(name)), 1024))
    assert torch.equal(out, again)


def test_fbank_cut_branch():
    arrays, meta = golden("fbank")
    key = "out/fbank_target256/log_sweep_3p3s"
    out = extract_fbank(_wave("log_sweep_3p3s"), target_length=256)
    assert_close(out[0], arrays[key], atol(meta, key), key)


def test_fbank_batch_matches_golden():
    """A [B, N] batch gives each item's golden fbank (same-length waves)."""
    arrays, meta = golden("fbank")
    w = _wave("white_noise_1s")
    batch = torch.stack([w, 0.5 * w, w])
    raw = kaldi_fbank(batch)
    key = "out/fbank_raw/white_noise_1s"
    assert_close(raw[0], arrays[key], atol(meta, key), key)
    assert_close(raw[2], arrays[key], atol(meta, key), key)
    # Halving the amplitude shifts every non-floor log-energy by ln(1/4).
    not_floor = raw[0] > np.log(FLOAT32_EPS) + 2.0
    shift = torch.tensor(np.log(4.0), dtype=torch.float32)
    assert torch.allclose((raw[0] - raw[1])[not_floor], shift, atol=1e-3)


def test_fbank_documented_constants():
    """Mel bin 3 has an empty filter (log floor); pad rows normalise to 0.46703237."""
    arrays, _ = golden("fbank")
    ref = arrays["out/fbank/click_train_0p05s"]
    floor_norm = (np.float32(np.log(np.float32(FLOAT32_EPS))) + np.float32(4.2677393)) / np.float32(9.1379948)
    assert np.allclose(ref[:3, 3], floor_norm, atol=1e-6)  # 3 real frames of 800 samples
    ours = extract_fbank(_wave("click_train_0p05s"))[0]
    assert torch.all(ours[:3, 3] == ours[0, 3])
    raw = kaldi_fbank(_wave("am_noise_10p24s"))[0]
    assert torch.all(raw[:, 3] == float(np.log(np.float32(FLOAT32_EPS))))
    assert np.allclose(ref[3:], 0.46703237, atol=1e-7)  # 3 raw frames, then pad rows
    assert torch.allclose(ours[3:], torch.tensor(0.46703237), atol=1e-7)


# -- resampling and load_audio ----------------------------------------------------------------


def test_resample_44k_all_channels():
    arrays, meta = golden("fbank")
    key = "out/resampled_16k_all_channels"
    x = torch.from_numpy(np.ascontiguousarray(arrays["in/wave_44k_stereo_NC"].T))
    x0 = x.clone()
    y = resample(x, 44100, 16000)
    assert_close(y, arrays[key], atol(meta, key), key)
    assert torch.equal(x, x0)
    # Channel 0 alone (the reference keeps only it afterwards) gives the same row.
    assert_close(resample(x[0], 44100, 16000)[None], arrays[key][0:1], atol(meta, key), key + "[0]")


@pytest.mark.parametrize("name", WAVES)
def test_load_audio_mel_from_array(name):
    arrays, meta = golden("fbank")
    key = f"out/load_audio_mel/{name}"
    mel, info = load_audio(arrays[f"in/wave/{name}"], 100, sample_rate=16000)
    hm = meta["harness_meta"]["waves"][name]
    assert list(mel.shape) == hm["load_audio_mel_shape"]
    assert info.n_samples == hm["n_samples"]
    assert info.target_token_len == hm["target_token_len_rate100"]
    assert_close(mel, arrays[key], atol(meta, key), key)


@pytest.mark.parametrize("name", ["white_noise_1s", "am_noise_10p24s"])
def test_load_audio_mel_from_float_wav(tmp_path, name):
    """The golden mels were made from FLOAT wav files of the same samples."""
    arrays, meta = golden("fbank")
    key = f"out/load_audio_mel/{name}"
    path = tmp_path / f"{name}.wav"
    sf.write(path, arrays[f"in/wave/{name}"], 16000, subtype="FLOAT")
    mel, info = load_audio(path)
    assert_close(mel, arrays[key], atol(meta, key), key)
    assert info.source_sample_rate == 16000


def test_load_audio_stereo_44k_channel0(tmp_path):
    arrays, meta = golden("fbank")
    key = "out/load_audio_mel/stereo_44k_0p5s"
    hm = meta["harness_meta"]["stereo_44k"]
    path = tmp_path / "stereo.wav"
    sf.write(path, arrays["in/wave_44k_stereo_NC"], 44100, subtype="FLOAT")
    mel, info = load_audio(path, 100)
    assert list(mel.shape) == hm["mel_shape"]
    assert info.source_sample_rate == 44100
    assert info.n_samples == hm["resampled_shape"][1]
    assert info.target_token_len == hm["target_token_len_rate100"]
    assert_close(mel, arrays[key], atol(meta, key), key)
    # The same through an in-memory [N, C] array.
    mel2, _ = load_audio(arrays["in/wave_44k_stereo_NC"], sample_rate=44100, channels_first=False)
    assert torch.equal(mel, mel2)
    # The padded waveform is channel 0 of the golden resampled pair, then zeros.
    wave, _ = prepare_waveform(path)
    assert wave.shape == (1, 163840)
    assert_close(wave[:, :8000], arrays["out/resampled_16k_all_channels"][0:1], 5e-5, "wave")
    assert torch.count_nonzero(wave[:, 8000:]) == 0


def test_load_audio_mean_policy_differs_for_stereo():
    arrays, meta = golden("fbank")
    x = arrays["in/wave_44k_stereo_NC"]
    mel_first, _ = load_audio(x, sample_rate=44100, channels_first=False)
    mel_mean, _ = load_audio(x, sample_rate=44100, channels_first=False, mono="mean")
    assert float((mel_first - mel_mean).abs().max()) > 1e-3


# -- lengths ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _lengths_meta() -> dict:
    """lengths.json has no .npz sibling, so it is read directly."""
    return json.loads((require_golden() / "lengths.json").read_text())


def test_lengths_every_field_exact():
    meta = _lengths_meta()
    fields = set(meta["fields"]) | {"target_token_len_repr"}
    checked = 0
    for row in meta["rows"]:
        n = row["n_samples"]
        assert lengths.duration_s(n) == row["duration_s"]
        assert lengths.padded_samples(n) == row["padded_samples"]
        for rate_s, ref in row["rates"].items():
            rate = int(rate_s)
            plan = lengths.plan_lengths(n, rate)
            assert set(ref) <= fields | {"n_samples"}
            for field, value in ref.items():
                if field == "target_token_len_repr":
                    ours = repr(plan.target_token_len)
                elif field == "decode_windows_start_len":
                    ours = [list(w) for w in plan.decode_windows_start_len]
                else:
                    ours = getattr(plan, field)
                assert type(ours) is type(value), (n, rate, field, ours, value)
                assert ours == value, (n, rate, field, ours, value)
                checked += 1
            # The standalone functions agree with the plan.
            assert lengths.mel_target_length(n) == ref["mel_target_length"]
            assert lengths.n_segments(n) == ref["n_segments"]
            assert lengths.decode_output_len(ref["tokens_after_encode"], rate) == ref["decode_output_len"]
    assert checked == 41 * 3 * 12


def test_lengths_documented_cases():
    assert [lengths.tokens_after_encode(16000, r) for r in (100, 50, 25)] == [57, 29, 15]
    assert [lengths.tokens_after_encode(163840, r) for r in (100, 50, 25)] == [520, 260, 130]
    assert lengths.n_segments(163840) == 2
    assert [lengths.tokens_after_encode(153600, r) for r in (100, 50, 25)] == [480, 240, 120]
    plan = lengths.plan_lengths(400000, 100)
    assert plan.tokens_after_encode == 1256
    assert plan.decode_windows_start_len == ((0, 512), (480, 512), (960, 296))
    assert plan.decode_output_len == 401920


def test_trim_truncation_examples():
    meta = _lengths_meta()
    rows = meta["trim_truncation_examples"]["rows"]
    assert len(rows) == 18
    for r in rows:
        assert repr(lengths.trim_expression(r["tokens"], r["rate"])) == r["trim_expression_value"]
        assert lengths.decode_output_len(r["tokens"], r["rate"]) == r["decode_output_len"]
        k = 100 // r["rate"]
        assert r["tokens"] * 320 * k == r["exact_L_times_320K"]
        lost = r["exact_L_times_320K"] - lengths.trim_length(r["tokens"], r["rate"])
        assert lost == (0 if r["tokens"] in (800, 1600) else 1)
