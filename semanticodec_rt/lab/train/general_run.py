"""The general-audio route's recipe, on top of a finished speech-route run:
general -> mel_vocoder -> router.

``start`` builds a ``sp-small-r50-g`` codec from a speech model (a run folder's
``model.safetensors`` or an exported checkpoint): every tensor of the speech model is copied
unchanged, so tokens and the speech path decode exactly as before; the general mel path's input
layer and GRU start as the speech path's (a warm start: both read the same tokens), its head
fresh; the iSTFT vocoder starts from a vocoder trial's generator (``vocoder``: the
``final.safetensors`` of ``examples/vocoder_trials.py train istft``; random without one).  Then
the three stages (:mod:`.speech_stages`) train on the ``general`` mix of streams (``data
features --mix general``, whose clip lists give the router its labels), resumable like the
speech recipe, and :func:`.speech_run.export` writes the checkpoint.

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
from .speech_stages import GENERAL_STAGES

PRESET = "sp-small-r50-g"


@dataclass(frozen=True)
class GeneralRecipe:
    """Steps of the three stages, the shared batch shape and learning rates (``train general
    --set KEY=VALUE``).  The vocoder fine-tune runs in float32 (its inverse STFT and spectral
    losses are not autocast-safe) at its own, lower rate."""

    general_steps: int = 4500
    vocoder_steps: int = 600
    router_steps: int = 1500
    batch: int = 16
    units: int = 64
    lr: float = 1e-3
    vocoder_lr: float = 2e-4
    vocoder_batch: int = 4
    precision: str = "bf16"
    seed: int = 0


def _speech_tensors(base: Path) -> dict[str, torch.Tensor]:
    """The tensors of a speech model: a run folder (float32) or an exported checkpoint."""
    from safetensors.torch import load_file

    if base.is_dir():
        return load_file(str(base / MODEL_FILE))
    from ...api import load_model

    return {k: v.float() for k, v in model_tensors(load_model(str(base))).items()}


def start(base: str | Path, run: str | Path, log=print, vocoder: str | Path | None = None):
    """The ``-g`` codec of ``run``: resumed if it exists, else built from ``base`` (and the
    vocoder trial's generator ``vocoder``)."""
    run, base = Path(run), Path(base)
    codec = build_codec(PRESET)
    if load_model_state(codec, run):
        return codec
    t = _speech_tensors(base)
    for part, mod in (("encoder.", codec.encoder), ("decoder.", codec.decoder)):
        missing, unexpected = mod.load_state_dict({k[len(part):]: v for k, v in t.items() if k.startswith(part)},
                                                  strict=False)
        new = [k for k in missing if not k.startswith(("general.", "mel_vocoder.", "router."))]
        if new or unexpected:
            raise ValueError(f"{base}: not a speech-route model of this layout (missing {new[:3]}, "
                             f"unexpected {unexpected[:3]})")
    codec.encoder.load_semantic_codebook(t["semantic_codebook"])
    g, r = codec.decoder.general, codec.decoder.regressor
    g.inp.load_state_dict(r.inp.state_dict())
    g.gru.load_state_dict(r.gru.state_dict())
    if vocoder is not None:
        from safetensors.torch import load_file

        codec.decoder.mel_vocoder.load_state_dict(load_file(str(vocoder)))
    run.mkdir(parents=True, exist_ok=True)
    save_model(codec, run)
    (run / KMEANS_DONE).write_text(json.dumps({"from": str(base)}))
    if base.is_dir() and (base / "recipe.json").exists():  # the speech stages' record carries over
        shutil.copy(base / "recipe.json", run / "base_recipe.json")
    log(f"general run {run}: started from {base}" + (f" and the vocoder {vocoder}" if vocoder else ""))
    return codec


def run_general(base: str | Path, data: str | Path, run: str | Path, recipe: GeneralRecipe = GeneralRecipe(), *,
                vocoder: str | Path | None = None, max_minutes: float | None = None, log=print) -> dict:
    """Train the mel path, its vocoder, then the router, each up to its step count (resuming)."""
    run, data = Path(run), Path(data)
    codec = start(base, run, log, vocoder)
    record_path = run / "recipe.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {
        "recipe": {**asdict(recipe), "data": str(data), "base": str(base), "vocoder": str(vocoder)}, "cpu_s": {}}
    deadline = None if max_minutes is None else time.time() + 60 * max_minutes
    r = recipe
    plan = {"general": (r.general_steps, r.batch, r.lr, r.precision),
            "mel_vocoder": (r.vocoder_steps, r.vocoder_batch, r.vocoder_lr, "fp32"),
            "router": (r.router_steps, r.batch, r.lr, r.precision)}
    for name in GENERAL_STAGES:
        steps, batch, lr, precision = plan[name]
        if stage_done(run, name, steps):
            continue
        left = None if deadline is None else max(0.0, (deadline - time.time()) / 60)
        if left is not None and left <= 0:
            break
        out = train_stage(codec, name, data, run, steps=steps, batch=batch, units=r.units, lr=lr, seed=r.seed,
                          max_minutes=left, precision=precision, log=log)
        record["cpu_s"][name] = json.loads((run / name / "state.json").read_text()).get("cpu_s", 0.0)
        record_path.write_text(json.dumps(record, indent=1))
        if out["step"] < out["total_steps"]:
            break
    return record
