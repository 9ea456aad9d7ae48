"""End to end: official-layout checkpoints -> SemantiCodec.encode/decode vs the reference."""

import numpy as np
import pytest
import torch
from conftest import assert_close, atol, golden, golden_config
from golden_checkpoints import write_official_folder

from semanticodec_rt.weights.official import load_official

pytestmark = pytest.mark.golden


@pytest.fixture(scope="module", params=[100, 50, 25])
def loaded(request, tmp_path_factory):
    rate = request.param
    root = write_official_folder(tmp_path_factory.mktemp(f"official_r{rate}"), rate)
    codec = load_official(root, rate, config=golden_config(rate))
    return rate, codec


def _injected_noise(z):
    noise = torch.from_numpy(z["in/noise"])  # [n_win, 11, 1, 8, 256, 16]
    return lambda w: (noise[w, 0], lambda i: noise[w, 1 + i])


def test_encode_tokens_exact(loaded):
    rate, codec = loaded
    z, _ = golden(f"e2e_r{rate}")
    tokens = codec.encode(torch.from_numpy(z["in/waveform"]), 16000)
    assert tokens.dtype == torch.int64
    assert np.array_equal(tokens.numpy(), z["out/tokens"])


def test_encode_from_wav_file(loaded, tmp_path):
    """The reference reads a FLOAT wav; the same file through our reader gives the same tokens."""
    import soundfile as sf

    rate, codec = loaded
    z, _ = golden(f"e2e_r{rate}")
    path = tmp_path / "in.wav"
    sf.write(path, z["in/waveform"], 16000, subtype="FLOAT")
    assert np.array_equal(codec.encode(path).numpy(), z["out/tokens"])


@pytest.mark.heavy
@pytest.mark.parametrize("windows_per_batch", [1, 2])
def test_decode_waveform(loaded, windows_per_batch):
    rate, codec = loaded
    z, meta = golden(f"e2e_r{rate}")
    wave = codec.decode(
        torch.from_numpy(z["out/tokens"]),
        steps=10,
        cfg_scale=2.0,
        eta=1.0,
        noise=_injected_noise(z),
        windows_per_batch=windows_per_batch,
    )
    assert_close(wave, z["out/waveform"], atol(meta, "out/waveform"), f"r{rate} waveform")


@pytest.mark.heavy
def test_decode_batch_of_two_equals_singles(loaded):
    """Batch items are independent and get the same per-window noise as a batch of one."""
    rate, codec = loaded
    z, _ = golden(f"e2e_r{rate}")
    tok = torch.from_numpy(z["out/tokens"])[:, :150]
    other = tok.flip(1)
    both = codec.decode(torch.cat([tok, other]), steps=2, seed=5)
    one = codec.decode(tok, steps=2, seed=5)
    two = codec.decode(other, steps=2, seed=5)
    assert_close(both[0:1], one.numpy(), 1e-5, "item 0")
    assert_close(both[1:2], two.numpy(), 1e-5, "item 1")
