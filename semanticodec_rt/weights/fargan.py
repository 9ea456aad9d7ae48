"""The shipped FARGAN weights (``assets/fargan.safetensors``): loading, with their provenance.

Written by ``examples/import_fargan.py`` from Debian's opus 1.5.2 source
(``dnn/fargan_data.c``; BSD-3-Clause, ``assets/FARGAN_LICENSE``).  The file keeps the tables as
opus stores them (int8 matrices with float row scales, float small layers) and names its source
in the safetensors metadata: package, version, file, the sha256 of the upstream tarball and of
``fargan_data.c``, and the sha256 of the tensors, checked on load.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from ..decoder.synthesis.fargan import FARGAN

FARGAN_WEIGHTS = Path(__file__).resolve().parent.parent / "assets" / "fargan.safetensors"
FORMAT = "semanticodec_rt.fargan/1"


class FarganWeightsError(ValueError):
    """The FARGAN weights file is missing, damaged or not ours."""


def tensors_sha(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def save_fargan(tensors: dict[str, torch.Tensor], path: str | Path, provenance: dict[str, str]) -> None:
    from safetensors.torch import save_file

    meta = {"format": FORMAT, "sha256": tensors_sha(tensors), **provenance}
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=meta)


def read_provenance(path: str | Path = FARGAN_WEIGHTS) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return dict(f.metadata() or {})


def load_fargan(path: str | Path = FARGAN_WEIGHTS, device: str | torch.device = "cpu") -> FARGAN:
    """The vocoder with the shipped (or given) weights, in eval mode."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise FarganWeightsError(f"{path}: FARGAN weights missing (run examples/import_fargan.py)")
    meta = read_provenance(path)
    if meta.get("format") != FORMAT:
        raise FarganWeightsError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    tensors = load_file(str(path))
    if tensors_sha(tensors) != meta.get("sha256"):
        raise FarganWeightsError(f"{path}: tensors do not match the sha256 in the file (damaged?)")
    if not all(torch.isfinite(t.float()).all() for t in tensors.values()):
        raise FarganWeightsError(f"{path}: non-finite weights")
    return FARGAN.from_tensors(tensors).to(device)
