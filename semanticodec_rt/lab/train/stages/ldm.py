"""Stage ``ldm``: latent-diffusion UNet and acoustic encoder (LSTM + EMA VQ) trained jointly.

Frozen inputs: the ViT (``mae``), the semantic codebook of the config's vocab (``kmeans``) and
the VAE encoder (``vae``).  Each item is a crop of whole units, treated as a stream start so
the first windows are -1 filled exactly as the streaming decoder fills them:

1. unit features of the crop (:func:`unit_representation`, no gradient), semantic ids and
   centroids from the frozen codebook;
2. causal LSTM -> projection -> VQ with a straight-through estimator; the commitment loss
   ``|proj - sg(codeword)|^2`` trains the LSTM, the codebook follows by EMA in ``after_step``
   (cluster sizes and sums with ``vq_decay``, codes whose cluster size falls under
   ``dead_code_threshold`` re-seeded from batch vectors);
3. one decoder window per unit: the ``[acoustic || semantic]`` features of the window's units
   (:func:`unit_windows`), positional channels appended (:func:`make_contexts`); with probability
   ``cond_drop`` the unconditional context replaces it (classifier-free guidance);
4. target: the VAE posterior mean of the window's log-mel (the audio the window covers, zeros
   before the crop) times ``scale_factor``, fixed at the first step to 1 / std of the latents
   of ``scale_batches`` batches (the LDM recipe);
5. v-prediction MSE at a uniform timestep of the 1000-step schedule.

Exported: the trained parts under their :class:`SemantiCodec` checkpoint names
(``encoder.encoder.*``, ``encoder.encoder_output_linear.weight``, ``encoder.quantizer.*``,
``decoder.model.diffusion_model.*``, ``decoder.scale_factor``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .... import ops
from ....decoder.conditioning import make_contexts
from ....decoder.diffusion.schedule import make_schedule
from ....decoder.diffusion.unet import UNet
from ....decoder.synthesis.vae import AutoencoderKL
from ....encoder.acoustic import build_acoustic_lstm, build_acoustic_projection
from ....encoder.positional import PositionalEncoding
from ....encoder.vq import AcousticVQ
from ....windowing.unit_grid import unit_representation, unit_windows
from ..distributed import all_sum, gather_batch
from ..teacher import crop_samples, window_latents, windows_per_crop
from .base import Stage
from .kmeans import frozen_encoder


class JointModel(nn.Module):
    """The trainable parts: acoustic LSTM + projection + VQ buffers, and the UNet."""

    def __init__(self, cfg) -> None:
        super().__init__()
        f = cfg.feature_dim
        self.encoder = build_acoustic_lstm(f, cfg.acoustic)
        self.encoder_output_linear = build_acoustic_projection(f, cfg.acoustic)
        self.quantizer = AcousticVQ(f, cfg.acoustic.codebook_size)
        self.quantizer._codebook.initted.fill_(False)
        self.unet = UNet(cfg.unet, context_dim=cfg.context_dim)
        self.register_buffer("scale_factor", torch.tensor(1.0))
        self.register_buffer("scale_initted", torch.tensor(False))


class LDMStage(Stage):
    name = "ldm"
    needs = ("mae", "kmeans", "vae")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        cfg = self.cfg
        self.encoder = frozen_encoder(self)
        books = self.load_final("kmeans")
        key = f"codebook.v{cfg.semantic_vocab_size}"
        if key not in books:
            raise ValueError(f"kmeans stage has no {key} (fitted: {sorted(books)}); "
                             f"add {cfg.semantic_vocab_size} to kmeans.vocabs")
        self.encoder.load_semantic_codebook(books[key].cpu())
        self.encoder.to(self.device)
        vae_w = self.load_final("vae")
        self.vae = AutoencoderKL(cfg.vae, vocoder=None, with_encoder=True)
        self.vae.load_state_dict({k[len("first_stage_model."):]: v.cpu() for k, v in vae_w.items()})
        self.vae.requires_grad_(False)
        self.vae.eval().to(self.device)
        torch.manual_seed(self.tcfg.seed + 3)
        self.model = JointModel(cfg)
        self.groups = {"model": self.model}
        sched = make_schedule(cfg.diffusion)
        self.sqrt_ac = sched["sqrt_alphas_cumprod"].to(self.device)
        self.sqrt_1mac = sched["sqrt_one_minus_alphas_cumprod"].to(self.device)
        self.pe = PositionalEncoding(cfg.pe_len, cfg.pe_dim).pe[0].to(self.device)
        self.samples = crop_samples(cfg, self.settings.crop_seconds)
        self.units = windows_per_crop(cfg, self.samples)

    # -- data --------------------------------------------------------------------------------------
    def global_batch(self, step, salt: int = 0):
        s, cfg = self.settings, self.cfg
        batch = self.data.crops(step, s.batch, self.samples, salt=salt)
        g = self.data.generator(step, salt=salt)
        lat = (s.batch, self.units, *(cfg.diffusion.latent_channels, cfg.diffusion.latent_t, cfg.diffusion.latent_f))
        batch["t"] = torch.randint(0, cfg.diffusion.timesteps, (s.batch, self.units), generator=g)
        batch["eps"] = torch.randn(lat, generator=g)
        batch["drop"] = torch.rand(s.batch, self.units, generator=g) < s.cond_drop
        return batch

    # -- pieces ------------------------------------------------------------------------------------
    def target_latents(self, audio: torch.Tensor) -> torch.Tensor:
        """``[B, n]`` crops -> ``[B * units, C, T_l, F_l]`` unscaled VAE means of every window."""
        return window_latents(self.vae, self.cfg, audio)

    def _init_scale(self) -> None:
        lat = []
        for i in range(self.settings.scale_batches):
            audio = self.global_batch(0, salt=100 + i)["audio"].to(self.device)
            lat.append(self.target_latents(audio))
        std = torch.cat(lat).float().std()
        self.model.scale_factor.fill_(float(1.0 / std.clamp(min=1e-6)))
        self.model.scale_initted.fill_(True)

    def _init_codebook(self, x: torch.Tensor, step: int) -> None:
        vq = self.model.quantizer._codebook
        g = self.data.generator(step, salt=7)
        k = vq.embed.shape[1]
        idx = torch.randint(0, x.shape[0], (k,), generator=g).to(x.device)
        jitter = 0.01 * x.std() * torch.randn(k, x.shape[1], generator=g).to(x)
        vq.embed[0] = x[idx] + jitter
        vq.embed_avg[0] = vq.embed[0].clone()
        vq.cluster_size.fill_(1.0)
        vq.initted.fill_(True)

    def features(self, audio: torch.Tensor):
        """Crops -> (decoder window features ``[B*units, Tw, 2F]``, projection out, VQ ids)."""
        cfg, m = self.cfg, self.model
        with torch.no_grad():
            rep = unit_representation(self.encoder, cfg, audio)
            sem = self.encoder.semantic_quantizer.quantize(rep)
            centroid = self.encoder.semantic_quantizer.dequantize(sem).to(rep.dtype)
        hidden, _ = m.encoder(torch.cat([rep, centroid], dim=-1))
        proj = m.encoder_output_linear(hidden)
        if not bool(m.quantizer._codebook.initted):  # first step: seed the codebook from the projections
            self._init_codebook(gather_batch(proj.detach().reshape(-1, proj.shape[-1]), self.world), 0)
        ids = ops.nearest_centroid(proj.detach().reshape(-1, proj.shape[-1]).float(), m.quantizer.embed.float())
        ids = ids.reshape(proj.shape[:2])
        code = m.quantizer.dequantize(ids)
        quant = proj + (code - proj).detach()  # straight-through
        feats = torch.cat([quant, centroid], dim=-1)
        windows = unit_windows(feats, cfg, self.units)  # [B, units, Tw, 2F]
        return windows.flatten(0, 1), proj, ids, code

    # -- loss --------------------------------------------------------------------------------------
    def loss(self, group, batch, cache):
        m, s = self.model, self.settings
        if not bool(m.scale_initted):
            self._init_scale()
        audio = batch["audio"]
        windows, proj, ids, code = self.features(audio)
        commit = F.mse_loss(proj, code.detach())
        cond, uncond = make_contexts(windows, self.pe)
        drop = batch["drop"].reshape(-1, 1, 1)
        context = torch.where(drop, uncond, cond)
        z0 = self.target_latents(audio) * m.scale_factor
        t = batch["t"].reshape(-1)
        eps = batch["eps"].reshape(-1, *z0.shape[1:])
        a, b = self.sqrt_ac[t].view(-1, 1, 1, 1), self.sqrt_1mac[t].view(-1, 1, 1, 1)
        x_t = a * z0 + b * eps
        v = a * eps - b * z0
        pred = m.unet(x_t, t, context, None)
        diff = F.mse_loss(pred, v)
        loss = diff + s.commitment_weight * commit
        cache.update(proj=proj.detach(), ids=ids)
        return loss, {"loss": loss.item(), "loss_v": diff.item(), "commit": commit.item()}

    @torch.no_grad()
    def after_step(self, step, batch, cache):
        """EMA codebook update from the step's projections (summed over processes)."""
        vq = self.model.quantizer._codebook
        s = self.settings
        x = cache["proj"].reshape(-1, cache["proj"].shape[-1]).float()
        ids = cache["ids"].reshape(-1)
        k = vq.embed.shape[1]
        counts = all_sum(torch.bincount(ids, minlength=k).float(), self.world)
        sums = all_sum(torch.zeros(k, x.shape[1], device=x.device).index_add_(0, ids, x), self.world)
        vq.cluster_size[0].mul_(s.vq_decay).add_(counts, alpha=1 - s.vq_decay)
        vq.embed_avg[0].mul_(s.vq_decay).add_(sums, alpha=1 - s.vq_decay)
        n = vq.cluster_size[0].sum()
        smoothed = (vq.cluster_size[0] + 1e-5) / (n + k * 1e-5) * n  # Laplace smoothing
        vq.embed[0] = vq.embed_avg[0] / smoothed.unsqueeze(1)
        dead = (vq.cluster_size[0] < s.dead_code_threshold).nonzero().flatten()
        if dead.numel():
            pool = gather_batch(x, self.world)
            g = self.data.generator(step, salt=8)
            pick = torch.randint(0, pool.shape[0], (dead.numel(),), generator=g).to(pool.device)
            vq.embed[0, dead] = pool[pick]
            vq.embed_avg[0, dead] = pool[pick]
            vq.cluster_size[0, dead] = 1.0
        used = float((counts > 0).float().mean())
        p = counts / counts.sum()
        perplexity = float(torch.exp(-(p[p > 0] * p[p > 0].log()).sum()))
        return {"vq_used": used, "vq_perplexity": perplexity, "vq_reseeded": float(dead.numel())}

    def export(self, weights):
        out = {}
        for k, v in weights.items():
            if k.startswith("unet."):
                out["decoder.model.diffusion_model." + k[len("unet."):]] = v
            elif k == "scale_factor":
                out["decoder.scale_factor"] = v
            elif k == "scale_initted":
                continue
            else:
                out["encoder." + k] = v
        return out
