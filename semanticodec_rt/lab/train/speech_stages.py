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

The general-audio route (models with ``speech.general_route``) adds three stages on the frozen
encoder and speech path, trained on the ``general`` mix of streams:

5. ``general``     -- the general route's mel path: tokens -> 64-bin log-mel frames, L1;
6. ``mel_vocoder`` -- its iSTFT vocoder (from a vocoder trial, :mod:`.vocoder_trial`) fine-tuned
   on the mel path's predictions against the audio (STFT + log-mel losses);
7. ``router``      -- the router learns each position's content class (speech -> speech route;
   music, effects -> general route) from the clip lists of the streams.

Frozen parts stay in eval mode while a stage trains (:meth:`_FrozenStage.train`): the residual
VQ follows its batches in training mode, which a frozen encoder must not do.

Every stage maps a batch of :class:`~.speech_data.Crops` to ``(loss, logs)``; the loop
(:mod:`.speech_loop`) owns optimisers, checkpoints and resumption.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...audio.mel import HOP as MEL_HOP
from ...audio.mel import N_FFT as MEL_N_FFT
from ...audio.mel import log_mel
from ...decoder.speech.pitch import soft_targets
from ...decoder.speech.regression import FeatureRegressor
from .speech_data import CLASS_IDS, GAP, HISTORY, Crops

PITCH_WEIGHT = 0.3
COMMIT_WEIGHT = 0.25
CODEC_STAGES = ("semantic", "codec", "flow")
#: the general-audio route's stages, in training order (:mod:`.general_run`)
GENERAL_STAGES = ("general", "mel_vocoder", "router")


