"""Copy synthesis: audio -> log-mel -> VAE -> vocoder, no tokens -- the decoder's quality ceiling.

Whatever the tokens and the diffusion model do, the decoded audio passes through the VAE decoder
and the vocoder, so these two alone, fed with the true mel (``vocoder``) or the VAE's
reconstruction of it (``vae+vocoder``), bound what the codec can reach.  Needs a run folder:
the VAE encoder is not part of an exported model.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from ...audio.mel import HOP, log_mel
from ...decoder.synthesis.hifigan import HiFiGAN
from ...decoder.synthesis.vae import AutoencoderKL
from .assemble import run_config

MODES = ("vae+vocoder", "vocoder")


class CopySynthesis(torch.nn.Module):
    """The run's VAE (with encoder) and vocoder, from their ``final.safetensors``."""

    def __init__(self, run_dir: str | Path) -> None:
        super().__init__()
        run_dir = Path(run_dir)
        cfg = run_config(run_dir).model_config()
        self.vae = AutoencoderKL(cfg.vae, vocoder=None, with_encoder=True)
        self.vocoder = HiFiGAN(cfg.vocoder)
        vae_w = load_file(str(run_dir / "vae" / "final.safetensors"))
        voc_w = load_file(str(run_dir / "vocoder" / "final.safetensors"))
        self.vae.load_state_dict({k.removeprefix("first_stage_model."): v for k, v in vae_w.items()})
        self.vocoder.load_state_dict({k.removeprefix("first_stage_model.vocoder."): v for k, v in voc_w.items()})
        self.eval()

    @torch.no_grad()
    def forward(self, wave: torch.Tensor, mode: str = "vae+vocoder") -> torch.Tensor:
        """``[B, n]`` 16 kHz -> ``[B, n]`` resynthesised (input zero-padded to whole latent frames)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        n = wave.shape[-1]
        quantum = 4 * HOP  # the VAE halves time twice
        padded = torch.nn.functional.pad(wave, (0, (-n) % quantum))
        if padded.shape[-1] == 0:
            padded = torch.zeros(wave.shape[0], quantum)
        mel = log_mel(padded)  # [B, T, 64]
        if mode == "vae+vocoder":
            mel = self.vae.decode(self.vae.encode(mel.unsqueeze(1)).mode()).squeeze(1)
        return self.vocoder(mel.transpose(1, 2))[:, 0, :n]
