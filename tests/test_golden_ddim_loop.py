"""The full 10-step DDIM loop (reduced UNet, VAE, vocoder) vs the reference generate_sample."""

import numpy as np
import pytest
import torch
from conftest import assert_close, atol, golden, golden_config
from golden_checkpoints import decoder_state_dict

from semanticodec_rt.decoder.conditioning import make_contexts
from semanticodec_rt.decoder.diffusion.ddim import sample
from semanticodec_rt.decoder.latent_diffusion import LatentDiffusionDecoder
from semanticodec_rt.weights.official import DECODER_IGNORED_PREFIXES, drop_prefixes

pytestmark = pytest.mark.golden


@pytest.fixture(scope="module")
def decoder():
    dec = LatentDiffusionDecoder(golden_config(100))
    dec.load_state_dict(drop_prefixes(decoder_state_dict(100), DECODER_IGNORED_PREFIXES), strict=True)
    return dec.eval()


@pytest.mark.heavy
def test_loop_every_step(decoder):
    z, meta = golden("ddim")
    noise = torch.from_numpy(z["in/loop/noise"])
    feature = torch.from_numpy(z["in/loop/quantized_feature"])
    cond, uncond = make_contexts(feature, decoder.pe)
    assert_close(cond, z["out/loop/cond_context"], atol(meta, "out/loop/cond_context"), "cond_context")
    sched = decoder.ddim(10, 1.0)
    assert np.array_equal(sched.timesteps.flip(0).numpy(), z["out/loop/timesteps"])
    steps = []
    with torch.no_grad():
        final = sample(
            decoder._denoise,
            cond,
            uncond,
            noise[0],
            sched,
            decoder.sqrt_alphas_cumprod,
            decoder.sqrt_one_minus_alphas_cumprod,
            cfg_scale=2.0,
            step_noise=lambda i: noise[1 + i],
            callback=steps.append,
        )
        mel = decoder.latent_to_mel(final)
        wave = decoder.mel_to_wave(mel)
    tol = atol(meta, "out/loop/x_steps")
    for i, s in enumerate(steps):
        assert_close(s["x"], z["out/loop/x_steps"][i], tol, f"x after step {i}")
    v_u, v_c = steps[0]["v"].chunk(2)
    assert_close(v_u, z["out/loop/first_step_v_uncond"], atol(meta, "out/loop/first_step_v_uncond"), "v_uncond")
    assert_close(v_c, z["out/loop/first_step_v_cond"], atol(meta, "out/loop/first_step_v_cond"), "v_cond")
    pred = torch.stack([steps[0]["pred_x0"], steps[-1]["pred_x0"]])
    assert_close(pred, z["out/loop/pred_x0_first_last"], atol(meta, "out/loop/pred_x0_first_last"), "pred_x0")
    assert_close(mel, z["out/loop/mel"], atol(meta, "out/loop/mel"), "mel")
    assert_close(wave, z["out/loop/waveform"], atol(meta, "out/loop/waveform"), "waveform")


@pytest.mark.heavy
def test_generate_equals_loop(decoder):
    """decoder.generate (the path decode uses) gives the same waveform."""
    z, meta = golden("ddim")
    noise = torch.from_numpy(z["in/loop/noise"])
    feature = torch.from_numpy(z["in/loop/quantized_feature"])[:, :300]  # generate re-fills the -1 tail
    with torch.no_grad():
        wave = decoder.generate(feature, noise[0], lambda i: noise[1 + i], steps=10, eta=1.0, cfg_scale=2.0)
    assert_close(wave, z["out/loop/waveform"], atol(meta, "out/loop/waveform"), "waveform")


@pytest.mark.heavy
def test_separate_guidance_calls_equal_batched(decoder):
    """The reference's two batch-1 UNet calls per step give the batched result."""
    z, meta = golden("ddim")
    noise = torch.from_numpy(z["in/loop/noise"])
    feature = torch.from_numpy(z["in/loop/quantized_feature"])[:, :300]
    with torch.no_grad():
        wave = decoder.generate(
            feature, noise[0], lambda i: noise[1 + i], steps=10, eta=1.0, cfg_scale=2.0, separate_guidance=True
        )
    assert_close(wave, z["out/loop/waveform"], atol(meta, "out/loop/waveform"), "waveform")
