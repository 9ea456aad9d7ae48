"""The speech route's whole recipe, resumable: semantic ViT -> k-means -> codec -> flow.

``semanticodec-rt train speech --data STREAMS --run RUN`` runs every stage that has not reached
its step count (a stage that is done is skipped; a stage that stopped resumes), writes
``RUN/model.safetensors`` after each, and ``RUN/recipe.json`` with the steps, batch and CPU
time of each stage.  ``--max-minutes`` stops (resumably) after that much wall time, so a
session can run a slice of the recipe and the next session continues it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ...config import PRESETS
from .speech_loop import load_model_state, run_kmeans, save_model, set_feature_stats, train_stage
from .speech_stages import GENERAL_STAGES

#: written once the semantic codebook is fitted (a random codebook is in the model before that)
KMEANS_DONE = "kmeans.json"


@dataclass(frozen=True)
class Recipe:
    """Steps per stage and the shared batch shape (16 crops x 64 positions = 41 s of audio)."""

    semantic_steps: int = 4000
    codec_steps: int = 16000
    flow_steps: int = 6000
    batch: int = 16
    units: int = 64
    lr: float = 1e-3
    precision: str = "bf16"  # CPU autocast: 1.6x faster steps here (speech_loop.train_stage)
    kmeans_positions: int = 200_000
    kmeans_iters: int = 20
    seed: int = 0


def recipe_with(overrides: list[str], base=Recipe()):
    """``["codec_steps=8000", "lr=5e-4"]`` -> a copy of ``base`` (a :class:`Recipe`, or any recipe
    dataclass such as :class:`.general_run.GeneralRecipe`) with those fields changed."""
    import dataclasses

    fields = {f.name: f.type for f in dataclasses.fields(base)}
    changes = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or key not in fields:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE with KEY one of {', '.join(fields)}")
        kind = type(getattr(base, key))
        try:
            changes[key] = kind(value)
        except ValueError:
            raise ValueError(f"--set {item!r}: {key} takes a {kind.__name__}") from None
    return dataclasses.replace(base, **changes)


def build_codec(preset: str = "sp-small-r50"):
    """A fresh speech-route codec (random weights, the shipped FARGAN attached)."""
    from ...codec import SemantiCodec

    return SemantiCodec.random(PRESETS[preset], seed=0)


def stage_done(run: Path, name: str, steps: int) -> bool:
    """Whether stage ``name`` of ``run`` has reached ``steps`` (its state.json says so)."""
    p = run / name / "state.json"
    return p.exists() and json.loads(p.read_text())["step"] >= steps


def run_recipe(data: str | Path, run: str | Path, recipe: Recipe = Recipe(), *, preset: str = "sp-small-r50",
               max_minutes: float | None = None, threads: int | None = None, log=print) -> dict:
    data, run = Path(data), Path(run)
    run.mkdir(parents=True, exist_ok=True)
    if threads:
        torch.set_num_threads(threads)
    codec = build_codec(preset)
    stats = json.loads((data / "stats.json").read_text())
    if not load_model_state(codec, run):
        set_feature_stats(codec, stats)
        save_model(codec, run)
    record_path = run / "recipe.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {"recipe": vars(recipe), "cpu_s": {}}
    deadline = None if max_minutes is None else time.time() + 60 * max_minutes

    def left() -> float | None:
        return None if deadline is None else max(0.0, (deadline - time.time()) / 60)

    def account(name: str, t0: float) -> None:
        state = run / name / "state.json"
        if state.exists():  # a training stage counts its own CPU time at every checkpoint
            record["cpu_s"][name] = json.loads(state.read_text()).get("cpu_s", 0.0)
        else:
            record["cpu_s"][name] = record["cpu_s"].get(name, 0.0) + (time.process_time() - t0)
        record_path.write_text(json.dumps(record, indent=1))

    for name, steps in (("semantic", recipe.semantic_steps), ("kmeans", None), ("codec", recipe.codec_steps),
                        ("flow", recipe.flow_steps)):
        if deadline is not None and left() <= 0:
            break
        t0 = time.process_time()
        if name == "kmeans":
            if (run / KMEANS_DONE).exists():
                continue
            run_kmeans(codec, data, run, recipe.kmeans_positions, recipe.kmeans_iters, log=log)
            (run / KMEANS_DONE).write_text(json.dumps({"positions": recipe.kmeans_positions,
                                                      "iters": recipe.kmeans_iters}))
        else:
            if stage_done(run, name, steps):
                continue
            out = train_stage(codec, name, data, run, steps=steps, batch=recipe.batch, units=recipe.units,
                              lr=recipe.lr, seed=recipe.seed, max_minutes=left(), precision=recipe.precision,
                              log=log)
            if out["step"] < out["total_steps"]:
                account(name, t0)
                break
        account(name, t0)
    return record


def _run_config(run: str | Path) -> dict:
    """The config stored with a run folder's model file (``{}`` when there is none)."""
    from safetensors import safe_open

    path = Path(run) / "model.safetensors"
    if not path.exists():
        return {}
    with safe_open(str(path), framework="pt") as f:
        return json.loads((f.metadata() or {}).get("config", "{}"))


