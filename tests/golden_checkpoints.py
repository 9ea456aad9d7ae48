"""Assemble official-layout checkpoint folders from the golden files (reduced widths).

The layout and key assembly follow golden/README.md: the decoder state_dict is built from the
UNet, VAE, vocoder and e2e files; the encoder from ``encoder_rR.npz``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from conftest import golden, golden_config, state_dict_from

from semanticodec_rt.weights.official import checkpoint_subdir, codebook_relpath


def decoder_state_dict(rate: int) -> dict[str, torch.Tensor]:
    e2e, _ = golden(f"e2e_r{rate}")
    sd: dict[str, torch.Tensor] = {}
    unet = state_dict_from(golden("unet_r100")[0])
    unet.update(state_dict_from(e2e, "sd_unet_override/"))
    sd.update({"model.diffusion_model." + k: v for k, v in unet.items()})
    sd.update({"first_stage_model." + k: v for k, v in state_dict_from(golden("vae_decoder")[0]).items()})
    sd.update({"first_stage_model.vocoder." + k: v for k, v in state_dict_from(golden("vocoder")[0]).items()})
    sd.update(state_dict_from(e2e, "sd_decoder_other/"))
    return sd


def encoder_state_dict(rate: int) -> tuple[dict[str, torch.Tensor], np.ndarray]:
    z, _ = golden(f"encoder_r{rate}")
    return state_dict_from(z), z["in/centroids"]


def write_official_folder(root: Path, rate: int) -> Path:
    """Write encoder.ckpt, decoder.ckpt and the codebook .npy the way the hub repo lays them out."""
    cfg = golden_config(rate)
    sub = root / checkpoint_subdir(rate)
    sub.mkdir(parents=True, exist_ok=True)
    enc, centroids = encoder_state_dict(rate)
    torch.save(enc, sub / "encoder.ckpt")
    torch.save(decoder_state_dict(rate), sub / "decoder.ckpt")
    cb = root / codebook_relpath(cfg)
    cb.parent.mkdir(parents=True, exist_ok=True)
    np.save(cb, centroids)
    return root
