"""Stage ``distill``: few-step students of a trained decoder, guidance folded in.

Progressive distillation (see :mod:`..progressive`) over the rounds of
:class:`~..configs.DistillSettings`, e.g. 64 -> 16 -> 4 -> 2 -> 1 steps:

* round 0: the teacher is the codec's UNet with two-branch classifier-free guidance of scale
  ``guidance``; the student (a copy of that UNet) sees only the conditional context, so one
  UNet call per step replaces two;
* round k > 0: the teacher is the student of round k - 1 as it stood at the end of that round
  (kept in the checkpoints' extra state for an exact resume), the new student continues from it.

Items are decoder windows of real crops (:func:`..teacher.decoder_windows`): the noisy latent
``z_t = sqrt(a) x0 + sqrt(1 - a) eps`` of the window's VAE latent at a uniformly drawn student
grid point, the target the v that reaches the teacher's result in one step; loss: MSE on v
(the SNR + 1 weighting of x0 errors).

At the end of every round ``RUN/distill/model-sN.safetensors`` holds the whole codec with that
student and its sampler (N steps, trailing grid, eta 0, guidance 1): ``--model`` takes it.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from ....config import SamplerConfig
from ....decoder.conditioning import make_contexts
from ..progressive import grid_alphas, target_v, teacher_walk
from ..teacher import crop_samples, load_teacher, window_features, window_latents, windows_per_crop
from .base import Stage


class Student(nn.Module):
    """The trainable UNet (named ``unet`` so its keys mirror the teacher's)."""

    def __init__(self, unet: nn.Module) -> None:
        super().__init__()
        self.unet = unet


class DistillStage(Stage):
    name = "distill"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        s = self.settings
        if not s.teacher:
            raise ValueError("distill needs a teacher: --teacher RUN | official:DIR[:RATE[:VOCAB]] | MODEL "
                             "(or --set distill.teacher=...)")
        rounds = tuple(int(r) for r in s.rounds)
        if len(rounds) < 2 or any(b < 1 or a % b or a <= b for a, b in zip(rounds, rounds[1:])):
            raise ValueError(f"distill.rounds must fall strictly and each count divide the one before, got {rounds}")
        if s.steps < len(rounds) - 1:
            raise ValueError(f"distill.steps ({s.steps}) must give every round at least one step")
        self.rounds = rounds
        self.teacher = load_teacher(s.teacher, self.device, s.vae or None)
        self.cfg = self.teacher.cfg  # the teacher's codec config, not the run's preset
        self.samples = crop_samples(self.cfg, s.crop_seconds)
        self.per_crop = windows_per_crop(self.cfg, self.samples)
        dec = self.teacher.codec.decoder
        self.scale = float(dec.scale_factor)
        self.pe = dec.pe.to(self.device)
        self.alphas_cumprod = dec.alphas_cumprod.detach().cpu()
        self.model = Student(copy.deepcopy(dec.unet).requires_grad_(True).train())
        self.groups = {"model": self.model}
        self.round = 0
        self.prev = None  # round > 0: the frozen previous student (the teacher)

    # -- rounds ------------------------------------------------------------------------------------
    @property
    def steps_per_round(self) -> int:
        return self.settings.steps // (len(self.rounds) - 1)

    def round_of(self, step: int) -> int:
        return min(step // self.steps_per_round, len(self.rounds) - 2)

    def _advance_to(self, k: int) -> None:
        """Close rounds ``self.round .. k - 1``: export each student, make it the next teacher."""
        while self.round < k:
            self.write_student(self.rounds[self.round + 1], self.model.unet.state_dict())
            self.prev = copy.deepcopy(self.model.unet).requires_grad_(False).eval()
            self.round += 1

    def lr_factor(self, step: int) -> float:
        """Warm-up then cosine to 10 % inside each round."""
        s, spr = self.settings, self.steps_per_round
        k = self.round_of(step)
        pos = step - k * spr
        span = spr if k < len(self.rounds) - 2 else s.steps - k * spr
        warm = min(s.warmup, max(1, span // 4))
        if pos < warm:
            return (pos + 1) / warm
        t = min(1.0, (pos - warm) / max(1, span - warm))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t))

    # -- data --------------------------------------------------------------------------------------
    def global_batch(self, step: int) -> dict:
        s = self.settings
        batch = self.data.crops(step, s.batch, self.samples)
        g = self.data.generator(step)
        lat = (self.cfg.diffusion.latent_channels, self.cfg.diffusion.latent_t, self.cfg.diffusion.latent_f)
        student_steps = self.rounds[self.round_of(step) + 1]
        # per window: student grid position j in 1..S and the noise of z_t
        batch["j"] = torch.randint(1, student_steps + 1, (s.batch, self.per_crop), generator=g)
        batch["eps"] = torch.randn((s.batch, self.per_crop, *lat), generator=g)
        return batch

    def batch(self, step: int) -> dict:
        self._advance_to(self.round_of(step))
        return super().batch(step)

    # -- loss --------------------------------------------------------------------------------------
    def _teacher_v(self, cond: torch.Tensor, uncond: torch.Tensor):
        if self.round == 0:
            unet, w = self.teacher.codec.decoder.unet, self.settings.guidance

            def v(z, t):
                out = unet(torch.cat([z, z]), torch.cat([t, t]), torch.cat([uncond, cond]), None)
                v_u, v_c = out.chunk(2)
                return v_u + w * (v_c - v_u)
        else:
            prev = self.prev

            def v(z, t):
                return prev(z, t, cond, None)

        return v

    def loss(self, group, batch, cache):
        audio = batch["audio"]
        with torch.no_grad():
            feats = window_features(self.teacher.codec, audio)
            cond, uncond = make_contexts(feats.to(self.device), self.pe)
            x0 = window_latents(self.teacher.vae, self.cfg, audio) * self.scale
            fine, coarse = self.rounds[self.round], self.rounds[self.round + 1]
            ratio = fine // coarse
            t_grid, a_grid = grid_alphas(self.alphas_cumprod, fine)
            index = batch["j"].reshape(-1).cpu() * ratio  # position on the teacher's grid
            a_t, a_s = a_grid[index], a_grid[index - ratio]
            eps = batch["eps"].reshape(x0.shape)
            z_t = a_t.sqrt().to(x0).view(-1, 1, 1, 1) * x0 + (1 - a_t).sqrt().to(x0).view(-1, 1, 1, 1) * eps
            z_s = teacher_walk(self._teacher_v(cond, uncond), z_t, index, ratio, t_grid, a_grid)
            v_star = target_v(z_t, z_s, a_t, a_s)
            t = t_grid[index - 1].to(self.device)
        pred = self.model.unet(z_t, t, cond, None)
        loss = F.mse_loss(pred, v_star)
        return loss, {"loss": loss.item(), "student_steps": float(coarse)}

    # -- state -------------------------------------------------------------------------------------
    def extra_state(self) -> dict:
        return {"round": self.round, "prev": None if self.prev is None else self.prev.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        self.round = int(state["round"])
        if state["prev"] is not None:
            self.prev = copy.deepcopy(self.model.unet).requires_grad_(False).eval()
            self.prev.load_state_dict(state["prev"])

    def export(self, weights):
        return {"decoder.model.diffusion_model." + k[len("unet."):]: v for k, v in weights.items()}

    def finish(self, final):
        prefix = "decoder.model.diffusion_model."
        path = self.write_student(self.rounds[-1], {k[len(prefix):]: v for k, v in final.items()})
        return {"students": [f"model-s{n}.safetensors" for n in self.rounds[1:]], "last": str(path)}

    # -- students as codecs ------------------------------------------------------------------------
    def student_codec(self, steps: int, unet_state: dict):
        """The teacher codec with this UNet and the student's sampler (``steps``, trailing grid)."""
        from ....codec import SemantiCodec
        from ....decoder.latent_diffusion import LatentDiffusionDecoder

        t = self.teacher.codec
        cfg = dataclasses.replace(
            t.cfg, name=f"{t.cfg.name}-distilled-s{steps}",
            sampler=SamplerConfig(steps=steps, eta=0.0, cfg_scale=1.0, spacing="trailing"),
        )
        dec = LatentDiffusionDecoder(cfg, with_vae_encoder=False)
        sd = {k: v.detach().cpu() for k, v in t.decoder.state_dict().items()}
        sd.update({"model.diffusion_model." + k: v.detach().cpu() for k, v in unet_state.items()})
        dec.load_state_dict(sd)
        return SemantiCodec(cfg, t.encoder, dec).eval()

    def write_student(self, steps: int, unet_state: dict):
        if not self.world.main:
            return None
        from ....weights import checkpoint

        path = self.stage_dir() / f"model-s{steps}.safetensors"
        path.parent.mkdir(parents=True, exist_ok=True)
        checkpoint.save(self.student_codec(steps, unet_state), path,
                        metadata={"teacher": self.settings.teacher, "distilled_steps": str(steps)})
        return path
