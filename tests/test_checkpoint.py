"""safetensors checkpoints of our own models: round trip, hashes, refusal of bad files."""

import pytest
import torch

from semanticodec_rt.codec import SemantiCodec
from semanticodec_rt.config import rt_config
from semanticodec_rt.weights import checkpoint

pytestmark = pytest.mark.cli


@pytest.fixture(scope="module")
def codec():
    return SemantiCodec.random(rt_config("rt-tiny", 100, 256), seed=3)


def test_round_trip_same_tokens_and_audio(codec, tmp_path):
    path = tmp_path / "m.safetensors"
    sha = checkpoint.save(codec, path)
    loaded = checkpoint.load(path)
    assert loaded.cfg == codec.cfg and loaded.model_sha == sha
    x = 0.2 * torch.randn(1, 16000, generator=torch.Generator().manual_seed(0))
    tok = codec.encode(x, 16000)
    assert torch.equal(loaded.encode(x, 16000), tok)
    assert torch.equal(loaded.decode(tok, steps=1), codec.decode(tok, steps=1))


def test_model_sha_names_the_weights(codec, tmp_path):
    other = SemantiCodec.random(codec.cfg, seed=4)
    a = checkpoint.save(codec, tmp_path / "a.safetensors")
    b = checkpoint.save(other, tmp_path / "b.safetensors")
    assert a != b and codec.cfg.sha() == other.cfg.sha()


def test_half_precision_file_is_smaller_and_loads(codec, tmp_path):
    full, half = tmp_path / "f.safetensors", tmp_path / "h.safetensors"
    checkpoint.save(codec, full)
    checkpoint.save(codec, half, dtype=torch.float16)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded = checkpoint.load(half)
    w = dict(loaded.decoder.named_parameters())["model.diffusion_model.out.2.weight"]
    assert w.dtype == torch.float32


def test_corrupt_and_foreign_files_are_refused(codec, tmp_path):
    path = tmp_path / "m.safetensors"
    checkpoint.save(codec, path)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # flip bits inside the last tensor
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(bytes(data))
    with pytest.raises(checkpoint.CheckpointError, match="model_sha"):
        checkpoint.load(bad)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(checkpoint.CheckpointError, match="safetensors"):
        checkpoint.load(junk)
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"x": torch.zeros(2)}, str(foreign))
    with pytest.raises(checkpoint.CheckpointError, match="format"):
        checkpoint.load(foreign)
    with pytest.raises(FileNotFoundError):
        checkpoint.load(tmp_path / "missing.safetensors")
