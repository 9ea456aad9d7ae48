"""Input checks shared by the windowings and their streaming encoders and decoders."""

from __future__ import annotations

import torch

from ..config import CodecConfig


def model_device(parts) -> torch.device:
    """The device a codec's networks live on (read off the decoder's first buffer: the
    ``scale_factor`` of a latent-diffusion decoder, the feature statistics of the speech one)."""
    return next(parts.decoder.buffers()).device


def check_tokens(cfg: CodecConfig, tokens: torch.Tensor) -> torch.Tensor:
    """Validate ``[B, L, 2]`` (or ``[L, 2]``) ids of a ``cfg`` model; returns batched int64."""
    if not isinstance(tokens, torch.Tensor):
        raise ValueError(f"tokens must be a tensor, got {type(tokens).__name__}")
    if tokens.dim() == 2:
        tokens = tokens[None]
    if tokens.dim() != 3 or tokens.shape[-1] != 2:
        raise ValueError(f"tokens must be [B, L, 2], got {list(tokens.shape)}")
    if tokens.is_floating_point() or tokens.dtype == torch.bool:
        raise ValueError(f"tokens must be integers, got {tokens.dtype}")
    if tokens.shape[1] == 0:
        raise ValueError("no tokens to decode (L = 0)")
    tokens = tokens.long()
    for i, (name, size) in enumerate(
        (("semantic", cfg.semantic_vocab_size), ("acoustic", cfg.acoustic.codebook_size))
    ):
        ids = tokens[..., i]
        lo, hi = int(ids.min()), int(ids.max())
        if lo < 0 or hi >= size:
            raise ValueError(f"{name} ids must be in [0, {size}), got range [{lo}, {hi}]")
    return tokens


def check_pcm(pcm: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``[n]`` / ``[B, n]`` finite float samples -> float32 ``[B, n]`` on the CPU."""
    if not isinstance(pcm, torch.Tensor):
        raise ValueError(f"pcm must be a torch.Tensor, got {type(pcm).__name__}")
    if pcm.dim() == 1 and batch_size == 1:
        pcm = pcm[None]
    if pcm.dim() != 2 or pcm.shape[0] != batch_size:
        raise ValueError(f"pcm must be [{batch_size}, n] samples, got {list(pcm.shape)}")
    if not pcm.is_floating_point():
        raise ValueError(f"pcm must be floating point in [-1, 1], got {pcm.dtype}")
    if pcm.numel() and not torch.isfinite(pcm).all():
        raise ValueError("pcm contains NaN or infinite samples")
    return pcm.detach().to("cpu", torch.float32)


def check_stream_tokens(cfg: CodecConfig, tokens: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``[B, m, 2]`` (``m >= 0``) ids in range -> int64 on the CPU."""
    if not isinstance(tokens, torch.Tensor):
        raise ValueError(f"tokens must be a torch.Tensor, got {type(tokens).__name__}")
    if tokens.dim() == 2 and batch_size == 1:
        tokens = tokens[None]
    if tokens.dim() != 3 or tokens.shape[0] != batch_size or tokens.shape[-1] != 2:
        raise ValueError(f"tokens must be [{batch_size}, m, 2], got {list(tokens.shape)}")
    if tokens.shape[1] == 0:
        return tokens.to("cpu", torch.int64)
    return check_tokens(cfg, tokens).cpu()


def check_missing(missing: torch.Tensor | None, shape: torch.Size) -> torch.Tensor:
    """The ``[B, m]`` mask of missing positions of a decoder ``push`` (all False when ``None``)."""
    if missing is None:
        return torch.zeros(shape, dtype=torch.bool)
    if not isinstance(missing, torch.Tensor) or missing.dtype != torch.bool:
        raise ValueError(f"missing must be a bool tensor, got {getattr(missing, 'dtype', type(missing))}")
    if missing.dim() == 1 and shape[0] == 1:
        missing = missing[None]
    if tuple(missing.shape) != tuple(shape):
        raise ValueError(f"missing must be {list(shape)} like the tokens, got {list(missing.shape)}")
    return missing.cpu()
