"""Stage ``vae``: the mel VAE (AutoencoderKL) of the decoder.

Items are log-mel crops (:func:`semanticodec_rt.audio.mel.log_mel`, 64 bins, 10 ms) of
``crop_seconds``.  Loss per item, divided by the mel size so it reads as a per-bin number:
``sum |decode(z) - mel| + kl_weight * KL(q(z|mel) || N(0, I))`` with ``z`` a reparameterised
draw, plus, when ``adversarial_weight > 0`` and past ``adversarial_start``, a least-squares
patch-GAN term (the discriminator is then a second group updated first).

Exported: ``first_stage_model.{encoder, quant_conv, decoder, post_quant_conv}.*`` (the
decoder's keys; the encoder is kept because the ``ldm`` stage encodes its targets with it).
"""

from __future__ import annotations

import torch

from ....audio.mel import HOP, log_mel
from ....decoder.synthesis.vae import AutoencoderKL
from ..discriminators import PatchDiscriminator
from ..losses import discriminator_loss, generator_loss
from .base import Stage


class VAEStage(Stage):
    name = "vae"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        torch.manual_seed(self.tcfg.seed + 1)
        self.vae = AutoencoderKL(self.cfg.vae, vocoder=None, with_encoder=True)
        frames = max(4, int(round(self.settings.crop_seconds * 100 / 4)) * 4)  # whole latent frames
        self.frames = frames
        self.groups = {}
        if self.settings.adversarial_weight > 0:
            self.disc = PatchDiscriminator()
            self.groups["disc"] = self.disc
        self.groups["model"] = self.vae

    def global_batch(self, step):
        s = self.settings
        batch = self.data.crops(step, s.batch, self.frames * HOP)
        lat = (s.batch, self.cfg.vae.embed_dim, self.frames // 4, self.cfg.vae.mel_bins // 4)
        batch["eps"] = torch.randn(lat, generator=self.data.generator(step))
        batch["step"] = step
        return batch

    def loss(self, group, batch, cache):
        if "rec" not in cache:
            mel = log_mel(batch["audio"]).unsqueeze(1)  # [B, 1, T, 64]
            post = self.vae.encode(mel)
            z = post.mean + post.std * batch["eps"]
            cache.update(mel=mel, post=post, rec=self.vae.decode(z))
        mel, post, rec = cache["mel"], cache["post"], cache["rec"]
        s = self.settings
        if group == "disc":
            real, _ = self.disc(mel)
            fake, _ = self.disc(rec.detach())
            d = discriminator_loss(real, fake)
            return d, {"loss_disc": d.item()}
        size = mel[0].numel()
        l1 = (rec - mel).abs().sum(dim=(1, 2, 3)).mean() / size
        kl = post.kl().mean() / size
        loss = l1 + s.kl_weight * kl
        logs = {"loss": loss.item(), "l1": l1.item(), "kl_per_bin": kl.item()}
        if "disc" in self.groups and batch["step"] >= s.adversarial_start:
            fake, _ = self.disc(rec)
            g = generator_loss(fake)
            loss = loss + s.adversarial_weight * g
            logs["loss_gen_adv"] = g.item()
        return loss, logs

    def export(self, weights):
        return {f"first_stage_model.{k}": v for k, v in weights.items()}
