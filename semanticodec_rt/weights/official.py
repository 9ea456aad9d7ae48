"""Loading the published SemantiCodec checkpoints, with strict key checking.

Folder layout (the Hugging Face repo ``haoheliu/SemantiCodec``)::

    <dir>/semanticodec_tokenrate_{100,50,25}/encoder.ckpt     plain state_dict
    <dir>/semanticodec_tokenrate_{100,50,25}/decoder.ckpt     plain state_dict
    <dir>/codebook_idx/combine_{512,256,128}_audioset_dominate/codebook_{vocab/2}_0.npy

Files are read with ``torch.load(weights_only=True)`` (tensors only, never code).  Every key of
both checkpoints is checked against the key/shape spec of the published architecture, built
from our own modules on the meta device; the groups inference never uses are validated and then
dropped:

* encoder: the MAE decoder (``audiomae.model.decoder_*``, ``audiomae.model.mask_token``);
* decoder: the EMA copy (``model_ema.*``), ``logvar``, the VAE encoder
  (``first_stage_model.encoder.*``, ``first_stage_model.quant_conv.*``).

Any missing, unexpected or mis-shaped key raises :class:`CheckpointMismatchError` naming them.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import torch
from torch import nn

from ..config import CodecConfig
from ..encoder.kmeans import read_codebook
from .state import CheckpointMismatchError, assign_state

HF_REPO_ID = "haoheliu/SemantiCodec"

ENCODER_IGNORED_PREFIXES = ("audiomae.model.decoder_", "audiomae.model.mask_token")
DECODER_IGNORED_PREFIXES = (
    "model_ema.",
    "logvar",
    "first_stage_model.encoder.",
    "first_stage_model.quant_conv.",
)
# Older vector-quantize-pytorch stored this flag as float [1]; torch loads it into the 0-d bool.
_LENIENT_KEYS = ("quantizer._codebook.initted",)

Spec = dict[str, tuple[tuple[int, ...], torch.dtype]]


# -- paths -----------------------------------------------------------------------------------------


def checkpoint_subdir(token_rate: int) -> str:
    return f"semanticodec_tokenrate_{token_rate}"


def codebook_relpath(cfg: CodecConfig) -> str:
    """Relative path of the semantic k-means codebook ``.npy`` (half the vocab in its name)."""
    return (
        f"codebook_idx/combine_{cfg.tokens_per_window}_audioset_dominate/"
        f"codebook_{cfg.semantic_vocab_size // 2}_0.npy"
    )


def parse_official_spec(rest: str) -> tuple[str, int, int]:
    """``DIR[:RATE[:VOCAB]]`` (the part after ``official:``) -> ``(DIR, rate, vocab)``.

    Defaults: rate 100, vocab 32768.  Only trailing all-digit parts are numbers, so a folder
    name may itself hold colons.  ``DIR`` is ``""`` when only numbers were given.
    """
    parts = rest.split(":")
    numbers: list[int] = []
    while len(parts) > 1 and len(numbers) < 2 and parts[-1].isdigit():
        numbers.insert(0, int(parts.pop()))
    rate = numbers[0] if numbers else 100
    vocab = numbers[1] if len(numbers) > 1 else 32768
    return ":".join(parts), rate, vocab


def official_paths(checkpoint_dir: str | Path, cfg: CodecConfig) -> tuple[Path, Path, Path]:
    """``(encoder.ckpt, decoder.ckpt, codebook.npy)`` under ``checkpoint_dir``.

    ``checkpoint_dir`` is the repo root; the ``semanticodec_tokenrate_R`` folder itself is
    accepted too (the codebook is then looked up in its parent).
    """
    root = Path(checkpoint_dir).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"checkpoint folder not found: {root}")
    sub = root / checkpoint_subdir(cfg.token_rate)
    if not (sub / "encoder.ckpt").exists() and (root / "encoder.ckpt").exists():
        sub, root = root, root.parent
    enc, dec, cb = sub / "encoder.ckpt", sub / "decoder.ckpt", root / codebook_relpath(cfg)
    missing = [str(p) for p in (enc, dec, cb) if not p.exists()]
    if missing:
        raise FileNotFoundError("missing official checkpoint files: " + ", ".join(missing))
    return enc, dec, cb


def download_official(cfg: CodecConfig, cache_dir: str | Path | None = None) -> Path:
    """Fetch the three files of ``cfg`` from the hub; returns the local repo root.

    Optional: needs ``huggingface_hub`` and network access.  Nothing in the tests uses it.
    """
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as e:  # pragma: no cover - optional dependency
        raise RuntimeError("downloading needs `pip install huggingface_hub`") from e
    sub = checkpoint_subdir(cfg.token_rate)
    files = [f"{sub}/encoder.ckpt", f"{sub}/decoder.ckpt", codebook_relpath(cfg)]
    local = [Path(hf_hub_download(HF_REPO_ID, f, cache_dir=cache_dir)) for f in files]
    return local[0].parents[1]


# -- reading ---------------------------------------------------------------------------------------
def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint of tensors only (``weights_only``); memory-mapped when possible."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:
        # Legacy (non-zip) serialisation cannot be memory-mapped.
        obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointMismatchError(f"{path}: not a state_dict of tensors")
    return obj


# -- specs -----------------------------------------------------------------------------------------
def module_spec(module: nn.Module) -> Spec:
    return {k: (tuple(v.shape), v.dtype) for k, v in module.state_dict().items()}


def ema_spec(unet_spec: Spec) -> Spec:
    """Keys of the LitEma shadow copy: one buffer per UNet parameter, dots removed."""
    spec: Spec = {"model_ema.decay": ((), torch.float32), "model_ema.num_updates": ((), torch.int32)}
    for k, v in unet_spec.items():
        spec["model_ema." + ("diffusion_model." + k).replace(".", "")] = v
    return spec


def encoder_spec(cfg: CodecConfig) -> Spec:
    """Every ``encoder.ckpt`` key with shape and dtype, ignored groups included."""
    from ..encoder.codec_encoder import SemantiCodecEncoder

    with torch.device("meta"):
        return module_spec(SemantiCodecEncoder(cfg, with_mae_decoder=True))


def decoder_spec(cfg: CodecConfig) -> Spec:
    """Every ``decoder.ckpt`` key with shape and dtype, ignored groups included."""
    from ..decoder.latent_diffusion import LatentDiffusionDecoder

    with torch.device("meta"):
        dec = LatentDiffusionDecoder(cfg, with_vae_encoder=True)
        spec = {"logvar": ((cfg.diffusion.timesteps,), torch.float32)}
        spec.update(module_spec(dec))
        spec.update(ema_spec(module_spec(dec.unet)))
    return spec


def check_state_dict(sd: dict[str, torch.Tensor], spec: Spec, what: str) -> None:
    """Raise :class:`CheckpointMismatchError` unless ``sd`` matches ``spec`` key for key."""
    missing = sorted(set(spec) - set(sd))
    unexpected = sorted(set(sd) - set(spec))
    bad = []
    for k in sorted(set(sd) & set(spec)):
        shape, dtype = spec[k]
        got = tuple(sd[k].shape)
        if k in _LENIENT_KEYS and sd[k].numel() == 1:
            continue
        if got != shape:
            bad.append(f"{k}: shape {list(got)} expected {list(shape)}")
        elif sd[k].is_floating_point() != dtype.is_floating_point:
            bad.append(f"{k}: dtype {sd[k].dtype} expected {dtype}")
    if missing or unexpected or bad:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("mismatched", bad)):
            if items:
                shown = ", ".join(items[:12]) + (f", ... ({len(items)} in all)" if len(items) > 12 else "")
                parts.append(f"{label} keys: {shown}")
        raise CheckpointMismatchError(f"{what} does not match the configured architecture: " + "; ".join(parts))


def drop_prefixes(sd: dict[str, torch.Tensor], prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in sd.items() if not k.startswith(prefixes)}


def load_official_encoder(path: str | Path, cfg: CodecConfig, codebook: torch.Tensor) -> nn.Module:
    """Build the encoder on the meta device and fill it from ``encoder.ckpt``."""
    from ..encoder.codec_encoder import SemantiCodecEncoder

    sd = read_state_dict(path)
    check_state_dict(sd, encoder_spec(cfg), f"{path}")
    with torch.device("meta"):
        enc = SemantiCodecEncoder(cfg, with_mae_decoder=False)
    assign_state(enc, drop_prefixes(sd, ENCODER_IGNORED_PREFIXES), str(path))
    enc.load_semantic_codebook(codebook)
    _assert_materialized(enc, str(path))
    return enc.eval()


def load_official_decoder(path: str | Path, cfg: CodecConfig) -> nn.Module:
    """Build the decoder on the meta device and fill it from ``decoder.ckpt``."""
    from ..decoder.latent_diffusion import LatentDiffusionDecoder

    sd = read_state_dict(path)
    check_state_dict(sd, decoder_spec(cfg), f"{path}")
    with torch.device("meta"):
        dec = LatentDiffusionDecoder(cfg, with_vae_encoder=False)
    assign_state(dec, drop_prefixes(sd, DECODER_IGNORED_PREFIXES), str(path))
    _assert_materialized(dec, str(path))
    return dec.eval()


def config_for_codebook(cfg: CodecConfig, codebook: torch.Tensor) -> CodecConfig:
    """Adopt the codebook size read from the file (the published files are not self-describing)."""
    n = int(codebook.shape[0])
    if n == cfg.semantic_vocab_size:
        return cfg
    warnings.warn(
        f"codebook holds {n} centroids, config says {cfg.semantic_vocab_size}: using {n}",
        stacklevel=3,
    )
    return dataclasses.replace(cfg, semantic_vocab_size=n)


def _assert_materialized(module: nn.Module, what: str) -> None:
    left = [n for n, t in list(module.named_parameters()) + list(module.named_buffers()) if t.is_meta]
    if left:
        raise CheckpointMismatchError(f"{what}: tensors not filled by the checkpoint: {left[:8]}")


def load_official(checkpoint_dir: str | Path | None = None, token_rate: int = 100,
                  semantic_vocab_size: int = 32768, *, config: CodecConfig | None = None,
                  device: str | torch.device = "cpu", download: bool = False):
    """The published checkpoints as a :class:`~semanticodec_rt.codec.SemantiCodec`.

    Args:
        checkpoint_dir: folder holding ``semanticodec_tokenrate_{R}/{encoder,decoder}.ckpt``
            and ``codebook_idx/...``; ``None`` with ``download=True`` fetches them through
            ``huggingface_hub`` (optional, needs the network).
        token_rate, semantic_vocab_size: which published model.
        config: override the architecture (tests use reduced widths); its token rate and
            vocab then win.
    Raises:
        CheckpointMismatchError: a key is missing, unexpected or mis-shaped (names them).
    """
    from ..codec import SemantiCodec
    from ..config import official_config

    cfg = config or official_config(token_rate, semantic_vocab_size)
    if checkpoint_dir is None:
        if not download:
            raise ValueError("give checkpoint_dir, or download=True to fetch from the hub")
        checkpoint_dir = download_official(cfg)
    enc_path, dec_path, cb_path = official_paths(checkpoint_dir, cfg)
    codebook = read_codebook(cb_path, cfg.feature_dim)
    cfg = config_for_codebook(cfg, codebook)
    encoder = load_official_encoder(enc_path, cfg, codebook)
    decoder = load_official_decoder(dec_path, cfg)
    return SemantiCodec(cfg, encoder, decoder).to(device).eval()
