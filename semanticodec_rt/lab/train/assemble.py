"""Put a run's stage outputs together into one :class:`SemantiCodec` checkpoint.

``RUN/mae``, ``RUN/kmeans``, ``RUN/vae``, ``RUN/vocoder`` and ``RUN/ldm`` each hold a
``final.safetensors``; :func:`assemble` loads them into the model of the run's config and
:func:`export` writes the standard checkpoint (:mod:`semanticodec_rt.weights.checkpoint`) that every
command takes with ``--model PATH``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .configs import STAGES, from_dict


def run_config(run_dir: str | Path):
    """The :class:`TrainConfig` a run was trained with (from its stage folders)."""
    run_dir = Path(run_dir)
    for stage in STAGES:
        p = run_dir / stage / "config.json"
        if p.exists():
            return from_dict(json.loads(p.read_text()))
    raise FileNotFoundError(f"{run_dir}: no stage folder with a config.json (not a run folder?)")


def assemble(run_dir: str | Path):
    """Build the trained :class:`SemantiCodec` from a finished run (all five stages)."""
    from safetensors.torch import load_file

    from ...codec import SemantiCodec
    from ...decoder.latent_diffusion import LatentDiffusionDecoder
    from ...encoder.codec_encoder import SemantiCodecEncoder

    run_dir = Path(run_dir)
    tcfg = run_config(run_dir)
    cfg = tcfg.model_config()
    finals = {}
    for stage in STAGES:
        p = run_dir / stage / "final.safetensors"
        if not p.exists():
            raise FileNotFoundError(f"{run_dir}: stage {stage!r} has not finished ({p} missing)")
        finals[stage] = load_file(str(p))
    encoder = SemantiCodecEncoder(cfg, with_mae_decoder=False)
    decoder = LatentDiffusionDecoder(cfg, with_vae_encoder=False)
    enc_sd, dec_sd = encoder.state_dict(), decoder.state_dict()
    for stage in ("mae", "ldm"):
        for k, v in finals[stage].items():
            if k.startswith("encoder."):
                enc_sd[k[len("encoder."):]] = v
            elif k.startswith("decoder."):
                dec_sd[k[len("decoder."):]] = v
            else:  # mae exports encoder-relative keys
                enc_sd[k] = v
    for stage in ("vae", "vocoder"):
        for k, v in finals[stage].items():
            if k.startswith(("first_stage_model.encoder.", "first_stage_model.quant_conv.")):
                continue  # training-only half of the VAE
            dec_sd[k] = v
    encoder.load_state_dict(enc_sd, strict=True)
    decoder.load_state_dict(dec_sd, strict=True)
    book = finals["kmeans"].get(f"codebook.v{cfg.semantic_vocab_size}")
    if book is None:
        raise ValueError(f"kmeans stage has no codebook of size {cfg.semantic_vocab_size}")
    encoder.load_semantic_codebook(book)
    return SemantiCodec(cfg, encoder, decoder).eval()


def export(run_dir: str | Path, out: str | Path | None = None, *, dtype: torch.dtype | None = None,
           storage: str | None = None) -> tuple[Path, str]:
    """Assemble and save; returns ``(path, model sha)``.  Default path: ``RUN/model.safetensors``.
    ``storage``: float32, float16 or int8 (:mod:`semanticodec_rt.weights.storage`)."""
    from ...weights import checkpoint

    codec = assemble(run_dir)
    path = Path(out) if out else Path(run_dir) / "model.safetensors"
    sha = checkpoint.save(codec, path, dtype=dtype, storage=storage, metadata={"run": Path(run_dir).name})
    return path, sha
