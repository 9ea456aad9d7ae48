"""Stage ``mae``: masked-autoencoder pre-training of the semantic ViT on fbank windows.

The AudioMAE recipe at the size of the config's ViT: each item is one ViT window (context +
unit + lookahead columns of normalised Kaldi fbank, exactly what the encoder sees when
streaming); a random ``mask_ratio`` of its 16x16 patches is dropped, the encoder runs on the
rest (with the CLS token), the light MAE decoder re-inserts mask tokens and predicts every
patch's pixels, and the loss is the MSE on the *masked* patches against the patch-normalised
target (each patch's pixels standardised by their own mean and variance).

Exported: the encoder half (``audiomae.model.*`` keys of :class:`SemantiCodecEncoder`).
"""

from __future__ import annotations

import torch
from torch import nn

from ....encoder.vit import MaskedAutoencoderViT
from ....windowing.unit_grid import frames_from_samples, tail_samples
from .base import Stage


def patchify(img: torch.Tensor, patch: int) -> torch.Tensor:
    """``[B, T, M]`` -> ``[B, (T/p)(M/p), p*p]`` in the ViT's time-major patch order."""
    b, t, m = img.shape
    x = img.reshape(b, t // patch, patch, m // patch, patch).permute(0, 1, 3, 2, 4)
    return x.reshape(b, (t // patch) * (m // patch), patch * patch)


def masked_forward(vit: MaskedAutoencoderViT, img: torch.Tensor, noise: torch.Tensor,
                   mask_ratio: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode the kept patches and predict all of them.

    Args:
        img: ``[B, T, M]`` normalised fbank.
        noise: ``[B, P]`` uniform draws; the ``P (1 - mask_ratio)`` smallest are kept.
    Returns:
        ``(pred [B, P, p*p], mask [B, P])`` with mask 1 on the dropped patches.
    """
    x = vit.patch_embed(img.unsqueeze(1)) + vit.pos_embed[:, 1:, :]
    b, p, d = x.shape
    keep = max(1, int(round(p * (1 - mask_ratio))))
    order = noise.argsort(dim=1)
    restore = order.argsort(dim=1)
    kept = torch.gather(x, 1, order[:, :keep, None].expand(-1, -1, d))
    cls = (vit.cls_token + vit.pos_embed[:, :1, :]).expand(b, -1, -1)
    h = torch.cat([cls, kept], dim=1)
    for blk in vit.blocks:
        h = blk(h)
    pred = vit.forward_decoder(vit.norm(h), restore)
    mask = torch.ones(b, p, device=img.device)
    mask[:, :keep] = 0
    return pred, torch.gather(mask, 1, restore)


class MAEStage(Stage):
    name = "mae"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        torch.manual_seed(self.tcfg.seed)
        self.vit = MaskedAutoencoderViT(self.cfg.vit, with_decoder=True)
        _init_weights(self.vit)
        self.groups = {"model": self.vit}
        self.samples = self.cfg.window_frames * self.cfg.fbank.frame_shift + tail_samples(self.cfg)

    def global_batch(self, step: int) -> dict:
        s = self.settings
        batch = self.data.crops(step, s.batch, self.samples)
        p = self.cfg.vit.grid_t * self.cfg.vit.grid_f
        batch["noise"] = torch.rand(s.batch, p, generator=self.data.generator(step))
        return batch

    def loss(self, group, batch, cache):
        with torch.no_grad():
            img = frames_from_samples(self.cfg, batch["audio"])
        pred, mask = masked_forward(self.vit, img, batch["noise"], self.settings.mask_ratio)
        target = patchify(img, self.cfg.vit.patch)
        if self.settings.norm_pix_loss:
            mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
            target = (target - mean) / (var + 1e-6).sqrt()
        per_patch = (pred - target).pow(2).mean(-1)
        loss = (per_patch * mask).sum() / mask.sum()
        return loss, {"loss": loss.item()}

    def export(self, weights):
        drop = ("decoder_", "mask_token")
        return {f"audiomae.model.{k}": v for k, v in weights.items() if not k.startswith(drop)}


def _init_weights(vit: nn.Module) -> None:
    """MAE initialisation: xavier-uniform linears with zero bias, patch conv as a linear,
    small normal CLS/mask tokens, unit LayerNorms."""
    for m in vit.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    w = vit.patch_embed.proj.weight
    nn.init.xavier_uniform_(w.view(w.shape[0], -1))
    nn.init.normal_(vit.cls_token, std=0.02)
    if hasattr(vit, "mask_token"):
        nn.init.normal_(vit.mask_token, std=0.02)
