"""Decoder networks without golden vectors: batching, masking semantics, shapes, lengths,
and the parameter counts of the published sizes."""

from __future__ import annotations

import pytest
import torch
from conftest import golden_config

from semanticodec_rt.config import UNetConfig, VAEConfig, VocoderConfig, official_config
from semanticodec_rt.decoder.diffusion.attention import Attention
from semanticodec_rt.decoder.diffusion.unet import UNet
from semanticodec_rt.decoder.synthesis.hifigan import HiFiGAN
from semanticodec_rt.decoder.synthesis.vae import AutoencoderKL


def _randomize_zero_params(module: torch.nn.Module, seed: int = 0) -> None:
    """Give the published zero-initialised layers (and zero biases) random values, so every
    path contributes to the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if not p.any():
                p.copy_(0.05 * torch.randn(p.shape, generator=g))


@pytest.fixture(scope="module")
def small_unet():
    cfg = golden_config(100)
    torch.manual_seed(0)
    net = UNet(cfg.unet, cfg.context_dim).eval()
    _randomize_zero_params(net)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 8, 32, 16, generator=g)
    t = torch.tensor([981, 1])
    ctx = torch.randn(2, 24, cfg.context_dim, generator=g)
    mask = torch.ones(2, 24)
    mask[0, 17:] = 0.0  # cond item with a padded tail, uncond item unmasked
    return net, x, t, ctx, mask


def test_unet_zero_init_gives_zero_output():
    """Published init: the output conv starts at zero, so a fresh UNet predicts v = 0."""
    cfg = golden_config(100)
    net = UNet(cfg.unet, cfg.context_dim).eval()
    with torch.no_grad():
        out = net(torch.randn(1, 8, 16, 16), torch.tensor([10]), torch.randn(1, 4, cfg.context_dim))
    assert out.shape == (1, 8, 16, 16) and not out.any()


def test_unet_batch_equals_single_calls(small_unet):
    net, x, t, ctx, mask = small_unet
    with torch.no_grad():
        both = net(x, t, ctx, mask)
        singles = torch.cat([net(x[i : i + 1], t[i : i + 1], ctx[i : i + 1], mask[i : i + 1]) for i in range(2)])
    assert both.shape == x.shape
    assert (both - singles).abs().max().item() <= 1e-5


def test_unet_mask_none_equals_all_ones(small_unet):
    net, x, t, ctx, _ = small_unet
    with torch.no_grad():
        a = net(x, t, ctx, None)
        b = net(x, t, ctx, torch.ones(2, ctx.shape[1]))
    assert (a - b).abs().max().item() <= 1e-5


def test_unet_mask_removes_masked_keys(small_unet):
    """Masked context positions have no influence: changing them leaves the output alone."""
    net, x, t, ctx, mask = small_unet
    ctx2 = ctx.clone()
    ctx2[0, 17:] = 123.0
    with torch.no_grad():
        a = net(x, t, ctx, mask)
        b = net(x, t, ctx2, mask)
        c = net(x, t, ctx2, None)
    assert (a - b).abs().max().item() <= 1e-5
    assert (a - c).abs().max().item() > 1e-3


def test_fully_masked_row_is_uniform_average():
    """Every key masked: the published masked_fill makes all scores equal -> plain mean of v."""
    torch.manual_seed(0)
    attn = Attention(32, heads=2, dim_head=16, context_dim=12).eval()
    x, ctx = torch.randn(1, 5, 32), torch.randn(1, 7, 12)
    with torch.no_grad():
        out = attn(x, ctx, torch.zeros(1, 7))
        expect = attn.to_out(attn.to_v(ctx).mean(dim=1, keepdim=True)).expand(1, 5, 32)
    assert torch.isfinite(out).all()
    assert (out - expect).abs().max().item() <= 1e-5


def test_vae_encode_decode_shapes():
    torch.manual_seed(0)
    vae = AutoencoderKL(VAEConfig(ch=32)).eval()
    mel = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        post = vae.encode(mel)
        z = post.sample(torch.Generator().manual_seed(0))
        rec = vae.decode(z)
    assert post.mean.shape == post.logvar.shape == z.shape == (2, 8, 16, 16)
    assert post.kl().shape == (2,)
    assert torch.equal(post.mode(), post.mean)
    assert rec.shape == mel.shape


def test_vae_without_encoder_has_no_encoder_keys():
    vae = AutoencoderKL(VAEConfig(ch=32), with_encoder=False)
    keys = vae.state_dict().keys()
    assert not any(k.startswith(("encoder.", "quant_conv.")) for k in keys)
    with pytest.raises(RuntimeError):
        vae.encode(torch.zeros(1, 1, 16, 64))


def test_vae_vocoder_is_registered_and_vocodes():
    voc = HiFiGAN(VocoderConfig(upsample_initial_channel=64))
    vae = AutoencoderKL(VAEConfig(ch=32), vocoder=voc, with_encoder=False).eval()
    assert "vocoder.conv_pre.weight" in vae.state_dict()
    with torch.no_grad():
        wav = vae.vocode(torch.randn(1, 1, 12, 64))
    assert wav.shape == (1, 1, 160 * 12 + 32)


@pytest.mark.parametrize("frames", [1, 7, 32])
def test_vocoder_output_length(frames):
    voc = HiFiGAN(VocoderConfig(upsample_initial_channel=64)).eval()
    with torch.no_grad():
        wav = voc(torch.randn(2, 64, frames))
    assert wav.shape == (2, 1, 160 * frames + 32)
    assert wav.abs().max() <= 1.0


def _numel(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("rate,millions", [(100, 75.04), (50, 85.85), (25, 107.48)])
def test_published_unet_size(rate, millions):
    cfg = official_config(rate, 4096)
    with torch.device("meta"):
        net = UNet(UNetConfig(), cfg.context_dim)
    assert round(_numel(net) / 1e6, 2) == millions


def test_published_vae_decoder_and_vocoder_sizes():
    with torch.device("meta"):
        vae = AutoencoderKL(VAEConfig(), vocoder=HiFiGAN(VocoderConfig()), with_encoder=False)
    assert round(_numel(vae.decoder) / 1e6, 2) == 32.98
    assert round(_numel(vae.vocoder) / 1e6, 2) == 55.26