def is_speech_run(run: Path) -> bool:
    """Whether ``run`` is a speech-route run folder (its model file names an ``sp`` config)."""
    return _run_config(run).get("speech") is not None


def progress(run: str | Path) -> list[str]:
    """``["semantic 4000/4000", "kmeans done", ...]`` for a run folder; a general-route run
    (:mod:`.general_run`, started from a finished speech model) lists its own stages."""
    run = Path(run)
    out, names = [], ("semantic", "kmeans", "codec", "flow")
    if (run / "base_recipe.json").exists() or (run / "general").exists():
        out, names = ["speech stages: those of the base model"], GENERAL_STAGES
    for name in names:
        if name == "kmeans":
            out.append(f"kmeans {'done' if (run / KMEANS_DONE).exists() else 'to do'}")
            continue
        p = run / name / "state.json"
        if p.exists():
            st = json.loads(p.read_text())
            out.append(f"{name} {st['step']}/{st['total_steps']}")
        else:
            out.append(f"{name} to do")
    return out


def run_preset(run: str | Path) -> str:
    """The preset of a speech run's model: ``sp-small-r50``, or ``sp-small-r50-g`` when its
    config has the general-audio route."""
    return "sp-small-r50-g" if (_run_config(run).get("speech") or {}).get("general_route") else "sp-small-r50"


def export(run: str | Path, out: str | Path | None = None, *, storage: str = "float16",
           preset: str | None = None) -> tuple[Path, str]:
    """Write the run's model as a codec checkpoint (FARGAN not inside: it ships in the package);
    the metadata holds the recipe, the CPU time per stage and the FARGAN provenance.  ``preset``
    defaults to the run's own (:func:`run_preset`)."""
    from ...weights import checkpoint
    from ...weights.fargan import read_provenance

    run = Path(run)
    codec = build_codec(preset or run_preset(run))
    if not load_model_state(codec, run):
        raise FileNotFoundError(f"{run}: no model.safetensors (train it with 'train speech')")
    if not (run / KMEANS_DONE).exists():
        raise ValueError(f"{run}: the semantic codebook is not fitted yet (run 'train speech' further)")
    record = json.loads((run / "recipe.json").read_text()) if (run / "recipe.json").exists() else {}
    if (run / "base_recipe.json").exists():  # a general run: the speech stages it started from
        base = json.loads((run / "base_recipe.json").read_text())
        record = {"recipe": {**base.get("recipe", {}), **record.get("recipe", {})},
                  "cpu_s": {**base.get("cpu_s", {}), **record.get("cpu_s", {})}}
    meta = {"recipe": json.dumps(record.get("recipe", {})), "cpu_s": json.dumps(record.get("cpu_s", {})),
            "stages": ", ".join(progress(run)),
            "fargan": json.dumps({k: v for k, v in read_provenance().items() if k != "format"})}
    path = Path(out) if out is not None else run / "export.safetensors"
    sha = checkpoint.save(codec, path, storage=storage, metadata=meta)
    return path, sha


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="folder of `data features` streams")
    ap.add_argument("--run", required=True, help="run folder (created; resumed if it exists)")
    ap.add_argument("--max-minutes", type=float, help="stop (resumably) after this much wall time")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: leave a core free)")
    a = ap.parse_args(argv)
    run_recipe(a.data, a.run, max_minutes=a.max_minutes, threads=a.threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
