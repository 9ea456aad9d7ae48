"""SemantiCodec encoder: normalised fbank -> (semantic, acoustic) token pairs.

Checkpoint-compatible port of the official ``AudioMAEConditionQuantResEncoder``; the module tree
is the root of ``encoder.ckpt``:

* ``audiomae.model.*``          AudioMAE ViT (+ unused MAE decoder), :mod:`.modules.vit`;
* ``encoder.*``                 (Bi)LSTM of the acoustic branch, :mod:`.modules.acoustic`;
* ``encoder_output_linear.*``   bias-free projection 4F -> F;
* ``quantizer._codebook.*``     acoustic EMA-VQ buffers, :mod:`.quantization.vq`.

The semantic k-means codebook (``semantic_quantizer``) and the positional table are attached
but outside the state_dict, as in the official model.

Per 1024-frame window (10.24 s), windows encoded independently (no state carried over):

1. AudioMAE -> ``[B, 513, D]``; drop CLS, group patches into T_w tokens of width F.
2. Semantic ids = nearest centroid of the (unmarked) token features.
3. LSTM input ``[feature | centroid]`` ``[B, T_w, 2F]``, token positions past the padding cutoff
   set to -1 (:mod:`.modules.padding`), so padding changes the acoustic tokens of *all*
   positions through the BiLSTM.
4. LSTM -> linear -> acoustic ids (nearest VQ codeword).
5. Tokens ``[B, T_w, 2]`` = (semantic, acoustic); tokens at padded positions are still produced
   (the caller trims to the audio length).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import CodecConfig
from ..timing import StageTimes
from .acoustic import build_acoustic_lstm, build_acoustic_projection, run_acoustic
from .grouping import audiomae_to_sequence
from .kmeans import CodebookSource, SemanticQuantizer
from .padding import first_marked_position, mark_padding, padding_cutoff_fraction
from .positional import PositionalEncoding
from .vit import AudioMAE
from .vq import AcousticVQ


@dataclass
class WindowEncoding:
    """Every stage of one encoder window (B items, T_w tokens, F = token feature width)."""

    audiomae_embed: torch.Tensor  # [B, 1 + P, D] AudioMAE output, CLS first
    representation: torch.Tensor  # [B, T_w, F] grouped token features (unmarked)
    semantic_ids: torch.Tensor  # [B, T_w] int64 k-means indices
    semantic_feature: torch.Tensor  # [B, T_w, F] centroids[semantic_ids]
    cutoff_fraction: torch.Tensor  # [B] float64 content frames / window frames
    first_marked: torch.Tensor  # [B] int64 first -1 token position (T_w: none)
    lstm_input: torch.Tensor  # [B, T_w, 2F] [representation | centroid], -1 marked
    lstm_output: torch.Tensor  # [B, T_w, 4F] forward | backward (2F if unidirectional)
    linear_output: torch.Tensor  # [B, T_w, F]
    acoustic_ids: torch.Tensor  # [B, T_w] int64 VQ indices
    acoustic_feature: torch.Tensor  # [B, T_w, F] VQ codewords
    tokens: torch.Tensor  # [B, T_w, 2] int64 (semantic, acoustic)
    quantized_feature: torch.Tensor  # [B, T_w, 2F + pe_dim] [acoustic | semantic] marked, + PE


class SemantiCodecEncoder(nn.Module):
    """Root of ``encoder.ckpt`` (strict ``load_state_dict`` compatible).

    Args:
        cfg: codec configuration (ViT widths, token rate, LSTM depth, codebook sizes).
        with_mae_decoder: build the unused MAE decoder weights too (needed for a strict load of
            the official checkpoint; inference never runs them).
    """

    def __init__(self, cfg: CodecConfig, with_mae_decoder: bool = True) -> None:
        super().__init__()
        if cfg.window_frames != cfg.vit.img_frames:
            raise ValueError(
                f"window_frames={cfg.window_frames} must equal vit.img_frames={cfg.vit.img_frames}"
            )
        self.cfg = cfg
        f = cfg.feature_dim
        # Registration order reproduces the official key order.
        self.audiomae = AudioMAE(cfg.vit, with_decoder=with_mae_decoder)
        # The official checkpoint keeps the LSTM and its projection at the root.
        self.encoder = build_acoustic_lstm(f, cfg.acoustic)
        self.encoder_output_linear = build_acoustic_projection(f, cfg.acoustic)
        self.quantizer = AcousticVQ(f, cfg.acoustic.codebook_size)
        # Outside the state_dict (non-persistent buffers).
        self.semantic_quantizer = SemanticQuantizer(f)
        self.positional = PositionalEncoding(cfg.pe_len, cfg.pe_dim)
        #: seconds per stage, accumulated across calls (the caller clears it)
        self.stage_times = StageTimes()

    # -- setup ---------------------------------------------------------------------------------
    def load_semantic_codebook(self, source: CodebookSource) -> None:
        """Load the ``[N, F]`` semantic centroids (official ``.npy``; N read from the file)."""
        self.semantic_quantizer.load_codebook(source)

    # -- encoding ------------------------------------------------------------------------------
    def _check_mel(self, mel: torch.Tensor) -> None:
        w, m = self.cfg.window_frames, self.cfg.vit.img_bins
        if not isinstance(mel, torch.Tensor) or not mel.is_floating_point():
            raise ValueError("mel must be a floating-point torch.Tensor [B, frames, mel_bins]")
        if mel.dim() != 3 or mel.shape[-1] != m:
            raise ValueError(f"mel must be [B, frames, {m}], got {tuple(mel.shape)}")
        if mel.shape[0] == 0 or mel.shape[1] == 0 or mel.shape[1] % w:
            raise ValueError(
                f"mel must hold B >= 1 items and a positive multiple of {w} frames "
                f"(10.24 s windows), got {tuple(mel.shape)}"
            )

    def encode_window(self, mel: torch.Tensor) -> WindowEncoding:
        """Encode one window ``[B, 1024, 128]`` and return every intermediate."""
        self._check_mel(mel)
        if mel.shape[1] != self.cfg.window_frames:
            raise ValueError(
                f"encode_window takes exactly one {self.cfg.window_frames}-frame window, "
                f"got {mel.shape[1]} frames"
            )
        vit = self.cfg.vit
        t_w = self.cfg.tokens_per_window

        times = self.stage_times
        with times.stage("audiomae"):
            embed = self.audiomae(mel)
            rep = audiomae_to_sequence(embed, self.cfg.stack_factor, vit.grid_t, vit.grid_f)
        with times.stage("kmeans"):
            sem_ids = self.semantic_quantizer.quantize(rep)  # on the unmarked features
            sem_feat = self.semantic_quantizer.dequantize(sem_ids).to(rep.dtype)

        fraction = padding_cutoff_fraction(mel)
        first = first_marked_position(fraction, t_w)
        lstm_in = mark_padding(torch.cat([rep, sem_feat], dim=-1), first)
        with times.stage("lstm"):
            lstm_out, lin_out = run_acoustic(self.encoder, self.encoder_output_linear, lstm_in)
        with times.stage("vq"):
            ac_ids = self.quantizer.quantize(lin_out)
            ac_feat = self.quantizer.dequantize(ac_ids).to(rep.dtype)
        tokens = torch.stack([sem_ids, ac_ids], dim=-1)

        # Decoder-side view (official ``_forward``; encode() does not use it): errata E8.
        qf = mark_padding(torch.cat([ac_feat, sem_feat], dim=-1), first)
        pe = self.positional(qf).to(qf.dtype).expand(qf.shape[0], -1, -1)
        qf = torch.cat([qf, pe], dim=-1)

        return WindowEncoding(
            audiomae_embed=embed,
            representation=rep,
            semantic_ids=sem_ids,
            semantic_feature=sem_feat,
            cutoff_fraction=fraction,
            first_marked=first,
            lstm_input=lstm_in,
            lstm_output=lstm_out,
            linear_output=lin_out,
            acoustic_ids=ac_ids,
            acoustic_feature=ac_feat,
            tokens=tokens,
            quantized_feature=qf,
        )

    def encode_windows(self, mel: torch.Tensor) -> list[WindowEncoding]:
        """``[B, 1024 n, 128]`` -> the n :class:`WindowEncoding` (memory grows with n)."""
        self._check_mel(mel)
        w = self.cfg.window_frames
        return [self.encode_window(mel[:, i : i + w]) for i in range(0, mel.shape[1], w)]

    @torch.no_grad()
    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Normalised fbank ``[B, 1024 n, 128]`` -> tokens ``[B, n T_w, 2]`` int64.

        ``[..., 0]`` = semantic index, ``[..., 1]`` = acoustic index; windows concatenated in
        time.  Raises ValueError for a wrong shape or a frame count that is not a positive
        multiple of 1024.
        """
        self._check_mel(mel)
        w = self.cfg.window_frames
        # One window at a time so only the tokens outlive the window's activations.
        tokens = [self.encode_window(mel[:, i : i + w]).tokens for i in range(0, mel.shape[1], w)]
        return torch.cat(tokens, dim=1)

    # -- token -> feature ----------------------------------------------------------------------
    def tokens_to_feature(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens ``[B, L, 2]`` (semantic, acoustic) -> ``[B, L, 2F]`` = ``[E_ac[ac] | C[sem]]``.

        Acoustic first, then semantic (official ``token_to_quantized_feature``); used by the
        decoder conditioning.  Raises ValueError for a bad shape, dtype or out-of-range id.
        """
        if not isinstance(tokens, torch.Tensor) or tokens.dim() != 3 or tokens.shape[-1] != 2:
            got = tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens)
            raise ValueError(f"tokens must be a [B, L, 2] tensor, got {got}")
        if tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool:
            raise ValueError(f"tokens must be integers, got {tokens.dtype}")
        sem, ac = tokens[..., 0].long(), tokens[..., 1].long()
        _check_ids("semantic", sem, self.semantic_quantizer.num_centroids)
        _check_ids("acoustic", ac, self.quantizer.codebook_size)
        acoustic = self.quantizer.dequantize(ac)
        semantic = self.semantic_quantizer.dequantize(sem)
        return torch.cat([acoustic, semantic], dim=-1)


def _check_ids(kind: str, ids: torch.Tensor, vocab: int) -> None:
    """ValueError unless every id is in ``[0, vocab)``."""
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab):
        raise ValueError(
            f"{kind} ids must be in [0, {vocab}), got range [{int(ids.min())}, {int(ids.max())}]"
        )
