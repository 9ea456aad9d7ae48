"""Streaming rt presets: streamed == offline for any block size, causality, latency, state."""

import math

import pytest
import torch

from semanticodec_rt import StreamingDecoder, StreamingEncoder
from semanticodec_rt.codec import SemantiCodec
from semanticodec_rt.config import rt_config

pytestmark = pytest.mark.streaming


@pytest.fixture(scope="module", params=[100, 50, 25])
def codec(request):
    return SemantiCodec.random(rt_config("rt-tiny", request.param, 256), seed=0)


def _signal(seconds=2.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = int(seconds * 16000) + 37
    t = torch.arange(n) / 16000
    tone = 0.3 * torch.sin(2 * math.pi * 440 * t) * torch.sin(2 * math.pi * 1.5 * t)
    return (tone + 0.05 * torch.randn(n, generator=g))[None]


def _stream_encode(codec, x, sizes):
    enc = StreamingEncoder(codec)
    out, i, k = [], 0, 0
    while i < x.shape[1]:
        n = sizes[k % len(sizes)]
        out.append(enc.push(x[:, i : i + n]))
        i, k = i + n, k + 1
    out.append(enc.flush())
    return torch.cat(out, dim=1)


@pytest.mark.parametrize("sizes", [[160], [320], [2560], [16000], [100000], [1, 2559, 3, 997, 4096, 13]])
def test_encoder_streamed_equals_offline(codec, sizes):
    x = _signal()
    assert torch.equal(_stream_encode(codec, x, sizes), codec.encode(x, 16000))


def test_encoder_sample_by_sample_across_units(codec):
    x = _signal(0.9)
    sizes = [5000] + [1] * 3000 + [100000]
    assert torch.equal(_stream_encode(codec, x, sizes), codec.encode(x, 16000))


def test_decoder_streamed_equals_offline(codec):
    x = _signal()
    tokens = codec.encode(x, 16000)
    ref = codec.decode(tokens, steps=2, seed=7, n_samples=x.shape[1])
    tu = codec.cfg.tokens_per_unit
    for chunk in (1, 7, tu, 3 * tu + 1, tokens.shape[1]):
        dec = StreamingDecoder(codec, steps=2, seed=7, n_samples=x.shape[1])
        parts = [dec.push(tokens[:, i : i + chunk]) for i in range(0, tokens.shape[1], chunk)]
        parts.append(dec.flush())
        got = torch.cat(parts, dim=-1)
        assert got.shape == ref.shape
        assert (got - ref).abs().max() < 1e-5, f"chunk {chunk}"


def test_encoder_causality(codec):
    """Ids of unit u do not change when audio after its lookahead (and frame tail) changes."""
    cfg = codec.cfg
    x = _signal(2.0)
    base = codec.encode(x, 16000)
    tu, us = cfg.tokens_per_unit, cfg.unit_columns * cfg.column_samples
    for u in (0, 3):
        horizon = (u + 1) * us + cfg.stream.lookahead_columns * cfg.column_samples + 240
        y = x.clone()
        y[:, horizon:] = 0.5 * torch.randn(1, y.shape[1] - horizon, generator=torch.Generator().manual_seed(u))
        other = codec.encode(y, 16000)
        assert torch.equal(other[:, : (u + 1) * tu], base[:, : (u + 1) * tu])
        assert not torch.equal(other, base)


def test_decoder_causality(codec):
    """Output up to unit u's segment end depends only on tokens of units <= u."""
    cfg = codec.cfg
    tokens = codec.encode(_signal(2.0), 16000)
    tu, us = cfg.tokens_per_unit, cfg.unit_columns * cfg.column_samples
    xf = round(cfg.stream.crossfade_ms * 16)
    u = 4
    changed = tokens.clone()
    g = torch.Generator().manual_seed(2)
    rest = changed[:, (u + 1) * tu :]
    rest[..., 0] = torch.randint(0, cfg.semantic_vocab_size, rest[..., 0].shape, generator=g)
    rest[..., 1] = torch.randint(0, cfg.acoustic.codebook_size, rest[..., 1].shape, generator=g)
    a = codec.decode(tokens, steps=1, seed=1)
    b = codec.decode(changed, steps=1, seed=1)
    end = (u + 1) * us - xf
    assert (a[..., :end] - b[..., :end]).abs().max() < 1e-6
    # random weights barely listen to the context, but the later audio must move
    assert (a[..., end:] - b[..., end:]).abs().max() > 0


def test_measured_latency_matches_algorithmic(codec):
    """Pushing 10 ms blocks, input pushed minus audio out never exceeds the stated latency."""
    x = _signal(2.0)
    enc, dec = StreamingEncoder(codec), StreamingDecoder(codec, steps=1)
    lat = round(codec.windowing.algorithmic_latency_ms * 16)
    pushed = out = worst = 0
    for i in range(0, x.shape[1], 160):
        block = x[:, i : i + 160]
        pushed += block.shape[1]
        out += dec.push(enc.push(block)).shape[-1]
        worst = max(worst, pushed - out)
    assert lat - 160 <= worst <= lat, (worst, lat)


def test_reset_and_errors(codec):
    x = _signal(0.7)
    enc = StreamingEncoder(codec)
    first = torch.cat([enc.push(x), enc.flush()], dim=1)
    with pytest.raises(RuntimeError, match="flushed"):
        enc.push(x)
    enc.reset()
    assert torch.equal(torch.cat([enc.push(x), enc.flush()], dim=1), first)
    with pytest.raises(ValueError, match="NaN"):
        StreamingEncoder(codec).push(torch.full((1, 10), float("nan")))
    with pytest.raises(ValueError, match=r"\[1, n\]"):
        StreamingEncoder(codec).push(torch.zeros(2, 10))
    dec = StreamingDecoder(codec, steps=1)
    with pytest.raises(ValueError, match="acoustic ids"):
        dec.push(torch.tensor([[[0, 10**6]]]))
    dec.push(first[:, :1])
    with pytest.raises(ValueError, match="inside a unit"):
        dec.flush()


def test_batch_of_two_streams(codec):
    x = torch.cat([_signal(1.0, 0), _signal(1.0, 1)])
    enc = StreamingEncoder(codec, batch_size=2)
    tok = torch.cat([enc.push(x[:, :7000]), enc.push(x[:, 7000:]), enc.flush()], dim=1)
    assert torch.equal(tok, codec.encode(x, 16000))
