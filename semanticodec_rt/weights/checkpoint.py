"""Checkpoints of our own models: one safetensors file with the config and hashes inside.

Layout: tensors ``encoder.*`` and ``decoder.*`` (the modules' state dicts) plus
``semantic_codebook`` (the k-means centroids, not part of any state dict); string metadata
``format``, ``config`` (JSON of :class:`CodecConfig`), ``config_sha`` and ``model_sha`` (a hash
of the config and every tensor, which names the model in bitstreams).  safetensors holds raw
tensors only: loading never runs code.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from ..config import CodecConfig

FORMAT = "semanticodec_rt.checkpoint/1"  # a file format name, kept when the module moved


class CheckpointError(ValueError):
    """Not a readable checkpoint of this package, or its contents do not match its config."""


def model_sha(cfg: CodecConfig, tensors: dict[str, torch.Tensor]) -> str:
    """16 hex digits over the config JSON and every tensor (name, dtype, shape, bytes)."""
    h = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode())
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def codec_tensors(codec, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """Everything a checkpoint stores, optionally with floating tensors cast to ``dtype``."""
    out = {f"encoder.{k}": v for k, v in codec.encoder.state_dict().items()}
    out.update({f"decoder.{k}": v for k, v in codec.decoder.state_dict().items()})
    out["semantic_codebook"] = codec.encoder.semantic_quantizer.codebook
    out = {k: v.detach().cpu().contiguous() for k, v in out.items()}
    if dtype is not None:
        out = {k: v.to(dtype) if v.is_floating_point() else v for k, v in out.items()}
    return out


def save(codec, path: str | Path, *, dtype: torch.dtype | None = None, storage: str | None = None,
         keep_float16: tuple[str, ...] = (), metadata: dict | None = None) -> str:
    """Write ``codec`` to ``path``; returns its model sha.

    ``dtype=torch.float16`` (or ``storage="float16"``) halves the file; ``storage="int8"`` stores
    large weights as int8 with per-row scales and drops training-only buffers (about a
    quarter of float32; see :mod:`.weight_storage`), except keys under the ``keep_float16``
    prefixes, which stay float16.
    """
    from safetensors.torch import save_file

    from .storage import pack

    if storage is not None and dtype is not None:
        raise ValueError("give dtype or storage, not both")
    if storage is None and keep_float16:
        raise ValueError("keep_float16 applies to storage='int8' only")
    if storage is None:
        storage = "float16" if dtype == torch.float16 else "float32"
        tensors = codec_tensors(codec, dtype)
    else:
        tensors = pack(codec_tensors(codec), storage, keep_float16)
    sha = model_sha(codec.cfg, tensors)
    meta = {
        "format": FORMAT,
        "storage": storage,
        "config": json.dumps(codec.cfg.to_dict(), sort_keys=True),
        "config_sha": codec.cfg.sha(),
        "model_sha": sha,
    }
    if keep_float16:
        meta["float16_prefixes"] = ",".join(keep_float16)
    for k, v in (metadata or {}).items():
        meta[f"user.{k}"] = str(v)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta)
    return sha


def read_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a checkpoint, checked for our format."""
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(f"{path}: not a safetensors file ({e})") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    return meta


#: what a checkpoint may store (float32 / float16 weights, int8 rows, integer and bool buffers)
STORED_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.int8, torch.int64, torch.int32, torch.bool)


def _check_stored(tensors: dict[str, torch.Tensor], path) -> None:
    """Every tensor of a known dtype and finite: a NaN weight would decode to full-scale noise,
    and an odd dtype (complex, uint64) means the file is not ours."""
    for name, t in tensors.items():
        if t.dtype not in STORED_DTYPES:
            raise CheckpointError(f"{path}: tensor {name!r} has dtype {t.dtype}, not a checkpoint dtype")
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"{path}: tensor {name!r} holds NaN or infinite values")


def load(path: str | Path, device: str | torch.device = "cpu", *, verify: bool = True):
    """Rebuild the :class:`SemantiCodec` stored at ``path`` (float32 on ``device``).

    With ``verify`` the model sha is recomputed from the tensors, so a corrupted or edited file
    is refused instead of silently decoding other audio.
    """
    from safetensors.torch import load_file

    from ..codec import SemantiCodec
    from ..windowing import build_decoder, build_encoder
    from .state import assign_state
    from .storage import unpack

    meta = read_metadata(path)
    try:
        cfg = CodecConfig.from_dict(json.loads(meta["config"]))
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: unreadable config ({e})") from None
    if cfg.sha() != meta.get("config_sha"):
        raise CheckpointError(f"{path}: config does not match its config_sha (edited or corrupt)")
    tensors = load_file(str(path))
    if verify and model_sha(cfg, tensors) != meta.get("model_sha"):
        raise CheckpointError(f"{path}: tensors do not match model_sha {meta.get('model_sha')} (corrupt)")
    _check_stored(tensors, path)
    tensors = unpack(tensors)
    if "semantic_codebook" not in tensors:
        raise CheckpointError(f"{path}: no semantic_codebook tensor")
    with torch.device("meta"):
        encoder = build_encoder(cfg)
        decoder = build_decoder(cfg)
    for prefix, module in (("encoder.", encoder), ("decoder.", decoder)):
        part = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            assign_state(module, part, str(path))
        except ValueError as e:
            raise CheckpointError(str(e)) from None
    encoder.load_semantic_codebook(tensors["semantic_codebook"])
    if hasattr(decoder, "attach_vocoder"):  # the speech route's FARGAN ships once, with its own sha
        from .fargan import load_fargan

        decoder.attach_vocoder(load_fargan())
    codec = SemantiCodec(cfg, encoder, decoder).to(device).eval()
    codec.model_sha = meta["model_sha"]
    return codec
