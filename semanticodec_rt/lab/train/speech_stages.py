"""The speech route's training stages and their losses.

1. ``semantic`` -- the causal ViT learns, from its fbank patches alone, to predict the
   position's vocoder features (a throw-away regression head reads it).  Its features are what
   the k-means codebook then clusters: semantic ids that carry the coarse spectral content.
2. ``kmeans``   -- k-means of the frozen ViT's features over the train stream
   (``semantic_vocab_size`` centroids; assignment by the nearest-centroid kernel).
3. ``codec``    -- with the ViT and the codebook frozen, the acoustic encoder, its residual VQ
   and the regression decoder train together on a direct feature-reconstruction loss (L1 on the
   normalised cepstrum and pitch correlation, cross-entropy on the pitch bins, VQ commitment).
4. ``flow``     -- everything else frozen, the residual flow learns what the regression misses.

The general-audio route (models with ``speech.general_route``) adds two stages on the frozen
encoder and speech path, trained on the ``general`` mix of streams:

5. ``general``  -- the second regression path, same loss as ``codec``'s (warm-started from the
   speech path by :mod:`.general_run`);
6. ``router``   -- the router learns, per position, which path reconstructs it better (the lower
   feature loss), as a binary cross-entropy weighted by how much better.

Frozen parts stay in eval mode while a stage trains (:meth:`_FrozenStage.train`): the residual
VQ follows its batches in training mode, which a frozen encoder must not do.

Every stage maps a batch of :class:`~.speech_data.Crops` to ``(loss, logs)``; the loop
(:mod:`.speech_loop`) owns optimisers, checkpoints and resumption.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...decoder.speech.pitch import soft_targets
from ...decoder.speech.regression import FeatureRegressor
from .speech_data import HISTORY

PITCH_WEIGHT = 0.3
COMMIT_WEIGHT = 0.25
CODEC_STAGES = ("semantic", "codec", "flow")


def _feature_terms(decoder, cont: torch.Tensor, logits: torch.Tensor, target: torch.Tensor):
    """The two terms of the feature loss, unreduced: ``|error| [B, U', 4, 19]`` of the normalised
    continuous features and the pitch cross-entropy ``[B, U', 4]``."""
    l1 = (cont - decoder.normalise(target)).abs()
    ce = -(soft_targets(target[..., 18], logits.shape[-1]) * F.log_softmax(logits, -1)).sum(-1)
    return l1, ce


def feature_loss(decoder, cont: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Regression outputs vs raw target features ``[B, U', 4, 20]``."""
    l1, ce = _feature_terms(decoder, cont, logits, target)
    l1, pitch = l1.mean(), ce.mean()
    with torch.no_grad():
        hit = (logits.argmax(-1) - soft_targets(target[..., 18], logits.shape[-1]).argmax(-1)).abs() <= 2
    return l1 + PITCH_WEIGHT * pitch, {"l1": l1.item(), "pitch_ce": pitch.item(), "pitch_acc": hit.float().mean().item()}


def frames_of(encoder, audio: torch.Tensor) -> torch.Tensor:
    return encoder.frames(audio[:, HISTORY:], audio[:, :HISTORY])


@torch.no_grad()
def frozen_semantics(encoder, crops) -> tuple[torch.Tensor, torch.Tensor]:
    """``(frames, centroids [B, U, D])`` of crops through the frozen semantic branch."""
    frames = frames_of(encoder, crops.audio)
    q = encoder.semantic_quantizer
    return frames, q.dequantize(q.quantize(encoder.semantic_train(frames)))


class SemanticStage(nn.Module):
    """ViT + a throw-away regression head on its continuous features."""

    name = "semantic"

    def __init__(self, codec) -> None:
        super().__init__()
        sp = codec.cfg.speech
        self.encoder, self.decoder = codec.encoder, codec.decoder
        self.head = FeatureRegressor(codec.cfg.vit.dim, sp.dec_hidden, sp.unit_frames, sp.pitch_bins,
                                     sp.lookahead_units)

    def trainable(self) -> list[nn.Parameter]:
        return list(self.encoder.vit.parameters()) + list(self.head.parameters())

    def loss(self, crops) -> tuple[torch.Tensor, dict]:
        with torch.no_grad():
            frames = frames_of(self.encoder, crops.audio)
        sem = self.encoder.semantic_train(frames)
        cont, logits, _ = self.head(sem)
        n = cont.shape[1]
        return feature_loss(self.decoder, cont, logits, crops.features[:, :n])


class CodecStage(nn.Module):
    """Acoustic encoder + residual VQ + regression decoder on the frozen semantic branch."""

    name = "codec"

    def __init__(self, codec) -> None:
        super().__init__()
        self.encoder, self.decoder = codec.encoder, codec.decoder

    def trainable(self) -> list[nn.Parameter]:
        e = self.encoder
        mods = (e.conv1, e.conv2, e.fold, e.sem_in, e.gru, e.code, self.decoder.regressor)
        return [p for m in mods for p in m.parameters()]

    def loss(self, crops) -> tuple[torch.Tensor, dict]:
        frames, cent = frozen_semantics(self.encoder, crops)
        code, _, commit = self.encoder.acoustic_train(frames, cent)
        cont, logits, _ = self.decoder.regressor(torch.cat([cent, code], -1))
        n = cont.shape[1]
        loss, logs = feature_loss(self.decoder, cont, logits, crops.features[:, :n])
        logs["commit"] = commit.item()
        return loss + COMMIT_WEIGHT * commit, logs


class _FrozenStage(nn.Module):
    """A stage that trains one part of the decoder on the frozen rest."""

    def __init__(self, codec) -> None:
        super().__init__()
        self.encoder, self.decoder = codec.encoder, codec.decoder

    def trained(self) -> nn.Module:
        raise NotImplementedError

    def trainable(self) -> list[nn.Parameter]:
        return list(self.trained().parameters())

    def train(self, mode: bool = True):
        super().train(False)  # encoder and decoder frozen: no RVQ updates, no dropout
        self.trained().train(mode)
        return self

    @torch.no_grad()
    def tokens(self, crops) -> torch.Tensor:
        """The decoder's input ``[B, U, D]`` (centroid || code) of the crops' tokens."""
        frames, cent = frozen_semantics(self.encoder, crops)
        code, _, _ = self.encoder.acoustic_train(frames, cent)
        return torch.cat([cent, code], -1)


class FlowStage(_FrozenStage):
    """The residual flow on the frozen encoder and regression path."""

    name = "flow"

    def trained(self) -> nn.Module:
        return self.decoder.flow

    def loss(self, crops) -> tuple[torch.Tensor, dict]:
        with torch.no_grad():
            cont, _, ctx = self.decoder.regressor(self.tokens(crops))
            n = cont.shape[1]
            r = self.decoder.normalise(crops.features[:, :n]) - cont
        loss = self.decoder.flow.loss(r.flatten(2).flatten(0, 1), ctx.flatten(0, 1))
        return loss, {"fm": loss.item(), "residual_rms": r.pow(2).mean().sqrt().item()}


class GeneralStage(_FrozenStage):
    """The general-audio regression path on the frozen encoder."""

    name = "general"

    def trained(self) -> nn.Module:
        return self.decoder.general

    def loss(self, crops) -> tuple[torch.Tensor, dict]:
        cont, logits, _ = self.decoder.general(self.tokens(crops))
        return feature_loss(self.decoder, cont, logits, crops.features[:, : cont.shape[1]])


def position_losses(decoder, cont: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """:func:`feature_loss` per position ``[B, U']`` (mean over the position's frames)."""
    l1, ce = _feature_terms(decoder, cont, logits, target)
    return l1.mean((-1, -2)) + PITCH_WEIGHT * ce.mean(-1)


class RouterStage(_FrozenStage):
    """The router, on labels of which frozen path reconstructs each position better."""

    name = "router"

    def trained(self) -> nn.Module:
        return self.decoder.router

    def loss(self, crops) -> tuple[torch.Tensor, dict]:
        d = self.decoder
        cond = self.tokens(crops)
        with torch.no_grad():
            cs, ls, _ = d.regressor(cond)
            cg, lg, _ = d.general(cond)
            target = crops.features[:, : cs.shape[1]]
            gap = position_losses(d, cs, ls, target) - position_losses(d, cg, lg, target)  # > 0: general better
            label = (gap > 0).float()
            weight = gap.abs() / gap.abs().mean().clamp_min(1e-6)
        # the decision for position u is taken once position u + lookahead has arrived
        logit = d.router(cond)[:, d.regressor.lookahead :].float()
        loss = F.binary_cross_entropy_with_logits(logit, label, weight=weight)
        with torch.no_grad():
            hit = ((logit > 0).float() == label).float()
            regret = (gap.clamp_min(0) * (logit <= 0) + (-gap).clamp_min(0) * (logit > 0)).mean()
        return loss, {"bce": loss.item(), "acc": hit.mean().item(), "general_share": label.mean().item(),
                      "regret": regret.item()}


STAGES = {"semantic": SemanticStage, "codec": CodecStage, "flow": FlowStage, "general": GeneralStage,
          "router": RouterStage}


@torch.no_grad()
def fit_kmeans(encoder, stream, k: int, positions: int = 200_000, iters: int = 20, seed: int = 0,
               log=print) -> torch.Tensor:
    """k-means of the ViT features of ``positions`` token positions of the stream -> ``[k, D]``."""
    from ...ops import nearest_centroid

    units = 256
    feats = []
    for crops in stream.sequential(units, limit=max(1, positions // units)):
        feats.append(encoder.semantic_train(frames_of(encoder, crops.audio))[0])
    x = torch.cat(feats)
    gen = torch.Generator().manual_seed(seed)
    if len(x) >= k:
        c = x[torch.randperm(len(x), generator=gen)[:k]].clone()
    else:  # fewer features than centroids (a tiny test stream): repeat them, jittered apart
        c = x[torch.randint(0, len(x), (k,), generator=gen)] + 1e-3 * torch.randn(k, x.shape[1], generator=gen)
    for it in range(iters):
        ids = nearest_centroid(x, c, (c * c).sum(-1))
        sums = torch.zeros_like(c).index_add_(0, ids, x)
        counts = torch.bincount(ids, minlength=k).float()
        empty = counts == 0
        c = torch.where(empty[:, None], c, sums / counts.clamp_min(1)[:, None])
        if empty.any():  # re-seed empty clusters on random features
            c[empty] = x[torch.randint(0, len(x), (int(empty.sum()),), generator=gen)]
        d = ((x - c[ids]) ** 2).sum(-1).mean().item()
        log(f"kmeans iter {it + 1}/{iters}: mean sq distance {d:.4f}, empty {int(empty.sum())}")
    return c
