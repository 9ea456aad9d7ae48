"""Stage ``vocoder``: the HiFi-GAN generator (log-mel -> 16 kHz waveform).

Items are audio segments of ``crop_seconds``; the generator hears their log-mel
(:func:`semanticodec_rt.audio.mel.log_mel`) and its output (``160 T + 32`` samples) is cut to the
segment.  Two groups, updated in order:

* ``disc`` -- multi-period + multi-scale discriminators, least-squares loss on real vs the
  detached generator output;
* ``model`` -- the generator: ``mel_weight * L1(log_mel(G(mel)), mel)`` + ``feature_weight *``
  feature matching + least-squares adversarial loss (the HiFi-GAN V1 recipe).

Before ``adversarial_start`` the discriminators are idle and the generator learns from the mel
loss alone: a CPU can afford that phase (the discriminators cost ~10x the generator), and
it gives the GAN phase a generator that already produces the right spectrum.

Why HiFi-GAN and not a lighter vocoder: the decoder architecture (and the official checkpoint)
fixes this interface, its cost on CPU is set by ``upsample_initial_channel`` (96 in rt-small,
a ~100x smaller network than the published 1024), and keeping one generator type lets the
official vocoder weights be fine-tuned with the same stage.

Exported: ``first_stage_model.vocoder.*``.
"""

from __future__ import annotations

import torch

from ....audio.mel import HOP, log_mel
from ....decoder.synthesis.hifigan import HiFiGAN
from ..discriminators import HiFiGANDiscriminator
from ..losses import discriminator_loss, feature_loss, generator_loss
from .base import Stage


class VocoderStage(Stage):
    name = "vocoder"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        torch.manual_seed(self.tcfg.seed + 2)
        self.generator = HiFiGAN(self.cfg.vocoder)
        self.disc = HiFiGANDiscriminator(width=self.settings.disc_width)
        self.groups = {"disc": self.disc, "model": self.generator}
        self.samples = max(1, int(round(self.settings.crop_seconds * 100))) * HOP

    def global_batch(self, step):
        batch = self.data.crops(step, self.settings.batch, self.samples)
        batch["step"] = step
        return batch

    def active_groups(self, step):
        # Before adversarial_start only the generator learns, from the mel loss alone.
        return list(self.groups) if step >= self.settings.adversarial_start else ["model"]

    def lr_factor(self, step):
        base = super().lr_factor(step)
        after = max(0, step - self.settings.warmup)
        return base * self.settings.lr_decay ** (after / 1000)

    def loss(self, group, batch, cache):
        if "fake" not in cache:
            real = batch["audio"]
            mel = log_mel(real)  # [B, T, 64]
            fake = self.generator(mel.transpose(1, 2))[..., : real.shape[-1]]  # [B, 1, n]
            cache.update(real=real.unsqueeze(1), mel=mel, fake=fake)
        real, mel, fake = cache["real"], cache["mel"], cache["fake"]
        s = self.settings
        if group == "disc":
            r, _ = self.disc(real)
            f, _ = self.disc(fake.detach())
            d = discriminator_loss(r, f)
            return d, {"loss_disc": d.item()}
        mel_l1 = (log_mel(fake.squeeze(1)) - mel).abs().mean()
        if batch["step"] < s.adversarial_start:
            loss = s.mel_weight * mel_l1
            return loss, {"loss": loss.item(), "mel_l1": mel_l1.item()}
        r, rf = self.disc(real)
        f, ff = self.disc(fake)
        adv, fm = generator_loss(f), feature_loss(rf, ff)
        loss = s.mel_weight * mel_l1 + s.feature_weight * fm + adv
        return loss, {"loss": loss.item(), "mel_l1": mel_l1.item(), "adv": adv.item(), "fm": fm.item()}

    def export(self, weights):
        return {f"first_stage_model.vocoder.{k}": v for k, v in weights.items()}
