"""Encoder behaviour that the golden files do not pin down: batching, windows, input validation,
codebook loading, checkpoint-compatibility details.  Random weights, reduced widths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import golden_config

from semanticodec_rt.config import AcousticConfig
from semanticodec_rt.encoder.acoustic import AcousticEncoder
from semanticodec_rt.encoder.codec_encoder import SemantiCodecEncoder
from semanticodec_rt.encoder.grouping import patches_to_tokens, tokens_to_patches
from semanticodec_rt.encoder.kmeans import SemanticQuantizer
from semanticodec_rt.encoder.padding import mark_padding, padding_column_max
from semanticodec_rt.encoder.vit import AudioMAE
from semanticodec_rt.encoder.vq import AcousticVQ

SILENT = -1.2775938510894775  # normalised log-floor row of digital silence


def _mel(batch: int, windows: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 1024 * windows, 128, generator=g)


@pytest.fixture(scope="module", params=[100, 25], ids=lambda r: f"r{r}")
def encoder(request):
    """Random encoder whose codebooks are drawn from its own features, so the ids are diverse."""
    torch.manual_seed(request.param)
    enc = SemantiCodecEncoder(golden_config(request.param)).eval()
    enc.load_semantic_codebook(torch.randn(64, enc.cfg.feature_dim))
    with torch.no_grad():
        w = enc.encode_window(_mel(1, 1, seed=99))
        rows = torch.cat([w.representation[0], w.representation[0]])
        noise = 0.05 * torch.randn(64, rows.shape[1])
        enc.load_semantic_codebook(rows[torch.randperm(rows.shape[0])[:64]] + noise)
        w = enc.encode_window(_mel(1, 1, seed=98))
        lin = w.linear_output[0]
        k = enc.quantizer.codebook_size
        pick = torch.randint(0, lin.shape[0], (k,))
        enc.quantizer._codebook.embed.copy_((lin[pick] + 0.01 * torch.randn(k, lin.shape[1]))[None])
    return enc


# -- batching and windows --------------------------------------------------------------------
def test_batch_of_two_equals_two_single_runs(encoder):
    mel = _mel(2, 2, seed=1)
    mel[1, 1500:] = SILENT  # second item: silent tail in its second window
    with torch.no_grad():
        both = encoder(mel)
        singles = torch.cat([encoder(mel[i : i + 1]) for i in range(2)])
        w_both = encoder.encode_window(mel[:, 1024:])
        w_one = encoder.encode_window(mel[1:, 1024:])
    assert both.shape == (2, 2 * encoder.cfg.tokens_per_window, 2) and both.dtype == torch.int64
    assert torch.equal(both, singles)
    assert both[..., 1].unique().numel() > 4 and both[..., 0].unique().numel() > 4  # non-trivial
    torch.testing.assert_close(w_both.lstm_output[1:], w_one.lstm_output, atol=1e-5, rtol=0)
    assert int(w_both.first_marked[1]) < encoder.cfg.tokens_per_window


def test_windows_are_independent(encoder):
    mel = _mel(1, 2, seed=2)
    other = mel.clone()
    other[:, 1024:] = _mel(1, 1, seed=3)
    t_w = encoder.cfg.tokens_per_window
    with torch.no_grad():
        a, b = encoder(mel), encoder(other)
        first = encoder.encode_window(mel[:, :1024]).tokens
    assert torch.equal(a[:, :t_w], first)
    assert torch.equal(a[:, :t_w], b[:, :t_w])
    assert not torch.equal(a[:, t_w:], b[:, t_w:])


def test_intermediate_shapes(encoder):
    cfg = encoder.cfg
    f, t_w = cfg.feature_dim, cfg.tokens_per_window
    with torch.no_grad():
        (w,) = encoder.encode_windows(_mel(1, 1, seed=4))
    assert w.audiomae_embed.shape == (1, 513, cfg.vit.dim)
    for x in (w.representation, w.semantic_feature, w.linear_output, w.acoustic_feature):
        assert x.shape == (1, t_w, f)
    assert w.lstm_input.shape == (1, t_w, 2 * f) and w.lstm_output.shape == (1, t_w, 4 * f)
    assert w.quantized_feature.shape == (1, t_w, 2 * f + cfg.pe_dim)
    assert w.cutoff_fraction.dtype == torch.float64 and float(w.cutoff_fraction) == 1.0
    feat = encoder.tokens_to_feature(w.tokens)
    assert torch.equal(feat, w.quantized_feature[..., : 2 * f])  # nothing marked here


# -- input validation ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape",
    [(1024, 128), (1, 1000, 128), (1, 1024, 64), (1, 0, 128), (0, 1024, 128), (1, 1, 1024, 128)],
)
def test_bad_mel_shape_raises(encoder, shape):
    with pytest.raises(ValueError):
        encoder(torch.zeros(shape))


def test_bad_mel_type_raises(encoder):
    with pytest.raises(ValueError):
        encoder(torch.zeros(1, 1024, 128, dtype=torch.int64))
    with pytest.raises(ValueError):
        encoder(np.zeros((1, 1024, 128), np.float32))
    with pytest.raises(ValueError, match="one"):
        encoder.encode_window(torch.zeros(1, 2048, 128))


def test_tokens_to_feature_validation(encoder):
    n_sem = encoder.semantic_quantizer.num_centroids
    k = encoder.quantizer.codebook_size
    ok = torch.tensor([[[0, 0], [n_sem - 1, k - 1]]])
    assert encoder.tokens_to_feature(ok).shape == (1, 2, 2 * encoder.cfg.feature_dim)
    for bad in (
        torch.tensor([[[n_sem, 0]]]),
        torch.tensor([[[0, k]]]),
        torch.tensor([[[-1, 0]]]),
        torch.zeros(1, 2, 3, dtype=torch.int64),
        torch.zeros(2, 2, dtype=torch.int64),
        torch.zeros(1, 2, 2),
    ):
        with pytest.raises(ValueError):
            encoder.tokens_to_feature(bad)


def test_config_window_mismatch_raises():
    import dataclasses

    cfg = dataclasses.replace(golden_config(100), window_frames=512)
    with pytest.raises(ValueError):
        SemantiCodecEncoder(cfg)


# -- semantic codebook -----------------------------------------------------------------------
def test_codebook_npy_loading(tmp_path):
    f = 48
    rng = np.random.default_rng(0)
    cb = rng.standard_normal((37, f)).astype(np.float32)
    path = tmp_path / "codebook_2048_0.npy"
    np.save(path, cb)

    q = SemanticQuantizer(f)
    with pytest.raises(RuntimeError):
        q.quantize(torch.zeros(1, 2, f))
    q.load_codebook(path)
    assert q.num_centroids == 37  # N comes from the file, not from a vocab setting
    assert q.codebook.dtype == torch.float32
    assert "codebook" not in q.state_dict() and len(q.state_dict()) == 0
    ids = q.quantize(torch.from_numpy(cb[[5, 0, 36]])[None])
    assert ids.tolist() == [[5, 0, 36]]
    assert torch.equal(q.dequantize(ids)[0], torch.from_numpy(cb[[5, 0, 36]]))

    np.save(tmp_path / "f64.npy", cb.astype(np.float64))
    q.load_codebook(tmp_path / "f64.npy")
    assert q.codebook.dtype == torch.float32

    for bad_shape in ((37, f + 1), (f,), (2, 3, f)):
        bad = rng.standard_normal(bad_shape)
        np.save(tmp_path / "bad.npy", bad.astype(np.float32))
        with pytest.raises(ValueError):
            q.load_codebook(tmp_path / "bad.npy")
    with pytest.raises(ValueError):
        q.load_codebook(np.zeros((0, f), np.float32))
    with pytest.raises(ValueError):
        q.load_codebook(np.full((3, f), np.nan, np.float32))
    assert q.num_centroids == 37  # a failed load leaves the previous codebook


def test_encoder_codebook_not_in_state_dict(encoder):
    keys = encoder.state_dict().keys()
    assert not any(k.startswith(("semantic_quantizer", "positional")) for k in keys)
    roots = {k.split(".")[0] for k in keys}
    assert roots == {"audiomae", "encoder", "encoder_output_linear", "quantizer"}


# -- acoustic VQ and LSTM --------------------------------------------------------------------
def test_vq_buffers_and_legacy_initted():
    vq = AcousticVQ(8, 16)
    sd = vq.state_dict()
    names = ["initted", "cluster_size", "embed_avg", "embed"]
    assert list(sd) == [f"_codebook.{n}" for n in names]
    assert sd["_codebook.initted"].shape == () and sd["_codebook.initted"].dtype == torch.bool
    assert sd["_codebook.cluster_size"].shape == (1, 16)
    assert sd["_codebook.embed"].shape == sd["_codebook.embed_avg"].shape == (1, 16, 8)
    assert not list(vq.parameters())

    # Older vector-quantize-pytorch stored initted as float [1]; torch loads it into the 0-d bool.
    legacy = dict(sd)
    legacy["_codebook.initted"] = torch.tensor([1.0])
    legacy["_codebook.embed"] = torch.randn(1, 16, 8)
    fresh = AcousticVQ(8, 16)
    fresh.load_state_dict(legacy, strict=True)
    assert fresh._codebook.initted.shape == () and fresh._codebook.initted.dtype == torch.bool
    assert bool(fresh._codebook.initted)
    assert torch.equal(fresh.embed, legacy["_codebook.embed"][0])

    x = fresh.embed[[3, 15, 0]][None] + 1e-3
    ids = fresh.quantize(x)
    assert ids.tolist() == [[3, 15, 0]]
    assert torch.equal(fresh.dequantize(ids), fresh.embed[[3, 15, 0]][None])


def test_acoustic_encoder_directions():
    f = 6
    bi = AcousticEncoder(f, AcousticConfig(lstm_layers=2, bidirectional=True))
    uni = AcousticEncoder(f, AcousticConfig(lstm_layers=2, bidirectional=False))
    assert bi.encoder_output_linear.weight.shape == (f, 4 * f)
    assert bi.encoder_output_linear.bias is None
    assert uni.encoder_output_linear.weight.shape == (f, 2 * f)
    assert "encoder.weight_ih_l1_reverse" in bi.state_dict()
    assert "encoder.weight_ih_l1_reverse" not in uni.state_dict()
    h, y = bi(torch.randn(2, 5, 2 * f))
    assert h.shape == (2, 5, 4 * f) and y.shape == (2, 5, f)
    h, y = uni(torch.randn(2, 5, 2 * f))
    assert h.shape == (2, 5, 2 * f) and y.shape == (2, 5, f)


# -- small pieces ----------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 2, 4])
def test_grouping_order_and_inverse(k):
    grid_t, grid_f = 64, 8
    t = torch.arange(grid_t).repeat_interleave(grid_f)
    f = torch.arange(grid_f).repeat(grid_t)
    tagged = torch.stack([t, f], dim=-1).float()[None]  # patch p = 8t + f carries (t, f)
    tokens = patches_to_tokens(tagged, k)
    assert tokens.shape == (1, grid_t * grid_f // k, 2 * k)
    if k == 2:  # token (t, kk) = [patch(t, 2kk) | patch(t, 2kk+1)], index 4t + kk
        assert tokens[0, 4 * 5 + 3].tolist() == [5, 6, 5, 7]
    if k == 4:  # token (a, b) = [(2a,2b) | (2a,2b+1) | (2a+1,2b) | (2a+1,2b+1)], index 4a + b
        assert tokens[0, 4 * 7 + 2].tolist() == [14, 4, 14, 5, 15, 4, 15, 5]
    assert torch.equal(tokens_to_patches(tokens, k), tagged)
    with pytest.raises(ValueError):
        patches_to_tokens(tagged, 3)


def test_padding_rules():
    mel = torch.randn(5, 1024, 128)
    mel[1] = SILENT  # all empty
    mel[2, 1:] = SILENT  # exactly one non-empty frame -> reference exception path -> 0
    mel[3, 2:] = SILENT  # two non-empty frames -> 2
    mel[4, 100:900] = SILENT  # internal silence is not padding
    assert padding_column_max(mel).tolist() == [1024, 0, 0, 2, 1024]
    x = torch.randn(2, 6, 3)
    out = mark_padding(x, torch.tensor([6, 2]))
    assert torch.equal(out[0], x[0]) and torch.equal(out[1, :2], x[1, :2])
    assert torch.all(out[1, 2:] == -1)


def test_audiomae_decoder_option_and_shapes():
    cfg = golden_config(100).vit
    lean = AudioMAE(cfg, with_decoder=False)
    assert not any(k.startswith(("model.decoder", "model.mask_token")) for k in lean.state_dict())
    full = AudioMAE(cfg, with_decoder=True).model
    # MAE reconstruction head: keep 128 of 512 patches, restore the original order.
    b, p = 2, 512
    keep = 128
    ids_restore = torch.stack([torch.randperm(p) for _ in range(b)])
    latent = torch.randn(b, 1 + keep, cfg.dim)
    with torch.no_grad():
        pred = full.forward_decoder(latent, ids_restore)
    assert pred.shape == (b, p, cfg.patch * cfg.patch)
    with pytest.raises(RuntimeError):
        lean.model.forward_decoder(latent, ids_restore)
    with pytest.raises(ValueError):
        lean(torch.zeros(1, 512, 128))
