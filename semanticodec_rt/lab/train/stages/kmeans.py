"""Stage ``kmeans``: the semantic codebooks, mini-batch k-means on frozen ViT features.

Features are what the encoder quantises at inference: every unit's grouped ViT token features
(:func:`~semanticodec_rt.windowing.unit_grid.unit_representation`, the stack factor of the
config's token rate), from the ``mae`` stage's weights.  Several codebook sizes (``vocabs``) are
fitted side by side from the same features.

* Start: ``K`` distinct features drawn from ``init_crops`` crops (with replacement plus a tiny
  jitter if there are fewer features than centroids).
* Each step: assign the batch with :func:`semanticodec_rt.ops.nearest_centroid` (the exact
  fused kernel), then move every centroid to the running mean of all features it has been
  given (per-centroid rate 1/count, Sculley's mini-batch k-means).  Counts and sums are summed
  over data-parallel processes.
* Centroids unused for ``dead_after`` steps are re-seeded at the batch features farthest from
  their centroids, their counts reset.

``finish`` writes ``usage-v<K>.json`` per codebook (assignments of ``stats_crops`` crops of the
valid split, else train: used fraction, perplexity, largest share, quantisation error).
Exported: ``codebook.v<K>`` ``[K, F]`` float32.
"""

from __future__ import annotations

import json
import math

import torch

from .... import ops
from ....encoder.codec_encoder import SemantiCodecEncoder
from ....windowing.unit_grid import unit_representation
from ..data import CropSource, TrainDataError
from ..distributed import gather_batch
from ..teacher import crop_samples
from .base import Stage


def frozen_encoder(stage: Stage) -> SemantiCodecEncoder:
    """The semantic encoder with the ``mae`` stage's ViT weights, in eval mode, no gradients."""
    enc = SemantiCodecEncoder(stage.cfg, with_mae_decoder=False)
    weights = stage.load_final("mae")
    missing = [k for k in enc.state_dict() if k.startswith("audiomae.") and k not in weights]
    if missing:
        raise ValueError(f"mae final weights miss {missing[:3]} (another config?)")
    enc.load_state_dict({**enc.state_dict(), **{k: v.cpu() for k, v in weights.items()}})
    enc.requires_grad_(False)
    return enc.eval().to(stage.device)


class KMeansStage(Stage):
    name = "kmeans"
    needs = ("mae",)
    export_group = ""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.encoder = frozen_encoder(self)
        self.samples = crop_samples(self.cfg, self.settings.crop_seconds)
        self.centroids: dict[int, torch.Tensor] = {}
        self.counts: dict[int, torch.Tensor] = {}
        self.last_used: dict[int, torch.Tensor] = {}

    @torch.no_grad()
    def features(self, audio: torch.Tensor) -> torch.Tensor:
        """``[B, n]`` audio -> ``[B * tokens, F]`` float32 unit features."""
        rep = unit_representation(self.encoder, self.cfg, audio.to(self.device))
        return rep.reshape(-1, rep.shape[-1]).float()

    def global_batch(self, step: int) -> dict:
        return self.data.crops(step, self.settings.batch, self.samples)

    def _init(self) -> None:
        s = self.settings
        crops = self.data.crops(0, s.init_crops, self.samples, salt=1)["audio"]
        feats = torch.cat([self.features(crops[i : i + 32]) for i in range(0, len(crops), 32)])
        g = self.data.generator(0, salt=1)
        for k in s.vocabs:
            if feats.shape[0] >= k:
                idx = torch.randperm(feats.shape[0], generator=g)[:k]
                c = feats[idx.to(feats.device)].clone()
            else:
                idx = torch.randint(0, feats.shape[0], (k,), generator=g)
                jitter = 1e-3 * torch.randn(k, feats.shape[1], generator=g).to(feats)
                c = feats[idx.to(feats.device)] + jitter * feats.std()
            self.centroids[k] = c
            self.counts[k] = torch.zeros(k, dtype=torch.float64, device=feats.device)
            self.last_used[k] = torch.zeros(k, dtype=torch.int64, device=feats.device)

    def loss(self, group, batch, cache):  # no gradient groups
        raise RuntimeError("kmeans has no gradient step")

    @torch.no_grad()
    def after_step(self, step, batch, cache):
        if not self.centroids:
            self._init()
        x = gather_batch(self.features(batch["audio"]), self.world)
        logs = {}
        for k, c in self.centroids.items():
            ids = ops.nearest_centroid(x, c)
            err = (x - c[ids]).pow(2).sum(-1)
            n = torch.bincount(ids, minlength=k).to(torch.float64)
            sums = torch.zeros(k, x.shape[1], dtype=torch.float64, device=x.device).index_add_(0, ids, x.double())
            self.counts[k] += n
            hit = n > 0
            rate = (n[hit] / self.counts[k][hit]).unsqueeze(1)
            mean = sums[hit] / n[hit].unsqueeze(1)
            c[hit] = (c[hit].double() + rate * (mean - c[hit].double())).float()
            self.last_used[k][hit] = step
            dead = (step - self.last_used[k] > self.settings.dead_after).nonzero().flatten()
            if dead.numel():
                far = err.argsort(descending=True)[: dead.numel()]
                c[dead[: far.numel()]] = x[far]
                self.counts[k][dead[: far.numel()]] = 0
                self.last_used[k][dead[: far.numel()]] = step
            logs[f"loss_v{k}"] = float(err.mean())
            logs[f"used_v{k}"] = float(hit.double().mean())
            logs[f"reseeded_v{k}"] = float(dead.numel())
        return logs

    def extra_state(self):
        return {"centroids": self.centroids, "counts": self.counts, "last_used": self.last_used}

    def load_extra_state(self, state):
        dev = self.device
        self.centroids = {int(k): v.to(dev) for k, v in state["centroids"].items()}
        self.counts = {int(k): v.to(dev) for k, v in state["counts"].items()}
        self.last_used = {int(k): v.to(dev) for k, v in state["last_used"].items()}

    def export(self, weights):
        return {f"codebook.v{k}": c.detach().cpu().float() for k, c in self.centroids.items()}

    @torch.no_grad()
    def finish(self, final):
        """Usage statistics of every codebook on held-out crops; written next to the weights."""
        try:
            source = CropSource(self.data.manifest, "valid", self.tcfg.class_weights, self.tcfg.seed)
        except TrainDataError:
            source = self.data
        crops = source.crops(0, self.settings.stats_crops, self.samples, salt=2)["audio"]
        x = torch.cat([self.features(crops[i : i + 32]) for i in range(0, len(crops), 32)])
        summary = {}
        for k, c in self.centroids.items():
            ids = ops.nearest_centroid(x, c)
            n = torch.bincount(ids, minlength=k).double()
            p = n / n.sum()
            nz = p[p > 0]
            stats = {
                "vocab": k,
                "features": int(x.shape[0]),
                "split": source.split,
                "used_fraction": float((n > 0).double().mean()),
                "perplexity": float(math.exp(float(-(nz * nz.log()).sum()))),
                "largest_share": float(p.max()),
                "mse": float((x - c[ids]).pow(2).sum(-1).mean()),
                "feature_variance": float(x.var(0).sum()),
            }
            (self.stage_dir() / f"usage-v{k}.json").write_text(json.dumps(stats, indent=1) + "\n")
            summary[f"v{k}"] = stats
        return summary
