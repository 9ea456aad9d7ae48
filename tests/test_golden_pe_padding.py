"""Positional table, padding detection and -1 marking vs golden/pe_padding.npz.

Errata G1: the file does not store the centroids, LSTM or VQ of its D=4 encoder, so only the
cutoffs, the first marked positions, the feature part of the LSTM input and the -1 regions are
testable here; test_golden_encoder covers the full path.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import assert_close, atol, golden

from semanticodec_rt.encoder.grouping import audiomae_to_sequence
from semanticodec_rt.encoder.padding import (
    first_marked_position, mark_padding, padding_column_max, padding_cutoff_fraction,
)
from semanticodec_rt.encoder.positional import PositionalEncoding, sinusoidal_table

pytestmark = pytest.mark.golden

RATES = {100: (1, 512), 50: (2, 256), 25: (4, 128)}  # rate -> (stack factor K, T_w)


def test_pe_table_bitwise():
    """Errata E2: the float32 evaluation order reproduces the official table bitwise."""
    arrays, meta = golden("pe_padding")
    table = sinusoidal_table(512, 192)
    assert table.dtype == torch.float32
    assert_close(table[None], arrays["out/pe"], atol(meta, "out/pe"), "pe")
    assert torch.equal(table[None], torch.from_numpy(arrays["out/pe"]))


@pytest.mark.parametrize("rate", RATES)
def test_pe_used_per_rate(rate):
    arrays, meta = golden("pe_padding")
    _, t_w = RATES[rate]
    pe = PositionalEncoding(512, 192)
    used = pe(torch.zeros(3, t_w, 7))
    key = f"out/pe_used_r{rate}"
    assert_close(used, arrays[key], atol(meta, key), key)
    assert "pe" not in pe.state_dict()  # not a checkpoint entry, like the official one


@pytest.mark.parametrize("rate", RATES)
def test_cutoffs_and_first_marked(rate):
    arrays, meta = golden("pe_padding")
    _, t_w = RATES[rate]
    mel = torch.from_numpy(arrays["in/mel"])
    frac = padding_cutoff_fraction(mel)
    assert frac.dtype == torch.float64
    np.testing.assert_array_equal(frac.numpy(), arrays[f"out/r{rate}/padding_cutoff_fractions"])
    first = first_marked_position(frac, t_w)
    np.testing.assert_array_equal(first.numpy(), arrays[f"out/r{rate}/first_marked_position"])


def test_exception_path_items():
    """Items 3 and 4 have exactly one non-empty frame: the reference's exception path -> 0."""
    arrays, meta = golden("pe_padding")
    items = meta["harness_meta"]["items"]
    col = padding_column_max(torch.from_numpy(arrays["in/mel"])).tolist()
    expect = {
        "full": 1024,
        "all_silent": 0,
        "single_frame_0": 0,
        "single_frame_500": 0,
        "internal_gap_300_399": 1024,
        "last2_pad_rows": 1022,
        "last_row_empty": 1023,
        "two_frames_nonempty": 2,
    }
    for name, value in expect.items():
        assert col[items.index(name)] == value, name


@pytest.mark.parametrize("rate", RATES)
def test_marking(rate):
    arrays, meta = golden("pe_padding")
    k, t_w = RATES[rate]
    rep = audiomae_to_sequence(torch.from_numpy(arrays["in/rep_D4"]), k)  # [10, T_w, F]
    f = rep.shape[-1]
    first = torch.from_numpy(arrays[f"out/r{rate}/first_marked_position"])
    lstm_ref = arrays[f"out/r{rate}/lstm_input_marked"]
    qf_ref = arrays[f"out/r{rate}/quantized_feature_noPE"]

    # The feature half [..., :F] is fully determined by rep and the cutoff.
    key = f"out/r{rate}/lstm_input_marked"
    assert_close(mark_padding(rep, first), lstm_ref[..., :f], atol(meta, key), key)

    # -1 regions of both marked tensors, all 2F channels; marking is idempotent on them.
    pos = np.arange(t_w)[None, :] >= first.numpy()[:, None]
    for name, ref in (("lstm_input_marked", lstm_ref), ("quantized_feature_noPE", qf_ref)):
        assert np.all(ref[pos] == -1.0), name
        ours = mark_padding(torch.from_numpy(ref), first).numpy()
        np.testing.assert_array_equal(ours, ref, err_msg=name)
