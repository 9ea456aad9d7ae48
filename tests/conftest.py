"""Shared pytest fixtures: golden-vector access and the reduced configs the golden files use."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from semanticodec_rt.config import (
    CodecConfig, UNetConfig, VAEConfig, ViTConfig, VocoderConfig, official_config,
)

REPO = Path(__file__).resolve().parents[1]


def _find_golden_dir() -> Path | None:
    env = os.environ.get("SCRT_GOLDEN_DIR")
    candidates = [Path(env)] if env else []
    candidates += [REPO.parent / "shared" / "reference" / "golden", REPO / "shared" / "reference" / "golden"]
    for c in candidates:
        if (c / "README.md").exists():
            return c
    return None


GOLDEN_DIR = _find_golden_dir()
OFFICIAL_MANIFEST_DIR = None if GOLDEN_DIR is None else GOLDEN_DIR.parent / "official_manifest"


def require_golden() -> Path:
    if GOLDEN_DIR is None:
        pytest.skip("golden vectors not found: set SCRT_GOLDEN_DIR or place ../shared/reference/golden")
    return GOLDEN_DIR


@functools.lru_cache(maxsize=None)
def golden(name: str) -> tuple[dict[str, np.ndarray], dict]:
    """Load ``<name>.npz`` and ``<name>.json`` from the golden folder (cached per process)."""
    d = require_golden()
    with np.load(d / f"{name}.npz") as z:
        arrays = {k: z[k] for k in z.files}
    meta_path = d / f"{name}.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    return arrays, meta


def state_dict_from(arrays: dict[str, np.ndarray], prefix: str = "sd/") -> dict[str, torch.Tensor]:
    """Tensors stored under ``prefix`` with the prefix removed (official key names)."""
    return {k[len(prefix):]: torch.from_numpy(np.array(v)) for k, v in arrays.items() if k.startswith(prefix)}


def atol(meta: dict, key: str) -> float:
    """The golden file's suggested absolute tolerance for ``key``."""
    t = meta["suggested_tolerance"][key]
    if not isinstance(t, dict):
        raise KeyError(f"{key} has a non-numeric tolerance: {t!r}")
    return float(t["atol"])


def assert_close(ours, ref, tol: float, what: str = "") -> None:
    ours = ours.detach().cpu().numpy() if isinstance(ours, torch.Tensor) else np.asarray(ours)
    ref = np.asarray(ref)
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} != {ref.shape}"
    err = float(np.abs(ours.astype(np.float64) - ref.astype(np.float64)).max()) if ref.size else 0.0
    assert err <= tol, f"{what}: max abs err {err:.3e} > atol {tol:.1e}"


def golden_config(token_rate: int) -> CodecConfig:
    """The reduced configuration of the golden files (official structure, smaller widths)."""
    base = official_config(token_rate, 4096)
    return dataclasses.replace(
        base,
        name=f"golden-r{token_rate}",
        semantic_vocab_size=512,
        vit=ViTConfig(dim=48, heads=3, decoder_dim=16, decoder_depth=8, decoder_heads=16),
        acoustic=dataclasses.replace(base.acoustic, codebook_size=256),
        unet=UNetConfig(model_channels=32, num_head_channels=16),
        vae=VAEConfig(ch=32),
        vocoder=VocoderConfig(upsample_initial_channel=64),
    )


@pytest.fixture(autouse=True)
def _deterministic_threads():
    """Golden files were made with 1 thread; keep runs reproducible and light on a 2-core box."""
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)
