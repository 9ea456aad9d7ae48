"""The frame-rate vocoders of the general-audio trials: their STFT grid, the harmonic source,
causality (what streaming needs) and the budgeted, resumable trial loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from semanticodec_rt.decoder.synthesis import stft_frames as S
from semanticodec_rt.decoder.synthesis.harmonic_noise import (
    HARMONIC_LIMIT_HZ, HarmonicNoiseVocoder, harmonic_comb, pitch_hz,
)
from semanticodec_rt.decoder.synthesis.istft_vocoder import ISTFTVocoder
from semanticodec_rt.lab.train import vocoder_trial as VT


@pytest.mark.parametrize("frames", [1, 7, 50])
def test_stft_grid_inverts(frames):
    x = torch.randn(2, S.HOP * frames, dtype=torch.float64)
    spec = S.stft(x)
    assert spec.shape == (2, S.BINS, frames)
    y = S.istft(spec, frames)
    assert y.shape == x.shape
    assert torch.equal(y[:, : S.OFFSET], torch.zeros_like(y[:, : S.OFFSET]))
    torch.testing.assert_close(y[:, S.OFFSET :], x[:, S.OFFSET :], atol=1e-9, rtol=0)


def test_stft_grid_is_centred_on_the_mel_frames():
    """An impulse at 160 t + 80 (frame t's centre) is loudest in frame t; a unit sine peaks at 1."""
    for t in (0, 3, 9):
        x = torch.zeros(1, S.HOP * 12, dtype=torch.float64)
        x[0, S.HOP * t + S.OFFSET] = 1.0
        assert S.stft(x).abs().sum(1)[0].argmax().item() == t
    n = torch.arange(16000, dtype=torch.float64)
    sine = torch.sin(2 * math.pi * 1000 * n / 16000)[None]
    assert S.stft(sine)[..., 2:-2].abs().amax().item() == pytest.approx(1.0, abs=1e-3)


def test_pitch_feature_to_hz():
    # period 256 / 2^(f18 + 1.5): f18 = -1.5 -> 256 samples (62.5 Hz); f18 = 0.5 -> 64 samples (250 Hz)
    f = pitch_hz(torch.tensor([-1.5, 0.5]))
    torch.testing.assert_close(f, torch.tensor([62.5, 250.0]))


def test_harmonic_comb_has_the_harmonics_and_nothing_above_the_limit():
    f0 = 220.0
    comb, _ = harmonic_comb(torch.full((1, 100), f0, dtype=torch.float64), None, 125)
    spec = np.abs(np.fft.rfft(comb[0].numpy() * np.hanning(comb.shape[1])))
    hz = np.fft.rfftfreq(comb.shape[1], 1 / 16000)
    k_max = int(HARMONIC_LIMIT_HZ // f0)
    peaks = [spec[np.argmin(np.abs(hz - k * f0))] for k in range(1, k_max + 1)]
    assert min(peaks) > 0.2 * max(peaks)  # every harmonic present, roughly equal
    above = spec[hz > (k_max + 0.5) * f0]
    assert above.max() < 1e-3 * max(peaks)


def test_harmonic_comb_phase_carries_across_calls():
    """Two halves with the returned phase continue the fundamental without a jump (constant f0)."""
    f0 = torch.full((1, 40), 150.0, dtype=torch.float64)
    whole, _ = harmonic_comb(f0, None, 50)
    a, ph = harmonic_comb(f0[:, :20], None, 50)
    b, _ = harmonic_comb(f0[:, 20:], ph, 50)
    torch.testing.assert_close(torch.cat([a, b], 1), whole, atol=1e-6, rtol=0)  # cumsum rounding


@pytest.mark.parametrize("kind", ["istft", "hnm"])
def test_vocoders_are_causal_on_frames(kind):
    """Changing mel frames >= t leaves every sample before frame t's window (160 t + 80 - 320)
    as it was: the decoder can stream them without lookahead beyond the window."""
    torch.manual_seed(0)
    model = ISTFTVocoder() if kind == "istft" else HarmonicNoiseVocoder()
    model.eval()
    frames, t = 30, 17
    mel = torch.randn(1, frames, 64) - 4
    pitch = torch.randn(1, frames, 2) * 0.3
    noise = torch.randn(1, S.HOP * frames)
    mel2 = mel.clone()
    mel2[:, t:] += torch.randn(1, frames - t, 64)

    def run(m):
        return model(m) if kind == "istft" else model(m, pitch, noise)

    with torch.no_grad():
        y1, y2 = run(mel), run(mel2)
    assert y1.shape == (1, S.HOP * frames)
    edge = S.HOP * t + S.OFFSET - S.N_FFT // 2
    torch.testing.assert_close(y1[:, :edge], y2[:, :edge], atol=1e-6, rtol=0)
    assert (y1[:, edge:] - y2[:, edge:]).abs().max() > 1e-4


def test_stft_loss_is_zero_only_for_the_same_signal():
    x = torch.randn(2, 8000)
    assert VT.stft_loss(x, x).item() == pytest.approx(0.0, abs=1e-6)
    assert VT.stft_loss(0.5 * x, x).item() > 0.3


def _tiny_cache(folder, n=6, frames=40):
    rng = np.random.default_rng(0)
    t = np.arange(frames * 160) / 16000
    audio = np.stack([0.3 * np.sin(2 * np.pi * (150 + 40 * i) * t) + 0.01 * rng.standard_normal(len(t))
                      for i in range(n)])
    np.savez(folder / VT.CACHE_NAME, audio=(audio * 32767).astype(np.int16),
             pitch=np.zeros((n, frames, 2), np.float32), cls=np.array(["music"] * n))
    return folder


def test_trial_stops_at_its_budget_and_resumes(tmp_path):
    """A trial writes its weights at the budget; run again with a larger budget it goes on from
    the saved step and CPU seconds, not from zero."""
    cache = _tiny_cache(tmp_path)
    settings = VT.TrialSettings(batch=2, frames=16)
    final = VT.train("istft", cache, tmp_path / "run", 1.0, settings, progress=False)
    first = torch.load(tmp_path / "run" / VT.STATE_NAME, weights_only=False)
    assert final.exists() and first["step"] >= 1 and first["cpu_s"] >= 1.0
    VT.train("istft", cache, tmp_path / "run", first["cpu_s"] + 1.0, settings, progress=False)
    second = torch.load(tmp_path / "run" / VT.STATE_NAME, weights_only=False)
    assert second["step"] > first["step"] and second["cpu_s"] >= first["cpu_s"] + 1.0
    cand = VT.load_generator("istft", final)
    with torch.no_grad():
        y = cand.synthesize(torch.zeros(1, 10, 64) - 5, None, None)
    assert y.shape == (1, 1600) and torch.isfinite(y).all()


def test_unknown_candidate_is_refused():
    with pytest.raises(ValueError, match="unknown candidate"):
        VT.make_candidate("wavenet")


# -- streaming the iSTFT vocoder (the general route's) ---------------------------------------------
def _random_vocoder(seed: int = 0) -> ISTFTVocoder:
    torch.manual_seed(seed)
    v = ISTFTVocoder().eval()
    with torch.no_grad():  # louder than the quiet start, so the comparison is not of near-zeros
        v.head.bias[: S.BINS].fill_(-2.0)
        for b in v.backbone.blocks:
            b.gamma.fill_(0.5)
    return v


@pytest.mark.parametrize("pieces", [[1] * 9, [4, 5], [2, 3, 4], [9]])
def test_convnext_cache_gives_the_whole_sequence(pieces):
    """Frames fed in pieces through a stream's cache: exactly the offline (left zero-padded) stack."""
    from semanticodec_rt.decoder.synthesis.convnext import CausalConvNeXt

    torch.manual_seed(1)
    net = CausalConvNeXt(5, 12, 3, kernel=7).eval()
    x = torch.randn(2, 5, sum(pieces), dtype=torch.float64)
    net = net.double()
    with torch.no_grad():
        whole = net(x)
        cache = [[c.double() for c in layer] for layer in net.new_cache(2)]
        i, parts = 0, []
        for n in pieces:
            parts.append(net(x[..., i : i + n], cache))
            i += n
    torch.testing.assert_close(torch.cat(parts, -1), whole, atol=1e-12, rtol=0)


@pytest.mark.parametrize("frames,pieces", [(23, [1] * 23), (23, [4, 4, 15]), (41, [3, 7, 31])])
def test_istft_stream_is_the_offline_inverse_inside_the_signal(frames, pieces):
    """The stream's overlap-add equals torch's inverse STFT wherever the full window envelope
    applies (from sample 240 to 400 before the end), and emits 160 samples per frame, the first
    240 of them before sample 0."""
    from semanticodec_rt.decoder.synthesis.istft_vocoder import ISTFTStream

    v = _random_vocoder()
    mel = torch.randn(2, frames, 64) - 4.0
    with torch.no_grad():
        ref = v(mel)
    st = ISTFTStream(v, 2)
    i, parts = 0, []
    for n in pieces:
        out = st.push(mel[:, i : i + n])
        assert out.shape == (2, S.HOP * n)
        parts.append(out)
        i += n
    got = torch.cat(parts, 1)[:, 240:]
    inner = slice(240, got.shape[1] - 400)
    assert ref[:, inner].abs().amax() > 1e-2
    torch.testing.assert_close(got[:, inner], ref[:, inner], atol=2e-6, rtol=1e-4)
