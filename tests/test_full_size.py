"""Full-size published architecture with random weights: the whole graph runs end to end.

Slow (about a minute and a half per rate on 2 CPU cores): excluded from `make test`; run with
`python -m pytest -q -m slow`.
"""

import math

import pytest
import torch

from semanticodec_rt.codec import SemantiCodec
from semanticodec_rt.config import official_config
from semanticodec_rt.windowing import official_lengths as lengths

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("rate", [100])
def test_full_size_random_roundtrip(rate):
    torch.set_num_threads(2)
    cfg = official_config(rate, 4096)
    codec = SemantiCodec.random(cfg, seed=0)
    n = int(12 * 16000)
    t = torch.arange(n) / 16000
    audio = 0.3 * torch.sin(2 * math.pi * 220 * t) * (1 + torch.sin(2 * math.pi * 2 * t))
    tokens = codec.encode(audio, 16000)
    plan = lengths.plan_lengths(n, rate)
    assert tokens.shape == (1, plan.tokens_after_encode, 2)
    assert 0 <= int(tokens[..., 0].min()) and int(tokens[..., 0].max()) < cfg.semantic_vocab_size
    assert 0 <= int(tokens[..., 1].min()) and int(tokens[..., 1].max()) < cfg.acoustic.codebook_size
    assert len(torch.unique(tokens[..., 0])) > 1
    wave = codec.decode(tokens, steps=2)
    assert wave.shape == (1, 1, plan.decode_output_len)
    assert torch.isfinite(wave).all()
