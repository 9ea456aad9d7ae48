"""int8 / float16 checkpoint storage (:mod:`semanticodec_rt.weights.storage`)."""

import pytest
import torch

from semanticodec_rt.codec import SemantiCodec
from semanticodec_rt.config import rt_config
from semanticodec_rt.weights import checkpoint
from semanticodec_rt.weights.storage import SCALE_SUFFIX, dequantize_int8, pack, quantize_int8, unpack

pytestmark = pytest.mark.cli


@pytest.mark.parametrize("shape", [(7, 300), (1, 33, 64), (5, 3, 3, 3), (2, 1), (9, 65, 2)])
def test_int8_rows_error_at_most_half_a_step(shape):
    g = torch.Generator().manual_seed(len(shape))
    t = torch.randn(shape, generator=g, dtype=torch.float64) * torch.logspace(-3, 1, shape[0], dtype=torch.float64).view(
        -1, *([1] * (len(shape) - 1)))
    q, scale = quantize_int8(t)
    assert q.dtype == torch.int8 and q.shape == t.shape and scale.dtype == torch.float16
    back = dequantize_int8(q, scale).double()
    rows = t.reshape(-1, shape[-1]) if shape[-1] >= 64 else t.reshape(shape[0], -1)
    assert scale.numel() == rows.shape[0]
    err = (back - t).reshape(rows.shape).abs()
    step = scale.double()[:, None]
    # half a step, plus the float16 rounding of the scale itself (relative 2^-11, times 127 steps)
    assert bool((err <= step * (0.5 + 127 * 2.0**-11) + 1e-12).all())


def test_zero_rows_and_small_tensors():
    t = torch.zeros(4, 4096 // 4 + 1)
    q, scale = quantize_int8(t)
    assert torch.equal(dequantize_int8(q, scale), t)
    packed = pack({"w": torch.randn(64, 64), "b": torch.randn(64), "tiny": torch.randn(8, 8), "i": torch.arange(3)}, "int8")
    assert packed["w"].dtype == torch.int8 and "w" + SCALE_SUFFIX in packed
    assert packed["b"].dtype == torch.float16 and packed["tiny"].dtype == torch.float16
    assert torch.equal(packed["i"], torch.arange(3))
    out = unpack(packed)
    assert set(out) == {"w", "b", "tiny", "i"} and out["w"].dtype == torch.float32
    with pytest.raises(ValueError, match="storage"):
        pack({}, "int4")


def test_int8_checkpoint_is_small_loads_and_decodes_close(tmp_path):
    codec = SemantiCodec.random(rt_config("rt-small", 100, 1024), seed=5)
    paths = {s: tmp_path / f"{s}.safetensors" for s in ("float32", "float16", "int8")}
    shas = {s: checkpoint.save(codec, p, storage=s) for s, p in paths.items()}
    size = {s: p.stat().st_size for s, p in paths.items()}
    assert size["int8"] < 0.32 * size["float32"] and size["float16"] < 0.51 * size["float32"]
    assert len(set(shas.values())) == 3
    loaded = checkpoint.load(paths["int8"])
    assert loaded.model_sha == shas["int8"] and checkpoint.read_metadata(paths["int8"])["storage"] == "int8"
    ref = codec.state_dict()
    for k, v in loaded.state_dict().items():
        if k.endswith(("embed_avg", "cluster_size")) or not v.is_floating_point():
            assert v.is_floating_point() or torch.equal(v, ref[k])
            continue  # training-only, rebuilt
        tol = 1.01 * float(ref[k].abs().max()) / 254 + 1e-3 * float(ref[k].abs().max())
        assert float((v - ref[k]).abs().max()) <= tol, k
    vq = loaded.encoder.quantizer._codebook
    assert torch.equal(vq.embed_avg, vq.embed)
    x = 0.2 * torch.randn(1, 8000, generator=torch.Generator().manual_seed(0))
    tok = loaded.encode(x, 16000)
    wave, ref_wave = loaded.decode(tok, steps=1), codec.decode(tok, steps=1)
    err = float((wave - ref_wave).norm() / ref_wave.norm())
    assert err < 0.25, err  # random weights amplify; trained models: see MODEL_CARD.md


def test_int8_file_with_edited_scale_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    codec = SemantiCodec.random(rt_config("rt-tiny", 100, 256), seed=3)
    path = tmp_path / "m.safetensors"
    checkpoint.save(codec, path, storage="int8")
    meta = checkpoint.read_metadata(path)
    t = load_file(str(path))
    k = next(k for k in t if k.endswith(SCALE_SUFFIX))
    t[k] = t[k] * 2
    save_file(t, str(path), metadata=meta)
    with pytest.raises(checkpoint.CheckpointError, match="model_sha"):
        checkpoint.load(path)


def test_int8_keeps_float16_prefixes(tmp_path):
    """Keys under ``keep_float16`` stay float16 (no int8 rows); the rest are still int8."""
    tensors = {"enc.lstm.w": torch.randn(128, 64), "enc.lstm2.w": torch.randn(128, 64), "dec.w": torch.randn(128, 64)}
    packed = pack(tensors, "int8", keep_float16=("enc.lstm.",))
    assert packed["enc.lstm.w"].dtype == torch.float16 and "enc.lstm.w" + SCALE_SUFFIX not in packed
    assert packed["enc.lstm2.w"].dtype == torch.int8 and packed["dec.w"].dtype == torch.int8
    back = unpack(packed)
    assert torch.equal(back["enc.lstm.w"], tensors["enc.lstm.w"].half().float())
    with pytest.raises(ValueError, match="int8 storage only"):
        pack(tensors, "float16", keep_float16=("enc.",))

    codec = SemantiCodec.random(rt_config("rt-small", 100, 1024), seed=5)
    path = tmp_path / "mixed.safetensors"
    with pytest.raises(ValueError, match="int8"):  # no storage given: it would save float32
        checkpoint.save(codec, path, keep_float16=("encoder.encoder.",))
    sha = checkpoint.save(codec, path, storage="int8", keep_float16=("encoder.encoder.",))
    meta = checkpoint.read_metadata(path)
    assert meta["storage"] == "int8" and meta["float16_prefixes"] == "encoder.encoder."
    loaded = checkpoint.load(path)
    assert loaded.model_sha == sha
    ref = codec.state_dict()
    for k, v in loaded.state_dict().items():
        if k.startswith("encoder.encoder.") and v.is_floating_point():
            assert torch.equal(v, ref[k].half().float()), k
