"""A speech run folder as a small float16 *pack* that can be committed, and back.

A run of ``train speech`` is ~90 MB of float32 (the model, and per stage the Adam moments), too
big for the repository and too costly to lose: the recipe took CPU-hours.  :func:`pack` writes
the same files with every float32 tensor stored as float16 (and without the frozen semantic
stage's optimizer state: ~28 MB for the shipped run), the JSON records as
they are, and a ``PACK.json`` listing each file's sha256; :func:`unpack` checks those and makes a
run folder again (float32), which ``train speech --out RUN`` then resumes.  float16 moments and
weights are not bit-exact, so a resumed run continues *from* the packed one rather than
replaying it; the loss picks up where it was to ~1e-3.

Only safetensors and JSON are read or written: nothing in a pack can run code.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..data.opus_source import sha256 as _sha256
from .speech_loop import MODEL_FILE
from .speech_run import KMEANS_DONE

__all__ = ["PACK_INDEX", "pack", "unpack"]

PACK_INDEX = "PACK.json"
_FILES = (MODEL_FILE, "recipe.json", KMEANS_DONE)
_STAGES = ("semantic", "codec", "flow")
_STAGE_FILES = ("state.safetensors", "state.json", "log.jsonl")


def _members(run: Path) -> list[Path]:
    """The files of ``run`` that a pack holds, relative to it (those that exist).

    The semantic stage's optimizer state (17 MB) is left out once the k-means codebook is
    fitted: the codebook freezes the semantic branch (more semantic steps would invalidate it
    and everything trained on its ids), so nothing can resume that stage any more.
    """
    rel = [Path(f) for f in _FILES] + [Path(s) / f for s in _STAGES for f in _STAGE_FILES]
    frozen = {Path("semantic/state.safetensors")} if (run / KMEANS_DONE).is_file() else set()
    return [r for r in rel if (run / r).is_file() and r not in frozen]


def _convert(src: Path, dst: Path, dtype: torch.dtype) -> None:
    """Copy a safetensors file with its float32 (``dtype == float16``) or float16 tensors cast."""
    with safe_open(str(src), framework="pt") as f:
        meta = f.metadata()
        tensors = {}
        for k in f.keys():
            t = f.get_tensor(k)
            # scalars (Adam's step counts) stay float32: float16 holds integers exactly only to 2048
            if t.is_floating_point() and t.dtype in (torch.float32, torch.float16) and t.numel() > 1:
                if dtype == torch.float16 and t.dtype == torch.float32 and torch.isfinite(t).all() and \
                        t.abs().max() > 65504:
                    raise ValueError(f"{src}: {k} exceeds the float16 range; it cannot be packed")
                t = t.to(dtype)
            tensors[k] = t.contiguous()
    save_file(tensors, str(dst), metadata=meta)


def pack(run: str | Path, dest: str | Path) -> dict:
    """Write ``run``'s model, stage states and records into ``dest`` (float16); returns the index."""
    run, dest = Path(run), Path(dest)
    members = _members(run)
    if Path(MODEL_FILE) not in members:
        raise FileNotFoundError(f"{run}: no model.safetensors (not a speech run folder?)")
    dest.mkdir(parents=True, exist_ok=True)
    index = {"format": "semanticodec-rt speech run pack 1", "files": {}}
    for rel in members:
        out = _place(run / rel, dest / rel, torch.float16)
        index["files"][rel.as_posix()] = _sha256(out)
    (dest / PACK_INDEX).write_text(json.dumps(index, indent=1) + "\n")
    return index


def unpack(src: str | Path, run: str | Path) -> list[str]:
    """Make the run folder ``run`` (which must not hold a model yet) from the pack ``src``.

    Raises:
        FileNotFoundError: no ``PACK.json`` in ``src``.  ValueError: a file is missing, or its
            sha256 differs from the index (a damaged or altered pack), or ``run`` has a model.
    """
    src, run = Path(src), Path(run)
    index_path = src / PACK_INDEX
    if not index_path.is_file():
        raise FileNotFoundError(f"{src}: no {PACK_INDEX} (not a speech run pack)")
    files = json.loads(index_path.read_text())["files"]
    if (run / MODEL_FILE).exists():
        raise ValueError(f"{run} already holds a model; unpack into a new folder")
    for rel, digest in files.items():
        path = src / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise ValueError(f"{src}: {rel!r} is not a path inside the pack")
        if not path.is_file() or _sha256(path) != digest:
            raise ValueError(f"{src}: {rel} is missing or does not match {PACK_INDEX}")
    for rel in files:
        _place(src / rel, run / rel, torch.float32)
    return sorted(files)


def _place(src: Path, dst: Path, dtype: torch.dtype) -> Path:
    """Copy one member: safetensors with its floats cast to ``dtype``, anything else as it is."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.suffix == ".safetensors":
        _convert(src, dst, dtype)
    else:
        shutil.copyfile(src, dst)
    return dst
