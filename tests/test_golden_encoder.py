"""Full encoder vs the official ``AudioMAEConditionQuantResEncoder`` (golden/encoder_r{100,50,25}).

The state dict is loaded strictly from ``sd/`` (exactly the encoder.ckpt keys) and the semantic
centroids from ``in/centroids``; every stored intermediate is compared.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import OFFICIAL_MANIFEST_DIR, assert_close, atol, golden, golden_config, state_dict_from

from semanticodec_rt.config import official_config
from semanticodec_rt.encoder.codec_encoder import SemantiCodecEncoder

RATES = (100, 50, 25)


@pytest.fixture(scope="module", params=RATES, ids=lambda r: f"r{r}")
def run(request):
    rate = request.param
    arrays, meta = golden(f"encoder_r{rate}")
    enc = SemantiCodecEncoder(golden_config(rate)).eval()
    enc.load_state_dict(state_dict_from(arrays), strict=True)
    enc.load_semantic_codebook(arrays["in/centroids"])
    mel = torch.from_numpy(arrays["in/mel"])
    with torch.no_grad():
        window = enc.encode_window(mel)
    return enc, window, arrays, meta


# golden key -> WindowEncoding field
FLOAT_STAGES = {
    "out/audiomae_embed": "audiomae_embed",
    "out/representation": "representation",
    "out/semantic_unquant": "semantic_feature",
    "out/lstm_input": "lstm_input",
    "out/lstm_output": "lstm_output",
    "out/linear_output": "linear_output",
    "out/acoustic_quantized": "acoustic_feature",
    "out/quantized_feature": "quantized_feature",
}
INT_STAGES = {
    "out/semantic_tokens": "semantic_ids",
    "out/acoustic_indices": "acoustic_ids",
    "out/tokens": "tokens",
}


@pytest.mark.golden
@pytest.mark.parametrize("key", sorted(FLOAT_STAGES))
def test_float_stage(run, key):
    _, window, arrays, meta = run
    assert_close(getattr(window, FLOAT_STAGES[key]), arrays[key], atol(meta, key), key)


@pytest.mark.golden
@pytest.mark.parametrize("key", sorted(INT_STAGES))
def test_integer_stage_exact(run, key):
    _, window, arrays, _ = run
    ours = getattr(window, INT_STAGES[key])
    assert ours.dtype == torch.int64
    np.testing.assert_array_equal(ours.numpy(), arrays[key])


@pytest.mark.golden
def test_padding_cutoffs(run):
    _, window, arrays, meta = run
    for key in ("out/padding_cutoff_fractions", "out/padding_cutoff_fractions_second_call"):
        # [n_windows=1, B]; both official mark_out_padding calls use the same cutoff.
        assert_close(window.cutoff_fraction[None], arrays[key], atol(meta, key), key)
    # item 1 has a digital-silence tail: its LSTM input is -1 from the first marked token on.
    first = int(window.first_marked[1])
    assert first < window.lstm_input.shape[1]
    assert torch.all(window.lstm_input[1, first:] == -1)


@pytest.mark.golden
def test_quantized_feature_mask_is_all_ones(run):
    """The official _forward returns an all-ones mask next to quantized_feature (no masking)."""
    _, _, arrays, _ = run
    assert np.all(arrays["out/quantized_feature_mask"] == 1.0)


@pytest.mark.golden
def test_forward_tokens(run):
    enc, _, arrays, _ = run
    tokens = enc(torch.from_numpy(arrays["in/mel"]))
    assert tokens.dtype == torch.int64
    np.testing.assert_array_equal(tokens.numpy(), arrays["out/tokens"])


@pytest.mark.golden
def test_tokens_to_feature(run):
    enc, _, arrays, meta = run
    for i in range(arrays["out/tokens"].shape[0]):
        key = f"out/token_to_quantized_feature/item{i}"
        with torch.no_grad():
            ours = enc.tokens_to_feature(torch.from_numpy(arrays["out/tokens"][i : i + 1]))
        assert_close(ours, arrays[key], atol(meta, key), key)


@pytest.mark.golden
def test_state_dict_round_trip(run):
    """Our state_dict has exactly the golden (= encoder.ckpt) keys, order, shapes and dtypes."""
    enc, _, arrays, _ = run
    ref = state_dict_from(arrays)
    ours = enc.state_dict()
    assert list(ours) == list(ref)
    for k, v in ref.items():
        assert ours[k].dtype == v.dtype and ours[k].shape == v.shape, k
        assert torch.equal(ours[k], v), k
    assert not any("semantic_quantizer" in k or "positional" in k for k in ours)


@pytest.mark.manifest
@pytest.mark.parametrize("rate", RATES)
def test_full_size_matches_official_manifest(rate):
    """Full-size model built on the meta device: keys, order, shapes, dtypes, param/buffer kind."""
    if OFFICIAL_MANIFEST_DIR is None or not OFFICIAL_MANIFEST_DIR.exists():
        pytest.skip("official manifest not found")
    manifest = json.loads((OFFICIAL_MANIFEST_DIR / f"encoder_tokenrate{rate}.json").read_text())
    with torch.device("meta"):
        enc = SemantiCodecEncoder(official_config(rate))
    params = {name for name, _ in enc.named_parameters()}
    ours = []
    for k, v in enc.state_dict(keep_vars=True).items():
        kind = "parameter" if k in params else "buffer"
        ours.append((k, list(v.shape), str(v.dtype).removeprefix("torch."), kind))
    ref = [(e["key"], e["shape"], e["dtype"], e["kind"]) for e in manifest["state_dict"]]
    assert ours == ref
