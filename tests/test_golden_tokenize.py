"""Patch grid -> token sequence and semantic k-means lookup vs golden/tokenize.npz."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import assert_close, atol, golden

from semanticodec_rt.encoder.grouping import audiomae_to_sequence, tokens_to_patches
from semanticodec_rt.encoder.kmeans import SemanticQuantizer

pytestmark = pytest.mark.golden

RATES = (100, 50, 25)
VOCABS = (64, 512)
STACK = {100: 1, 50: 2, 25: 4}
# README "How a test should compare" §1: below this float64 margin, float32 rounding decides.
NEAR_TIE_MARGIN = 1e-3


@pytest.mark.parametrize("rate", RATES)
def test_sequence_grouping(rate):
    arrays, meta = golden("tokenize")
    rep = torch.from_numpy(arrays["in/rep"])
    seq = audiomae_to_sequence(rep, STACK[rate])
    key = f"out/r{rate}/sequence"
    assert_close(seq, arrays[key], atol(meta, key), key)
    assert torch.equal(seq, torch.from_numpy(arrays[key]))  # a pure permutation: bitwise
    assert torch.equal(tokens_to_patches(seq, STACK[rate]), rep[:, 1:])


@pytest.mark.parametrize("vocab", VOCABS)
@pytest.mark.parametrize("rate", RATES)
def test_natural_tokens_and_unquant(rate, vocab):
    arrays, meta = golden("tokenize")
    seq = torch.from_numpy(arrays[f"out/r{rate}/sequence"])
    q = SemanticQuantizer(seq.shape[-1], arrays[f"in/r{rate}/centroids_V{vocab}"])
    assert q.num_centroids == vocab
    ids = q.quantize(seq)
    assert ids.dtype == torch.int64
    np.testing.assert_array_equal(ids.numpy(), arrays[f"out/r{rate}/V{vocab}/tokens"])
    key = f"out/r{rate}/V{vocab}/unquant"
    assert_close(q.dequantize(ids), arrays[key], atol(meta, key), key)


@pytest.mark.parametrize("vocab", VOCABS)
@pytest.mark.parametrize("rate", RATES)
def test_near_ties(rate, vocab):
    arrays, meta = golden("tokenize")
    pre = f"out/r{rate}/V{vocab}/"
    rows = torch.from_numpy(arrays[f"in/r{rate}/V{vocab}/neartie_rows"])
    centroids = arrays[f"in/r{rate}/V{vocab}/neartie_centroids"]
    q = SemanticQuantizer(rows.shape[-1], centroids)
    ours = q.quantize(rows).numpy()[0]
    ref = arrays[pre + "neartie_tokens"][0]
    best = arrays[pre + "neartie_float64_best"][0]
    second = arrays[pre + "neartie_float64_second"][0]
    margin = arrays[pre + "neartie_float64_margin"][0]
    info = meta["harness_meta"]["rates"][str(rate)][f"V{vocab}_neartie_info"]

    for i, (o, r) in enumerate(zip(ours, ref)):
        if info[i] == "duplicate_centroid_pair":
            # Exact tie between duplicated centroids: the lower index wins, like the reference.
            lo, hi = meta["harness_meta"]["rates"][str(rate)][f"V{vocab}_duplicate_pair"]
            assert o == r == lo, (i, o, r)
        elif margin[i] > NEAR_TIE_MARGIN:
            assert o == r, (i, info[i], o, r)
        else:
            assert o in (best[i], second[i]), (i, info[i], o, best[i], second[i])

    unq = q.dequantize(torch.from_numpy(ours)[None]).numpy()[0]
    np.testing.assert_array_equal(unq, centroids[ours])
    same = ours == ref
    np.testing.assert_array_equal(unq[same], arrays[pre + "neartie_unquant"][0][same])
