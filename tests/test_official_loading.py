"""Loading official-layout checkpoints: strict keys, ignored groups, clear errors."""

import dataclasses

import numpy as np
import pytest
import torch
from conftest import golden_config
from golden_checkpoints import decoder_state_dict, encoder_state_dict, write_official_folder

from semanticodec_rt.weights.official import (
    CheckpointMismatchError, checkpoint_subdir, codebook_relpath, load_official, official_paths,
    read_state_dict,
)

pytestmark = pytest.mark.golden

RATE = 100


@pytest.fixture()
def folder(tmp_path):
    return write_official_folder(tmp_path, RATE)


def _ckpt(folder, name):
    return folder / checkpoint_subdir(RATE) / name


def test_loads_and_ignores_unused_groups(folder):
    codec = load_official(folder, RATE, config=golden_config(RATE))
    enc_keys = set(codec.encoder.state_dict())
    dec_keys = set(codec.decoder.state_dict())
    assert not any(k.startswith("audiomae.model.decoder_") or k == "audiomae.model.mask_token" for k in enc_keys)
    assert not any(k.startswith(("model_ema.", "first_stage_model.encoder.")) or k == "logvar" for k in dec_keys)
    # nothing was left on the meta device, and the trained scale factor came from the file
    assert all(not t.is_meta for t in list(codec.parameters()) + list(codec.buffers()))
    assert abs(float(codec.decoder.scale_factor) - 0.618034) < 1e-6
    # the EMA copy in the file is all zeros; inference must use the raw UNet weights
    sd = decoder_state_dict(RATE)
    k = "model.diffusion_model.input_blocks.0.0.weight"
    assert torch.equal(codec.decoder.state_dict()[k], sd[k]) and sd[k].abs().sum() > 0


def test_accepts_the_rate_subfolder_itself(folder):
    cfg = golden_config(RATE)
    enc, dec, cb = official_paths(folder / checkpoint_subdir(RATE), cfg)
    assert enc.name == "encoder.ckpt" and cb == folder / codebook_relpath(cfg)


@pytest.mark.parametrize("edit", ["missing", "unexpected", "shape"])
@pytest.mark.parametrize("which", ["encoder.ckpt", "decoder.ckpt"])
def test_mismatch_names_the_key(folder, edit, which):
    path = _ckpt(folder, which)
    sd = torch.load(path, weights_only=True)
    key = "encoder.weight_hh_l0" if which == "encoder.ckpt" else "model.diffusion_model.out.2.weight"
    if edit == "missing":
        del sd[key]
    elif edit == "unexpected":
        key = "some.extra.key"
        sd[key] = torch.zeros(3)
    else:
        sd[key] = torch.zeros(2, 2)
    torch.save(sd, path)
    with pytest.raises(CheckpointMismatchError, match=key.replace(".", r"\.")):
        load_official(folder, RATE, config=golden_config(RATE))


def test_ignored_groups_are_still_checked(folder):
    """A wrong shape in an ignored group (EMA copy) is still an error: it means another model."""
    path = _ckpt(folder, "decoder.ckpt")
    sd = torch.load(path, weights_only=True)
    key = next(k for k in sd if k.startswith("model_ema.diffusion_model"))
    sd[key] = torch.zeros(1)
    torch.save(sd, path)
    with pytest.raises(CheckpointMismatchError, match=key):
        load_official(folder, RATE, config=golden_config(RATE))


def test_missing_files(tmp_path, folder):
    with pytest.raises(FileNotFoundError, match="checkpoint folder"):
        load_official(tmp_path / "nope", RATE, config=golden_config(RATE))
    (folder / codebook_relpath(golden_config(RATE))).unlink()
    with pytest.raises(FileNotFoundError, match="codebook"):
        load_official(folder, RATE, config=golden_config(RATE))


def test_codebook_size_read_from_file(folder):
    """N comes from the .npy; a config that says otherwise is corrected, with a warning."""
    cfg = dataclasses.replace(golden_config(RATE), semantic_vocab_size=1024)
    _, centroids = encoder_state_dict(RATE)
    cb = folder / codebook_relpath(cfg)
    cb.parent.mkdir(parents=True, exist_ok=True)
    np.save(cb, centroids)  # 512 rows under the name of a 1024 vocab
    with pytest.warns(UserWarning, match="512 centroids"):
        codec = load_official(folder, RATE, config=cfg)
    assert codec.cfg.semantic_vocab_size == 512


def test_wrong_codebook_width(folder):
    cfg = golden_config(RATE)
    np.save(folder / codebook_relpath(cfg), np.zeros((16, 7), np.float32))
    with pytest.raises(ValueError, match="F=7"):
        load_official(folder, RATE, config=cfg)


def test_never_unpickles_code(tmp_path):
    """weights_only loading refuses a pickle that would run code (here: create a file)."""
    import os
    import pickle

    marker = tmp_path / "code_ran"

    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    path = tmp_path / "evil.ckpt"
    torch.save({"x": Evil()}, path, pickle_module=pickle)
    with pytest.raises(pickle.UnpicklingError, match="weights_only"):
        read_state_dict(path)
    assert not marker.exists()


def test_not_a_state_dict(tmp_path):
    path = tmp_path / "list.ckpt"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(CheckpointMismatchError, match="not a state_dict"):
        read_state_dict(path)
