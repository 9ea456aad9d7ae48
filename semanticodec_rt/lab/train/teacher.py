"""A trained codec as the teacher of ``train distill``: loading it, and its decoder windows.

Distillation needs three things from a teacher, whatever it was trained by:

* the codec itself (encoder to make tokens, the UNet to imitate, the config's windowing);
* the VAE *encoder*, to put real audio into the latent space (inference checkpoints drop it);
* per decoder window: the token features the UNet is conditioned on and the latent of the audio
  the window covers.

:func:`load_teacher` takes a run folder of our pipeline (``RUN``), the published checkpoints
(``official:DIR[:RATE[:VOCAB]]``) or a checkpoint file plus a VAE file; :func:`decoder_windows`
then gives ``(features, latents)`` for a batch of crops through the same code for the official
10.24 s windows and the streaming presets' per-unit windows.  The crop geometry
(:func:`crop_samples`, :func:`windows_per_crop`) and :func:`window_latents` serve the kmeans
and ldm stages too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ...audio.mel import log_mel
from ...config import CodecConfig
from ...decoder.synthesis.vae import AutoencoderKL
from ...windowing import windowing_for

_VAE_ENCODER_PREFIXES = ("first_stage_model.encoder.", "first_stage_model.quant_conv.")


@dataclass
class Teacher:
    """A frozen codec and its VAE encoder (``vae.encoder`` + ``vae.quant_conv``), both in eval mode."""

    codec: object  # SemantiCodec
    vae: AutoencoderKL
    spec: str

    @property
    def cfg(self) -> CodecConfig:
        return self.codec.cfg


def _vae_with_encoder(cfg: CodecConfig, weights: dict[str, torch.Tensor], where: str) -> AutoencoderKL:
    """An encoder-only-relevant :class:`AutoencoderKL` from ``first_stage_model.*`` tensors."""
    vae = AutoencoderKL(cfg.vae, vocoder=None, with_encoder=True)
    prefix = "first_stage_model."
    sd = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix) and not k.startswith(prefix + "vocoder.")}
    if not any(k.startswith(_VAE_ENCODER_PREFIXES) for k in weights):
        raise ValueError(f"{where} holds no VAE encoder ({', '.join(_VAE_ENCODER_PREFIXES)}*); distillation "
                         "needs it to put real audio into the latent space")
    missing, unexpected = vae.load_state_dict({k: v.float() for k, v in sd.items()}, strict=False)
    missing = [k for k in missing if k.startswith(("encoder.", "quant_conv."))]
    if missing or unexpected:
        raise ValueError(f"{where}: VAE weights do not fit the config (missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]})")
    return vae.requires_grad_(False).eval()


def load_teacher(spec: str, device: str | torch.device = "cpu", vae_path: str | None = None,
                 official_config: CodecConfig | None = None) -> Teacher:
    """Load a teacher from ``RUN`` (finished run folder), ``official:DIR[:RATE[:VOCAB]]`` or a
    checkpoint file (then ``vae_path``, a ``RUN/vae/final.safetensors``, gives the VAE encoder).

    ``official_config`` overrides the published architecture for ``official:`` folders (as
    :func:`~semanticodec_rt.weights.official.load_official` allows; tests use reduced widths).
    """
    from safetensors.torch import load_file

    if spec.startswith("official:"):
        from ...weights import official

        name, rate, vocab = official.parse_official_spec(spec[len("official:"):])
        if not name:
            raise ValueError("--teacher official:DIR[:RATE[:VOCAB]] needs a folder")
        folder = Path(name).expanduser()
        codec = official.load_official(folder, rate, vocab, device="cpu", config=official_config)
        dec_path = folder / official.checkpoint_subdir(rate) / "decoder.ckpt"
        weights = load_file(vae_path) if vae_path else official.read_state_dict(dec_path)
        vae = _vae_with_encoder(codec.cfg, weights, str(vae_path or dec_path))
    else:
        path = Path(spec).expanduser()
        if path.is_dir():
            from .assemble import assemble

            codec = assemble(path)
            vae_file = Path(vae_path) if vae_path else path / "vae" / "final.safetensors"
        else:
            from ...weights import checkpoint

            codec = checkpoint.load(path, "cpu")
            if vae_path is None:
                raise ValueError(f"--teacher {spec} is a checkpoint file without the VAE encoder; pass the run "
                                 "folder it came from, or the VAE weights (distill.vae=RUN/vae/final.safetensors)")
            vae_file = Path(vae_path)
        if not vae_file.exists():
            raise FileNotFoundError(f"{vae_file}: the teacher's VAE stage weights are missing")
        vae = _vae_with_encoder(codec.cfg, load_file(str(vae_file)), str(vae_file))
    codec.requires_grad_(False)
    return Teacher(codec.eval().to(device), vae.to(device), spec)


def crop_samples(cfg: CodecConfig, seconds: float) -> int:
    """Samples of one training crop (whole streaming units, or one official 10.24 s window)."""
    return windowing_for(cfg).crop_samples(seconds)


def windows_per_crop(cfg: CodecConfig, samples: int) -> int:
    """Decoder windows in a crop of ``samples``."""
    return windowing_for(cfg).windows_per_crop(samples)


@torch.no_grad()
def window_latents(vae: AutoencoderKL, cfg: CodecConfig, audio: torch.Tensor) -> torch.Tensor:
    """``[B, n]`` crops -> ``[B * W, C, T_l, F_l]`` unscaled VAE posterior means, one per decoder
    window (W per crop, :func:`windows_per_crop`; which audio each window covers is the
    windowing's ``mel_windows``)."""
    return vae.encode(windowing_for(cfg).mel_windows(log_mel, audio)).mode()


@torch.no_grad()
def window_features(codec, audio: torch.Tensor) -> torch.Tensor:
    """``[B, n]`` crops -> ``[B * W, Tw, 2F]`` decoder features (tokens from ``codec.encode``,
    then exactly the windows :meth:`SemantiCodec.decode` conditions on, ``-1`` filled)."""
    tokens = codec.encode(audio, codec.cfg.sample_rate)
    with torch.inference_mode():
        feats = codec.decoder_feature(tokens)
    feats = feats.clone()  # a normal tensor: inference-mode ones cannot enter an autograd graph
    windowing = codec.windowing
    return windowing.feature_windows(feats, windowing.windows_per_crop(audio.shape[1]))
