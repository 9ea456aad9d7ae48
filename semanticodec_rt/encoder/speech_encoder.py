"""The speech route's encoder: 16 kHz audio -> one (semantic, acoustic) id pair per 40 ms.

Per 10 ms frame the front end gives the normalised 128-bin fbank (the published front end
without the global mean, which a stream does not have) and the pitch cross-correlation
(:mod:`.xcorr`).  Token position u owns frames ``4u .. 4u + 3`` (the last reaches 15 ms past
the position's 40 ms):

1. **semantic**: its fbank patch ``[4, 128]`` -> causal ViT (:mod:`.causal_vit`) -> nearest
   k-means centroid (the nearest-centroid kernel of :mod:`semanticodec_rt.ops`) -> id;
2. **acoustic**: the frames' fbank and correlations -> two causal convolutions -> the four
   frames folded into one vector -> with the centroid, a GRU over positions -> a 64-wide code ->
   residual VQ (4 stages x 10 bits, :mod:`.rvq`) -> one composite id.

Inference runs position by position (:meth:`SpeechEncoder.step`) with a state that a stream
carries, so the offline and the streamed encoder compute the same floats; training runs whole
sequences (:meth:`SpeechEncoder.forward_train`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import CodecConfig
from ..timing import StageTimes
from .causal_vit import CausalViT
from .fbank import kaldi_fbank, normalize
from .kmeans import SemanticQuantizer
from .rvq import ResidualVQ, compose_ids, split_ids
from .xcorr import pitch_xcorr

CONV_KERNEL = 3


@dataclass
class EncoderState:
    """What a stream carries between positions (None fields at a stream start)."""

    vit: list | None = None  # per-layer key/value caches
    conv1: torch.Tensor | None = None  # [B, C_in, 2] last input frames
    conv2: torch.Tensor | None = None  # [B, C, 2]
    gru: torch.Tensor | None = None  # [1, B, C]


class SpeechEncoder(nn.Module):
    """Args: cfg with a ``speech`` section."""

    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        sp, v = cfg.speech, cfg.vit
        self.cfg = cfg
        self.unit_frames = sp.unit_frames
        bins = cfg.fbank.num_mel_bins
        self.vit = CausalViT(sp.unit_frames * bins, v.dim, v.depth, v.heads, sp.context_units, v.mlp_ratio, v.norm_eps)
        self.semantic_quantizer = SemanticQuantizer(v.dim)
        c = sp.enc_channels
        self.conv1 = nn.Conv1d(bins + sp.xcorr_lags, c, CONV_KERNEL)
        self.conv2 = nn.Conv1d(c, c, CONV_KERNEL)
        self.fold = nn.Linear(c * sp.unit_frames, c)
        self.sem_in = nn.Linear(v.dim, c)
        self.gru = nn.GRU(2 * c, c, batch_first=True)
        self.code = nn.Linear(c, sp.code_dim)
        self.rvq = ResidualVQ(sp.code_dim, sp.rvq_stages, sp.rvq_bits)
        #: seconds per stage of the last encode (the codec reads it)
        self.stage_times = StageTimes()

    # -- front end -------------------------------------------------------------------------------
    def frames(self, wave: torch.Tensor, history: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, N]`` samples -> ``[B, T, 128 + lags]`` frame features (fbank || correlations);
        ``history``: the ``xcorr_max_lag`` samples before ``wave`` (zeros at a stream start)."""
        sp = self.cfg.speech
        fb = normalize(kaldi_fbank(wave, self.cfg.fbank, subtract_mean=False), self.cfg.fbank)
        xc = pitch_xcorr(wave, sp.xcorr_min_lag, sp.xcorr_max_lag, sp.xcorr_window, history)
        return torch.cat([fb, xc.to(fb.dtype)], -1)

    def patches(self, frames: torch.Tensor) -> torch.Tensor:
        """``[B, 4U, C_in]`` -> the ViT's fbank patches ``[B, U, 4 * 128]``."""
        bins = self.cfg.fbank.num_mel_bins
        b, t, _ = frames.shape
        return frames[..., :bins].reshape(b, t // self.unit_frames, self.unit_frames * bins)

    # -- training: whole sequences ---------------------------------------------------------------
    def semantic_train(self, frames: torch.Tensor) -> torch.Tensor:
        """``[B, 4U, C_in]`` -> ViT features ``[B, U, D]`` (all positions at once)."""
        return self.vit(self.patches(frames))

    def acoustic_train(self, frames: torch.Tensor, sem: torch.Tensor):
        """``[B, 4U, C_in]`` frames and ``[B, U, D]`` semantic vectors (ViT features or their
        centroids) -> ``(q_st [B, U, code], ids [B, U, S], commit loss)``."""
        x = frames.transpose(1, 2)
        x = F.gelu(self.conv1(F.pad(x, (CONV_KERNEL - 1, 0))))
        x = F.gelu(self.conv2(F.pad(x, (CONV_KERNEL - 1, 0))))
        b, c, t = x.shape
        x = x.transpose(1, 2).reshape(b, t // self.unit_frames, self.unit_frames * c)
        h, _ = self.gru(torch.cat([F.gelu(self.fold(x)), self.sem_in(sem)], -1))
        return self.rvq(self.code(h))

    # -- inference: one position at a time -------------------------------------------------------
    @torch.no_grad()
    def step(self, frames: torch.Tensor, state: EncoderState) -> tuple[torch.Tensor, EncoderState]:
        """One position's frames ``[B, 4, C_in]`` -> tokens ``[B, 2]`` (semantic, composite
        acoustic id) and the new state."""
        bins = self.cfg.fbank.num_mel_bins
        b = frames.shape[0]
        feat, vit_cache = self.vit.step(frames[..., :bins].reshape(b, -1), state.vit)
        sem = self.semantic_quantizer.quantize(feat[:, None])[:, 0]
        centroid = self.semantic_quantizer.dequantize(sem).to(feat.dtype)
        x = frames.transpose(1, 2)  # [B, C_in, 4]
        pad1 = state.conv1 if state.conv1 is not None else x.new_zeros(b, x.shape[1], CONV_KERNEL - 1)
        x1 = torch.cat([pad1, x], -1)
        y = F.gelu(self.conv1(x1))
        pad2 = state.conv2 if state.conv2 is not None else y.new_zeros(b, y.shape[1], CONV_KERNEL - 1)
        y2 = torch.cat([pad2, y], -1)
        z = F.gelu(self.conv2(y2))  # [B, C, 4]
        folded = F.gelu(self.fold(z.transpose(1, 2).reshape(b, -1)))
        h, gru = self.gru(torch.cat([folded, self.sem_in(centroid)], -1)[:, None], state.gru)
        ids = self.rvq.quantize(self.code(h[:, 0]))
        tokens = torch.stack([sem, compose_ids(ids, self.rvq.bits)], -1)
        new = EncoderState(vit=vit_cache, conv1=x1[..., -(CONV_KERNEL - 1):], conv2=y2[..., -(CONV_KERNEL - 1):],
                           gru=gru)
        return tokens, new

    # -- tokens -> decoder features --------------------------------------------------------------
    def tokens_to_feature(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[B, L, 2]`` ids -> ``[B, L, D + code]`` = ``[centroid || residual-VQ code]``."""
        sp = self.cfg.speech
        cent = self.semantic_quantizer.dequantize(tokens[..., 0].long())
        code = self.rvq.dequantize(split_ids(tokens[..., 1], sp.rvq_stages, sp.rvq_bits))
        return torch.cat([cent, code.to(cent.dtype)], -1)

    def load_semantic_codebook(self, codebook) -> None:
        self.semantic_quantizer.load_codebook(codebook)