def feature_loss(decoder, cont: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Regression outputs vs raw target features ``[B, U', 4, 20]``."""
    l1 = (cont - decoder.normalise(target)).abs().mean()
    pitch = -(soft_targets(target[..., 18], logits.shape[-1]) * F.log_softmax(logits, -1)).sum(-1).mean()
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


def mel_targets(crops, unit_frames: int, shift: int, positions: int) -> torch.Tensor:
    """The general path's targets ``[B, positions, F, 64]``: log-mel frames ``F u + shift ..``
    of each position u (:class:`~...decoder.speech.regression.MelRegressor`; frame t centred on
    sample ``160 t + 80`` of the first position), every one computed on real audio: the mel
    starts one frame into the history, and the last frame's 1024-sample window must end inside
    the crop (it does for every position the path outputs, U - lookahead, at lookahead >= 1)."""
    frames = unit_frames * positions + shift  # frames 0 .. frames - 1 of the first position's grid
    start = HISTORY - MEL_HOP
    need = start + MEL_HOP * (frames + 1) + (MEL_N_FFT - MEL_HOP) // 2  # the last window's end
    if need > crops.audio.shape[1]:
        raise ValueError(f"{positions} positions of mel targets need {need} samples of crop, "
                         f"have {crops.audio.shape[1]}")
    # all the crop has (the mel reflect-pads what it is given: the frames used must not see that)
    audio = crops.audio[:, start : start + MEL_HOP * ((crops.audio.shape[1] - start) // MEL_HOP)]
    return log_mel(audio)[:, 1 + shift : 1 + frames].unflatten(1, (positions, unit_frames))


class GeneralStage(_FrozenStage):
    """The general route's mel path on the frozen encoder: L1 on the log-mel frames."""

    name = "general"

    def trained(self) -> nn.Module:
        return self.decoder.general

    def loss(self, crops) -> tuple[torch.Tensor, dict]:
        g = self.decoder.general
        mel, _ = g(self.tokens(crops))
        loss = (mel.float() - mel_targets(crops, g.unit_frames, g.shift, mel.shape[1])).abs().mean()
        return loss, {"mel_l1": loss.item()}


class MelVocoderStage(_FrozenStage):
    """The general route's iSTFT vocoder, fine-tuned on the frozen mel path's predictions (not the
    true mels it was trained on first): multi-resolution STFT loss + log-mel L1 against the
    audio those frames stand for."""

    name = "mel_vocoder"

    def trained(self) -> nn.Module:
        return self.decoder.mel_vocoder

    def loss(self, crops) -> tuple[torch.Tensor, dict]:
        from .vocoder_trial import stft_loss

        g = self.decoder.general
        with torch.no_grad():
            mel, _ = g(self.tokens(crops))
        mel = mel.float().flatten(1, 2)  # frames shift .. shift + 4 U' - 1
        fake = self.decoder.mel_vocoder(mel).float()
        start = HISTORY + MEL_HOP * g.shift
        real = crops.audio[:, start : start + fake.shape[1]]
        spec = stft_loss(fake, real)
        mel_l1 = (log_mel(fake) - log_mel(real)).abs().mean()
        return spec + mel_l1, {"stft": spec.item(), "mel_l1": mel_l1.item()}


#: how much more a speech position's label weighs than a music or effects one: speech is the
#: minority of the general mix, and sending speech to the general route costs intelligibility
SPEECH_WEIGHT = 4.0


#: share of the router's batch items that are mixes of two crops, and how far (dB, uniform) the
#: second sits below the first: speech over music at these levels scored better on the speech
#: route (the held-out mixed set of examples/general_route_checks.py), so a mix is labelled by
#: its louder crop
MIX_SHARE = 0.5
MIX_BELOW_DB = (3.0, 12.0)


def mix_crops(crops):
    """Crops with the first ``MIX_SHARE`` of the batch items mixed: item i gets item ``i + 1``'s
    audio (cyclically) under it, ``MIX_BELOW_DB`` below its level; its classes stay item i's
    where known (the louder content) and take the other's in item i's gaps.  Random draws come
    from torch's generator (seeded per step by the loop)."""
    b = crops.audio.shape[0]
    k = int(round(MIX_SHARE * b))
    if k == 0 or b < 2:
        return crops
    audio, classes = crops.audio.clone(), crops.classes.clone()
    other_audio, other_classes = crops.audio.roll(-1, 0)[:k], crops.classes.roll(-1, 0)[:k]
    rms = lambda x: x.pow(2).mean(-1).sqrt().clamp_min(1e-5)  # noqa: E731
    below = MIX_BELOW_DB[0] + (MIX_BELOW_DB[1] - MIX_BELOW_DB[0]) * torch.rand(k)
    gain = rms(audio[:k]) / rms(other_audio) * 10 ** (-below / 20)
    audio[:k] = (audio[:k] + gain[:, None] * other_audio).clamp(-1, 1)
    classes[:k] = torch.where(classes[:k] == GAP, other_classes, classes[:k])
    return Crops(audio, crops.features, classes)


class RouterStage(_FrozenStage):
    """The router, on the class of each position's content (speech: the speech route; music and
    effects: the general route); positions between clips do not count.  Half of each batch is
    mixes (:func:`mix_crops`), labelled by the louder content."""

    name = "router"

    def trained(self) -> nn.Module:
        return self.decoder.router

    def loss(self, crops) -> tuple[torch.Tensor, dict]:
        if crops.classes is None:
            raise ValueError("the router stage needs streams with their clip lists (SPLIT.clips.jsonl)")
        if self.decoder.router.training:  # the stage itself stays in eval mode (_FrozenStage)
            crops = mix_crops(crops)
        d = self.decoder
        cond = self.tokens(crops)
        la = d.regressor.lookahead
        # the decision for position u is taken once position u + lookahead has arrived
        logit = d.router(cond)[:, la:].float()
        cls = crops.classes[:, : logit.shape[1]]
        label = (cls == CLASS_IDS["music"]).float()
        weight = torch.where(cls == CLASS_IDS["speech"], SPEECH_WEIGHT, 1.0) * (cls != GAP)
        loss = (F.binary_cross_entropy_with_logits(logit, label, reduction="none") * weight).sum() / \
            weight.sum().clamp_min(1.0)
        with torch.no_grad():
            hit = ((logit > 0).float() == label).float()
            speech, known = cls == CLASS_IDS["speech"], cls != GAP
            acc_speech = hit[speech].mean().item() if speech.any() else float("nan")
            acc = hit[known].mean().item() if known.any() else float("nan")
        return loss, {"bce": loss.item(), "acc": acc, "acc_speech": acc_speech,
                      "general_share": label[known].mean().item() if known.any() else float("nan")}


STAGES = {"semantic": SemanticStage, "codec": CodecStage, "flow": FlowStage, "general": GeneralStage,
          "mel_vocoder": MelVocoderStage, "router": RouterStage}


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
