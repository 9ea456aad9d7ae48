"""Mel VAE vs the golden vectors of the published AutoencoderKL (reduced width ch 32):
strict load of every key (encoder and quant_conv included), decode, decode_first_stage with
the float32-reciprocal scale factor, and two intermediates (post_quant_conv, decoder mid)."""

from __future__ import annotations

import pytest
import torch
from conftest import assert_close, atol, golden, golden_config, state_dict_from

from semanticodec_rt.decoder.synthesis.vae import AutoencoderKL

pytestmark = pytest.mark.golden


@pytest.fixture(scope="module")
def vae_case():
    arrays, meta = golden("vae_decoder")
    vae = AutoencoderKL(golden_config(100).vae).eval()
    vae.load_state_dict(state_dict_from(arrays), strict=True)
    return vae, arrays, meta


def test_all_keys_load_strictly_including_encoder(vae_case):
    vae, arrays, _ = vae_case
    ref = [k[3:] for k in arrays if k.startswith("sd/")]
    assert list(vae.state_dict().keys()) == ref
    assert any(k.startswith("encoder.") for k in ref) and "quant_conv.weight" in ref
    # The encoder weights really landed in the encoder.
    w = arrays["sd/encoder.conv_out.weight"]
    assert torch.equal(vae.encoder.conv_out.weight, torch.from_numpy(w))


def test_decode(vae_case):
    vae, arrays, meta = vae_case
    with torch.no_grad():
        mel = vae.decode(torch.from_numpy(arrays["in/z"]))
    assert_close(mel, arrays["out/mel_decode"], atol(meta, "out/mel_decode"), "mel_decode")


@pytest.mark.parametrize("as_tensor", [True, False])
def test_decode_first_stage(vae_case, as_tensor):
    vae, arrays, meta = vae_case
    sf = torch.from_numpy(arrays["in/scale_factor"]) if as_tensor else float(arrays["in/scale_factor"])
    with torch.no_grad():
        mel = vae.decode_first_stage(torch.from_numpy(arrays["in/z"]), sf)
    key = "out/mel_decode_first_stage"
    assert_close(mel, arrays[key], atol(meta, key), key)


def test_decode_intermediates(vae_case):
    vae, arrays, meta = vae_case
    captured = {}
    handles = [
        vae.post_quant_conv.register_forward_hook(lambda m, i, o: captured.__setitem__("pqc", o.clone())),
        vae.decoder.mid.block_2.register_forward_hook(lambda m, i, o: captured.__setitem__("mid", o.clone())),
    ]
    try:
        with torch.no_grad():
            vae.decode(torch.from_numpy(arrays["in/z"]))
    finally:
        for h in handles:
            h.remove()
    assert_close(captured["pqc"], arrays["out/post_quant_conv"], atol(meta, "out/post_quant_conv"), "pqc")
    key = "out/decoder_mid_time_0_63"
    ref = arrays[key]
    assert_close(captured["mid"][:, :, : ref.shape[2]], ref, atol(meta, key), key)
