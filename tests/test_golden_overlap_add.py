"""Overlap-add and trim vs the golden vectors of the published ``decode``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import atol, golden

from semanticodec_rt.windowing import official_lengths as lengths
from semanticodec_rt.windowing.overlap_add import numpy_linspace, overlap_add, overlap_samples, trim_waveform

pytestmark = pytest.mark.golden


def _windows() -> torch.Tensor:
    arrays, _ = golden("overlap_add")
    return torch.from_numpy(arrays["in/windows"].copy())  # [3, 1, 1, 163872]


def test_overlap_add_bitwise():
    arrays, meta = golden("overlap_add")
    w = _windows()
    before = w.clone()
    out = overlap_add(w)
    ref = arrays["out/overlap_add"]
    assert out.dtype == torch.float32
    assert tuple(out.shape) == ref.shape == (1, 1, lengths.decode_len_before_trim(3))
    assert np.array_equal(out.numpy(), ref), "overlap-add must be bitwise equal"
    assert float(np.abs(out.numpy() - ref).max()) <= atol(meta, "out/overlap_add")
    assert torch.equal(w, before), "inputs must not be modified"
    # A list of windows gives the same result.
    assert torch.equal(overlap_add(list(w.unbind(0))), out)


def test_overlap_add_meta():
    _, meta = golden("overlap_add")
    hm = meta["harness_meta"]
    assert overlap_samples(hm["overlap_duration"]) == hm["overlap_samples"] == overlap_samples() == 10240


def test_overlap_add_layout_and_drift():
    """Window k >= 1 starts at k * 153632 (32 * k samples later than its 9.6 s token time)."""
    w = _windows()
    out = overlap_add(w)[0, 0]
    ov = overlap_samples()
    step = 163872 - ov
    for k in range(1, 3):
        start = k * step
        assert start - k * 153600 == 32 * k
        # Right after the crossfade, the output is window k verbatim.
        seg = out[start + ov : start + ov + 1000]
        assert torch.equal(seg, w[k, 0, 0, ov : ov + 1000])
    # Before the first crossfade the output is window 0 verbatim.
    assert torch.equal(out[: step], w[0, 0, 0, : step])


def test_overlap_add_batch():
    """[B, 1, n] windows: every batch row equals the single-item result."""
    w = _windows()  # [3, 1, 1, n]
    batch = torch.cat([w, 0.25 * w, -w], dim=1)  # [3, 3, 1, n]: 3 windows, batch 3
    out = overlap_add(batch)
    assert out.shape == (3, 1, lengths.decode_len_before_trim(3))
    for b in range(3):
        single = overlap_add(batch[:, b : b + 1])
        assert torch.equal(out[b : b + 1], single)


@pytest.mark.parametrize("rate", [100, 50, 25])
def test_trim_lengths(rate):
    arrays, meta = golden("overlap_add")
    tokens = meta["harness_meta"]["trim"][str(rate)]["tokens"]
    ref_len = int(arrays[f"out/trim_len_r{rate}"])
    assert lengths.trim_length(tokens, rate) == ref_len
    assert len(lengths.decoder_windows(tokens, rate)) == 3
    out = overlap_add(_windows())
    trimmed = trim_waveform(out, tokens, rate)
    assert trimmed.shape[-1] == ref_len
    assert np.array_equal(trimmed.numpy(), arrays["out/overlap_add"][..., :ref_len])


def test_fades_are_numpy_linspace():
    ov = overlap_samples()
    assert np.array_equal(numpy_linspace(0.0, 1.0, ov).numpy(), np.linspace(0, 1, ov))
    assert np.array_equal(numpy_linspace(1.0, 0.0, ov).numpy(), np.linspace(1, 0, ov))
