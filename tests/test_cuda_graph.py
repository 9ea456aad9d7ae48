"""The few-step sampling loop as a CUDA graph: replay equals the eager loop (GPU only)."""

from __future__ import annotations

import pytest
import torch

from semanticodec_rt.codec import SemantiCodec
from semanticodec_rt.config import rt_config
from semanticodec_rt.decoder.diffusion.ddim import sample
from semanticodec_rt.decoder.diffusion.graph import GraphedSampler

pytestmark = pytest.mark.gpu


def test_refuses_cpu():
    codec = SemantiCodec.random(rt_config("rt-tiny", 100))
    dec = codec.decoder
    with pytest.raises(ValueError, match="CUDA device"):
        GraphedSampler(dec._denoise, dec.ddim(4, 0.0), dec.sqrt_alphas_cumprod, dec.sqrt_one_minus_alphas_cumprod,
                       (1, *dec.latent_shape), (1, 16, dec.cfg.context_dim), device="cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: torch.cuda.is_available() is False")
@pytest.mark.parametrize("eta,cfg_scale", [(0.0, 2.0), (1.0, 2.0), (0.0, 1.0)])
def test_graph_replay_equals_eager(eta, cfg_scale):
    dev = torch.device("cuda")
    codec = SemantiCodec.random(rt_config("rt-small", 100), device=dev)
    dec = codec.decoder
    steps, b = 4, 3
    sched = dec.ddim(steps, eta)
    w = codec.windowing.decoder_window_tokens
    g = torch.Generator(device=dev).manual_seed(0)
    x_shape, c_shape = (b, *dec.latent_shape), (b, w, codec.cfg.context_dim)
    graphed = GraphedSampler(dec._denoise, sched, dec.sqrt_alphas_cumprod, dec.sqrt_one_minus_alphas_cumprod,
                             x_shape, c_shape, cfg_scale=cfg_scale, device=dev)
    for _ in range(2):  # replays with fresh inputs each time
        x_T = torch.randn(x_shape, device=dev, generator=g)
        cond, uncond = torch.randn(c_shape, device=dev, generator=g), torch.randn(c_shape, device=dev, generator=g)
        noise = torch.randn((steps, *x_shape), device=dev, generator=g)
        with torch.no_grad():
            eager = sample(dec._denoise, cond, uncond if cfg_scale != 1.0 else None, x_T, sched,
                           dec.sqrt_alphas_cumprod.cpu(), dec.sqrt_one_minus_alphas_cumprod.cpu(),
                           cfg_scale=cfg_scale, step_noise=lambda i: noise[i], fused=True)
        replay = graphed(x_T, cond, uncond, noise)
        torch.cuda.synchronize()
        assert torch.equal(replay, eager)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: torch.cuda.is_available() is False")
@pytest.mark.parametrize("eta,cfg_scale", [(0.0, 1.0), (0.0, 2.0), (1.0, 2.0)])
def test_distilled_decode_on_cuda_replays_the_graph_and_equals_eager(eta, cfg_scale):
    """A few-step (trailing-grid) model decoding on CUDA samples through captured graphs, one per
    window-batch shape, and gives exactly the eager decode."""
    import dataclasses

    from semanticodec_rt.config import SamplerConfig

    cfg = rt_config("rt-tiny", 100)
    cfg = dataclasses.replace(cfg, sampler=SamplerConfig(steps=4, eta=eta, cfg_scale=cfg_scale, spacing="trailing"))
    codec = SemantiCodec.random(cfg, device="cuda")
    tokens = torch.randint(0, 256, (2, 11 * cfg.tokens_per_unit, 2)) % torch.tensor([cfg.semantic_vocab_size, 8192])
    graphed = codec.decode(tokens, seed=3)  # 11 units: groups of 8 and 3 windows, two graphs
    assert len(codec.decoder._graphs) == 2
    codec.decoder.cuda_graphs = False
    eager = codec.decode(tokens, seed=3)
    assert torch.equal(graphed, eager)
