"""The general-audio route's recipe, on top of a finished speech-route run: general -> router.

``start`` builds a ``sp-small-r50-g`` codec from a speech model (a run folder's
``model.safetensors`` or an exported checkpoint): every tensor of the speech model is copied
unchanged, so tokens and the speech path decode exactly as before; the general path starts as a
copy of the speech path (a warm start: both map the same tokens to the same features).  Then
the ``general`` and ``router`` stages (:mod:`.speech_stages`) train on the ``general`` mix of
streams (``data features --mix general``), resumable like the speech recipe, and
:func:`.speech_run.export` writes the checkpoint.

CPU time per stage is kept in ``RUN/recipe.json`` as in :mod:`.speech_run`.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .speech_loop import MODEL_FILE, load_model_state, model_tensors, save_model, train_stage
from .speech_run import KMEANS_DONE, build_codec, stage_done

PRESET = "sp-small-r50-g"
GENERAL_STAGES = ("general", "router")


@dataclass(frozen=True)
class GeneralRecipe:
    """Steps of the two stages and the shared batch shape (``train general --set KEY=VALUE``)."""

    general_steps: int = 6000
    router_steps: int = 1500
    batch: int = 16
    units: int = 64
    lr: float = 1e-3
    precision: str = "bf16"
    seed: int = 0


def _speech_tensors(base: Path) -> dict[str, torch.Tensor]:
    """The tensors of a speech model: a run folder (float32) or an exported checkpoint."""
    from safetensors.torch import load_file

    if base.is_dir():
        return load_file(str(base / MODEL_FILE))
    from ...api import load_model

    return {k: v.float() for k, v in model_tensors(load_model(str(base))).items()}


def start(base: str | Path, run: str | Path, log=print):
    """The ``-g`` codec of ``run``: resumed if it exists, else built from ``base``."""
    run, base = Path(run), Path(base)
    codec = build_codec(PRESET)
    if load_model_state(codec, run):
        return codec
    t = _speech_tensors(base)
    for part, mod in (("encoder.", codec.encoder), ("decoder.", codec.decoder)):
        missing, unexpected = mod.load_state_dict({k[len(part):]: v for k, v in t.items() if k.startswith(part)},
                                                  strict=False)
        new = [k for k in missing if not k.startswith(("general.", "router."))]
        if new or unexpected:
            raise ValueError(f"{base}: not a speech-route model of this layout (missing {new[:3]}, "
                             f"unexpected {unexpected[:3]})")
    codec.encoder.load_semantic_codebook(t["semantic_codebook"])
    codec.decoder.general.load_state_dict(codec.decoder.regressor.state_dict())
    run.mkdir(parents=True, exist_ok=True)
    save_model(codec, run)
    (run / KMEANS_DONE).write_text(json.dumps({"from": str(base)}))
    if base.is_dir() and (base / "recipe.json").exists():  # the speech stages' record carries over
        shutil.copy(base / "recipe.json", run / "base_recipe.json")
    log(f"general run {run}: started from {base}")
    return codec


def run_general(base: str | Path, data: str | Path, run: str | Path, recipe: GeneralRecipe = GeneralRecipe(), *,
                max_minutes: float | None = None, log=print) -> dict:
    """Train the general path, then the router, each up to its step count (resuming)."""
    run, data = Path(run), Path(data)
    codec = start(base, run, log)
    record_path = run / "recipe.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {
        "recipe": {**asdict(recipe), "data": str(data), "base": str(base)}, "cpu_s": {}}
    deadline = None if max_minutes is None else time.time() + 60 * max_minutes
    r = recipe
    for name, steps in zip(GENERAL_STAGES, (r.general_steps, r.router_steps)):
        if stage_done(run, name, steps):
            continue
        left = None if deadline is None else max(0.0, (deadline - time.time()) / 60)
        if left is not None and left <= 0:
            break
        out = train_stage(codec, name, data, run, steps=steps, batch=r.batch, units=r.units, lr=r.lr, seed=r.seed,
                          max_minutes=left, precision=r.precision, log=log)
        record["cpu_s"][name] = json.loads((run / name / "state.json").read_text()).get("cpu_s", 0.0)
        record_path.write_text(json.dumps(record, indent=1))
        if out["step"] < out["total_steps"]:
            break
    return record
