"""AudioMAE: the frozen ViT that turns one 10.24 s fbank window into semantic patch features.

The published encoder runs an AudioMAE (a ``MaskedAutoencoderViT``, base/16, one input channel)
on the normalised fbank image ``[B, 1, 1024 (time), 128 (mel)]``:

* 16x16 patches -> a grid of 64 time x 8 frequency patches, flattened time-major
  (patch index ``p = 8 t + f``), plus a CLS token: 513 tokens of width D;
* a fixed sin-cos positional table stored in the checkpoint (layout: errata E1, see
  :func:`audiomae_pos_embed`);
* 12 pre-norm transformer blocks with full bidirectional attention over the window;
* output = mean over the last 3 blocks of ``norm(x)`` (the final LayerNorm, shared), no masking.

State-dict keys equal the official ones (``patch_embed.proj``, ``cls_token``, ``pos_embed``,
``blocks.i.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}``, ``norm`` and the MAE-decoder keys
``decoder_embed``, ``mask_token``, ``decoder_pos_embed``, ``decoder_blocks.i.*``,
``decoder_norm``, ``decoder_pred``), in the official order.  :class:`AudioMAE` adds the
``model.`` level so that the encoder root sees ``audiomae.model.*`` as in ``encoder.ckpt``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ViTConfig


# -- fixed positional tables -------------------------------------------------------------------
def sincos_1d(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """1-D sin-cos embedding ``[len(positions), dim]``: ``[sin(pos w_i) | cos(pos w_i)]``.

    ``w_i = 10000^(-i / (dim/2))`` for ``i = 0 .. dim/2 - 1``.  Evaluated in float64 (the MAE
    recipe builds the table in numpy float64 and casts once at the end).
    """
    if dim % 2:
        raise ValueError(f"sin-cos embedding needs an even width, got {dim}")
    half = dim // 2
    omega = 1.0 / 10000.0 ** (torch.arange(half, dtype=torch.float64) / half)
    angle = positions.to(torch.float64)[:, None] * omega[None, :]
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=1)


def audiomae_pos_embed(dim: int, grid_t: int = 64, grid_f: int = 8) -> torch.Tensor:
    """The fixed ``[1, 1 + grid_t*grid_f, dim]`` float32 table exactly as stored in encoder.ckpt.

    Row 0 (CLS) is zero.  Row ``1 + p`` (patch ``p = grid_f * t + f``) does NOT encode (t, f):
    the official builder sees the grid as ``(grid_f, grid_t)`` and so the first ``dim/2``
    channels encode ``p mod grid_t`` and the last ``dim/2`` channels ``p div grid_t``
    (errata E1, checked against the golden table).  Only needed when training from scratch;
    inference loads the table from the checkpoint.
    """
    if dim % 4:
        raise ValueError(f"2-D sin-cos embedding needs a width divisible by 4, got {dim}")
    p = torch.arange(grid_t * grid_f)
    table = torch.cat([sincos_1d(p % grid_t, dim // 2), sincos_1d(p // grid_t, dim // 2)], dim=1)
    cls_row = torch.zeros(1, dim, dtype=table.dtype)
    return torch.cat([cls_row, table], dim=0).to(torch.float32).unsqueeze(0)


# -- transformer pieces (timm ViT ``Block`` key layout) ----------------------------------------
class Attention(nn.Module):
    """Multi-head self-attention, fused qkv projection with bias, scale ``head_dim^-0.5``."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, N, D] -> [B, N, D]``, full (non-causal) attention over the N tokens."""
        b, n, d = x.shape
        # qkv channels are laid out as (3, heads, head_dim): the timm convention of the checkpoint.
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each [B, H, N, hd]
        y = F.scaled_dot_product_attention(q, k, v)  # default scale = hd^-0.5, as timm
        return self.proj(y.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    """``fc2(gelu(fc1(x)))`` with the exact (erf) GELU."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: ``x += attn(norm1(x)); x += mlp(norm2(x))``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, eps: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    """Non-overlapping ``p x p`` conv: ``[B, 1, T, M] -> [B, (T/p)(M/p), D]``, time-major."""

    def __init__(self, patch: int, dim: int, in_chans: int = 1) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # [B, D, T/p, M/p] -> [B, D, P] -> [B, P, D]; P index = t * (M/p) + f.
        return self.proj(x).flatten(2).transpose(1, 2)


# -- the MAE ViT -------------------------------------------------------------------------------
class MaskedAutoencoderViT(nn.Module):
    """AudioMAE ViT with the official ``MaskedAutoencoderViT`` state-dict layout.

    Args:
        cfg: widths and depths (:class:`ViTConfig`).
        with_decoder: also build the MAE decoder (``decoder_*``, ``mask_token``).  encoder.ckpt
            holds these weights, so a strict load needs them; inference never runs them.
    """

    def __init__(self, cfg: ViTConfig, with_decoder: bool = True) -> None:
        super().__init__()
        if cfg.img_frames % cfg.patch or cfg.img_bins % cfg.patch:
            raise ValueError(
                f"image {cfg.img_frames}x{cfg.img_bins} is not a multiple of the patch {cfg.patch}"
            )
        if not 1 <= cfg.average_last <= cfg.depth:
            raise ValueError(f"average_last={cfg.average_last} must be in 1..depth={cfg.depth}")
        self.cfg = cfg
        n_patches = cfg.grid_t * cfg.grid_f
        # Own parameters first, then children: this reproduces the official key order.
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.pos_embed = nn.Parameter(
            audiomae_pos_embed(cfg.dim, cfg.grid_t, cfg.grid_f), requires_grad=False
        )
        self.with_decoder = with_decoder
        if with_decoder:
            self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.decoder_dim))
            self.decoder_pos_embed = nn.Parameter(
                audiomae_pos_embed(cfg.decoder_dim, cfg.grid_t, cfg.grid_f), requires_grad=False
            )
        self.patch_embed = PatchEmbed(cfg.patch, cfg.dim)
        self.blocks = nn.ModuleList(
            Block(cfg.dim, cfg.heads, cfg.mlp_ratio, cfg.norm_eps) for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(cfg.dim, eps=cfg.norm_eps)
        if with_decoder:
            self.decoder_embed = nn.Linear(cfg.dim, cfg.decoder_dim)
            self.decoder_blocks = nn.ModuleList(
                Block(cfg.decoder_dim, cfg.decoder_heads, cfg.mlp_ratio, cfg.norm_eps)
                for _ in range(cfg.decoder_depth)
            )
            self.decoder_norm = nn.LayerNorm(cfg.decoder_dim, eps=cfg.norm_eps)
            self.decoder_pred = nn.Linear(cfg.decoder_dim, cfg.patch * cfg.patch)
        assert self.pos_embed.shape[1] == 1 + n_patches

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 1, T, M]`` fbank image -> ``[B, 1 + P, D]`` tokens (CLS first) with positions."""
        x = self.patch_embed(x) + self.pos_embed[:, 1:, :]
        cls = (self.cls_token + self.pos_embed[:, :1, :]).expand(x.shape[0], -1, -1)
        return torch.cat([cls, x], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Inference path (no mask): ``[B, 1, 1024, 128] -> [B, 513, D]``.

        Output = mean over the last ``average_last`` blocks of ``norm(block output)``
        (official ``forward_encoder_no_mask`` with contextual_depth 8 -> blocks 9, 10, 11).
        """
        x = self.embed(x)
        first_kept = len(self.blocks) - self.cfg.average_last
        kept = []
        for i, blk in enumerate(self.blocks):
            x = blk(x)
            if i >= first_kept:
                kept.append(self.norm(x))
        # stack + mean, the official reduction, keeps float32 rounding close to the reference.
        return torch.stack(kept, dim=0).mean(dim=0)

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """MAE reconstruction head (training only; not exercised by the golden vectors).

        Args:
            latent: ``[B, 1 + L_keep, D]`` encoder tokens of the kept patches, CLS first.
            ids_restore: ``[B, P]`` int64, for each original patch position the index of its
                token in the (kept ++ masked) order.
        Returns:
            ``[B, P, patch*patch]`` predicted pixels per patch (CLS dropped).
        """
        if not self.with_decoder:
            raise RuntimeError("built with with_decoder=False")
        x = self.decoder_embed(latent)
        b, n_keep = x.shape[0], x.shape[1] - 1
        n_mask = ids_restore.shape[1] - n_keep
        patches = torch.cat([x[:, 1:], self.mask_token.expand(b, n_mask, -1)], dim=1)
        index = ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[2])
        patches = torch.gather(patches, 1, index)  # back to the original patch order
        x = torch.cat([x[:, :1], patches], dim=1) + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]


class AudioMAE(nn.Module):
    """Key-compatibility wrapper: holds the ViT as ``.model`` (official ``Vanilla_AudioMAE``).

    ``forward(mel [B, T=1024, M=128]) -> [B, 1 + P, D]`` with ``P = (T/16)(M/16) = 512``;
    index 0 is the CLS position (dropped downstream).
    """

    def __init__(self, cfg: ViTConfig, with_decoder: bool = True) -> None:
        super().__init__()
        self.model = MaskedAutoencoderViT(cfg, with_decoder=with_decoder)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        cfg = self.model.cfg
        if mel.dim() != 3 or tuple(mel.shape[1:]) != (cfg.img_frames, cfg.img_bins):
            want = f"[B, {cfg.img_frames}, {cfg.img_bins}]"
            raise ValueError(f"AudioMAE expects mel {want}, got {tuple(mel.shape)}")
        return self.model(mel.unsqueeze(1))
