"""AudioMAE ViT vs the official ``Vanilla_AudioMAE`` (golden/audiomae.npz, D=48, depth 12)."""

from __future__ import annotations

import pytest
import torch
from conftest import assert_close, atol, golden, golden_config, state_dict_from

from semanticodec_rt.encoder.vit import AudioMAE, audiomae_pos_embed

pytestmark = pytest.mark.golden


@pytest.fixture(scope="module")
def loaded():
    arrays, meta = golden("audiomae")
    model = AudioMAE(golden_config(100).vit, with_decoder=True).eval()
    model.load_state_dict(state_dict_from(arrays), strict=True)
    return model, arrays, meta


def test_state_dict_keys_and_order_match_official():
    arrays, _ = golden("audiomae")
    ours = AudioMAE(golden_config(100).vit).state_dict()
    ref = state_dict_from(arrays)
    assert list(ours) == list(ref)
    for k, v in ref.items():
        assert ours[k].shape == v.shape and ours[k].dtype == v.dtype, k


def test_fixed_tables_are_parameters_without_grad():
    model = AudioMAE(golden_config(100).vit).model
    assert isinstance(model.pos_embed, torch.nn.Parameter) and not model.pos_embed.requires_grad
    assert not model.decoder_pos_embed.requires_grad


def test_pos_embed_builder_reproduces_stored_layout():
    """Errata E1: row 1+p encodes (p mod 64 | p div 64); built tables equal the stored ones."""
    arrays, _ = golden("audiomae")
    for key, dim in (("model.pos_embed", 48), ("model.decoder_pos_embed", 16)):
        built = audiomae_pos_embed(dim)
        stored = torch.from_numpy(arrays["sd/" + key])
        assert built.shape == stored.shape
        assert_close(built, stored, 1e-7, key)
        assert torch.all(built[0, 0] == 0)


def test_patch_embed(loaded):
    model, arrays, meta = loaded
    with torch.no_grad():
        ours = model.model.patch_embed(torch.from_numpy(arrays["in/x"]))
    assert_close(ours, arrays["out/patch_embed"], atol(meta, "out/patch_embed"), "patch_embed")


def test_block_outputs(loaded):
    model, arrays, meta = loaded
    ref = arrays["out/block_outputs_tokens_0_128"]  # [12, B, 129, D]
    with torch.no_grad():
        x = model.model.embed(torch.from_numpy(arrays["in/x"]))
        outs = []
        for blk in model.model.blocks:
            x = blk(x)
            outs.append(x[:, : ref.shape[2]])
    assert_close(torch.stack(outs), ref, atol(meta, "out/block_outputs_tokens_0_128"), "blocks")


def test_output(loaded):
    model, arrays, meta = loaded
    with torch.no_grad():
        ours = model(torch.from_numpy(arrays["in/x"])[:, 0])  # wrapper takes [B, T, M]
    assert_close(ours, arrays["out/embed"], atol(meta, "out/embed"), "embed")


def test_without_decoder_same_output(loaded):
    model, arrays, meta = loaded
    lean = AudioMAE(golden_config(100).vit, with_decoder=False).eval()
    full_sd = model.state_dict()
    lean.load_state_dict({k: v for k, v in full_sd.items() if k in lean.state_dict()}, strict=True)
    assert not any("decoder" in k or "mask_token" in k for k in lean.state_dict())
    x = torch.from_numpy(arrays["in/x"])[:1, 0]
    with torch.no_grad():
        assert torch.equal(lean(x), model(x))
