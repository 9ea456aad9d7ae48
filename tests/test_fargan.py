"""FARGAN (the opus 1.5 speech vocoder): weight import, the torch twin against the opus C reference.

The reference vectors (``tests/assets/fargan_ref.npz``, written by ``examples/import_fargan.py``)
are what ``fargan_demo`` of Debian's opus 1.5.2 (x86 AVX2 build) computes for the first 3 s of the
shipped speech clip: its 36 floats of features per 10 ms frame, and its synthesis from them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from semanticodec_rt.decoder.synthesis import fargan as fg
from semanticodec_rt.lab.eval.metrics import logmel_distance
from semanticodec_rt.weights.fargan import FARGAN_WEIGHTS, FarganWeightsError, load_fargan, read_provenance
from semanticodec_rt.weights.fargan_tables import TableError, fargan_tensors, read_c_tables

REPO = Path(__file__).resolve().parents[1]
REF = REPO / "tests" / "assets" / "fargan_ref.npz"
CLIP = REPO / "examples" / "audio" / "speech_en_dir-instr.flac"


@pytest.fixture(scope="module")
def model():
    return load_fargan()


@pytest.fixture(scope="module")
def ref():
    with np.load(REF) as z:
        return {k: z[k] for k in z.files}


def test_shipped_weights_have_provenance_and_the_published_size(model):
    meta = read_provenance(FARGAN_WEIGHTS)
    assert meta["source_tarball_sha256"] == "65c1d2f78b9f2fb20082c38cbe47c951ad5839345876e46941612ee87f9a7ce1"
    assert meta["source_file"] == "dnn/fargan_data.c" and "BSD-3-Clause" in meta["licence"]
    assert (FARGAN_WEIGHTS.parent / "FARGAN_LICENSE").read_text().count("Redistribution and use") == 1
    # 0.82 M parameters (the paper), the subias copies of the int8 layers' bias not counted
    n = sum(t.numel() for k, t in model.state_dict().items() if not k.endswith("subias"))
    assert n == 822_245
    assert abs(fg.gflop_per_second() - 0.61) < 0.01  # "~0.6 GFLOP per second of audio"


def test_a_damaged_weights_file_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    from semanticodec_rt.weights.fargan import read_provenance as meta_of

    tensors = load_file(str(FARGAN_WEIGHTS))
    tensors["sig_net_sig_dense_out.bias"] = tensors["sig_net_sig_dense_out.bias"] + 1e-3
    bad = tmp_path / "f.safetensors"
    save_file(tensors, str(bad), metadata=meta_of(FARGAN_WEIGHTS))
    with pytest.raises(FarganWeightsError, match="sha256"):
        load_fargan(bad)
    with pytest.raises(FarganWeightsError, match="missing"):
        load_fargan(tmp_path / "none.safetensors")


def _c_block_table(name: str, w: np.ndarray) -> str:
    """``w`` [out, in] int8 written the way opus stores it: 8 x 4 blocks."""
    n_out, n_in = w.shape
    blocked = w.reshape(n_out // 8, 8, n_in // 4, 4).transpose(0, 2, 1, 3).ravel()
    return f"static const opus_int8 {name}[{blocked.size}] = {{\n{','.join(map(str, blocked))}\n}};\n"


def _c_float_table(name: str, v: np.ndarray) -> str:
    return f"static const float {name}[{v.size}] = {{\n{','.join(repr(float(x)) for x in v.ravel())}\n}};\n"


def test_table_parser_undoes_the_block_layout_and_checks_the_bias(model):
    # A C source holding every FARGAN table, made from the shipped tensors with one int8 layer
    # replaced by a random matrix: parsing must give that matrix back.
    from safetensors.torch import load_file

    tensors = {k: v.numpy() for k, v in load_file(str(FARGAN_WEIGHTS)).items()}
    rng = np.random.default_rng(0)
    w = rng.integers(-128, 128, size=(128, 688), dtype=np.int8)
    tensors["sig_net_skip_dense.weight_int8"] = w
    scale, bias = tensors["sig_net_skip_dense.scale"], tensors["sig_net_skip_dense.bias"]
    tensors["sig_net_skip_dense.subias"] = (bias - 127.0 * scale * w.astype(np.float64).sum(1)).astype(np.float32)
    src = []
    for key, v in tensors.items():
        layer, kind = key.split(".")
        if kind == "weight_int8":
            src.append(_c_block_table(f"{layer}_weights_int8", v))
        elif kind == "weight":
            src.append(_c_float_table(f"{layer}_weights_float", v.T))  # opus: column-major
        else:
            src.append(_c_float_table(f"{layer}_{kind}", v))
    parsed = fargan_tensors(read_c_tables("".join(src)))
    assert np.array_equal(parsed["sig_net_skip_dense.weight_int8"].numpy(), w)
    assert all(np.array_equal(parsed[k].numpy(), v) for k, v in tensors.items())
    # a subias that does not fit the layout/scale convention is refused
    tensors["sig_net_skip_dense.subias"] = tensors["sig_net_skip_dense.subias"] + 1.0
    src = "".join(_c_float_table("sig_net_skip_dense_subias", tensors["sig_net_skip_dense.subias"])
                  if s.startswith("static const float sig_net_skip_dense_subias") else s for s in src)
    with pytest.raises(TableError, match="subias"):
        fargan_tensors(read_c_tables(src))


@pytest.mark.parametrize("period", [32, 33, 40, 41, 42, 43, 44, 45, 100, 214, 254, 255, 256])
def test_pitch_prediction_indexes_like_the_c_loop(model, period):
    b = 3
    st = model.initial_state(b)
    st.pitch_buf = torch.randn(b, fg.PITCH_MAX)
    gain_1 = torch.tensor([0.5, 1.0, 3.0])
    ours = model._pitch_prediction(st, torch.full((b,), period), gain_1)
    pos = fg.PITCH_MAX - period - 2  # the C loop, literally
    want = []
    for _ in range(fg.SUBFRAME + 4):
        want.append(st.pitch_buf[:, max(0, pos)])
        pos += 1
        if pos == fg.PITCH_MAX:
            pos -= period
    want = (gain_1[:, None] * torch.stack(want, -1)).clamp(-1, 1)
    assert torch.equal(ours, want)


def test_streamed_frames_equal_one_call(model, ref):
    feats = torch.from_numpy(ref["features"][:40, :20])[None].repeat(2, 1, 1)
    feats[1] = feats[1].flip(0)  # a second, different stream in the batch
    with torch.no_grad():
        st = model.prime(feats[:, :5])
        whole, _ = model(feats[:, 5:], st)
        parts, s = [], st
        for a, b in ((5, 6), (6, 6), (6, 19), (19, 40)):
            y, s = model(feats[:, a:b], s)
            parts.append(y)
    assert torch.equal(torch.cat(parts, -1), whole)
    assert whole.shape == (2, 35 * fg.FRAME)


@pytest.mark.parametrize("quantized", [pytest.param(True, marks=pytest.mark.heavy), False])
def test_twin_agrees_with_the_opus_c_synthesis(model, ref, quantized):
    """Sample-exact agreement is not possible past the first frames (an autoregressive vocoder
    amplifies float-order differences); the bounds are on the first 50 ms and on spectra."""
    c = ref["c_synthesis"].astype(np.float32) / 32768
    ours = fg.to_int16(model.synthesize(torch.from_numpy(ref["features"])[None], quantized=quantized))
    ours = ours[0].numpy().astype(np.float32) / 32768
    assert ours.shape == c.shape
    # before the speech starts both are near-silent; they must agree to a few LSB
    assert np.abs(ours[:800] - c[:800]).max() * 32768 <= 10
    # the same sound: log-mel distance between the two far below what either is from the input
    d_twin = logmel_distance(c, ours)
    x, sr = sf.read(str(CLIP), dtype="float32")
    lag = 410  # the input sample the C output's first sample is aligned with (cross-correlation)
    orig = x[lag : lag + len(c)]
    d_c = logmel_distance(orig, c)
    assert d_twin < 0.3 < d_c
    assert abs(logmel_distance(orig, ours) - d_c) < 0.05


# -- the C++ streaming kernel (ops.fargan) -----------------------------------------------------------
@pytest.fixture(scope="module")
def kernel(model):
    from semanticodec_rt import ops

    if "cpp" not in ops.available_backends():
        pytest.skip("the C++ extension is not built (SCRT_REQUIRE_EXT=1 makes that a failure)")
    return model.kernel()


def test_kernel_equals_the_torch_twin(model, kernel, ref):
    feats = torch.from_numpy(ref["features"][:, :20])
    twin = model.synthesize(feats[None])[0]
    kernel.prime(feats[:5])
    ours = kernel.synthesize(feats[5:])
    assert ours.shape == twin.shape
    # the same arithmetic up to the order of the sums: float rounding on the first frame, and a
    # stream that stays on the same waveform (an autoregressive vocoder amplifies ulps slowly)
    assert (ours[:160] - twin[:160]).abs().max() < 1e-6
    assert (ours[:800] - twin[:800]).abs().max() * 32768 < 0.1
    assert logmel_distance(twin.numpy(), ours.numpy()) < 1e-3


def test_kernel_streams_any_number_of_frames_per_call(kernel, ref):
    feats = torch.from_numpy(ref["features"][:60])  # 36 columns: the kernel reads the first 20
    kernel.prime(feats[:5, :20].contiguous())
    whole = kernel.synthesize(feats[5:])
    kernel.prime(feats[:5, :20].contiguous())
    parts = [kernel.synthesize(feats[a:b]) for a, b in ((5, 6), (6, 6), (6, 23), (23, 60))]
    assert torch.equal(torch.cat(parts), whole) and whole.shape == (55 * fg.FRAME,)
    # priming again starts the same stream afresh
    kernel.prime(feats[:5, :20].contiguous())
    assert torch.equal(kernel.synthesize(feats[5:]), whole)


def test_kernel_rejects_bad_shapes(kernel):
    with pytest.raises(ValueError, match="20 columns"):
        kernel.synthesize(torch.zeros(3, 19))
    with pytest.raises(ValueError, match=r"\[5, 20\]"):
        kernel.prime(torch.zeros(4, 20))
    with pytest.raises(ValueError, match="320"):
        kernel.prime(torch.zeros(5, 20), torch.zeros(100))


@pytest.mark.heavy
def test_opus_analysis_gives_the_reference_features(ref):
    """The training-set-up analysis (opus's own, built from the same source) reproduces the
    reference vectors' features of the shipped clip exactly."""
    from conftest import unavailable

    from semanticodec_rt.lab.data import DataError, opus_source

    try:
        opus_source.tools()
    except DataError as e:
        unavailable(f"the opus 1.5.2 source build is unavailable (Debian mirror, dpkg-dev, make): {e}")
    pcm, sr = sf.read(str(CLIP), dtype="int16")
    n = len(ref["features"]) * fg.FRAME
    feats = opus_source.fargan_features(pcm[:n])
    assert np.array_equal(feats, ref["features"])
    with pytest.raises(ValueError, match="int16"):
        opus_source.fargan_features(pcm[:n].astype(np.float32))
