"""The one training loop every stage runs through.

Run folder layout (``RUN/STAGE/``):

* ``config.json``            the :class:`TrainConfig` the stage started with (resume checks it);
* ``ckpt/step-NNNNNNN.safetensors``  live weights of every group (``live.<group>.<key>``) and the
  EMA weights (``ema.<key>``); ``ckpt/step-NNNNNNN.state.{json,safetensors}`` optimiser and
  scaler states, EMA counter, the stage's extra state and the step (:mod:`.safe_state`: data
  only, never a pickle, so a run folder from anywhere is safe to resume).  The last three
  checkpoints are kept; a folder holding only the old pickled ``.pt`` states is refused;
* ``log.jsonl``               one line per ``log_every`` steps: step, lr, losses, seconds/step;
* ``final.safetensors``      the exported (EMA) weights once the last step is done.

Exact resume: batches, masks, noise and timesteps are pure functions of (seed, step) (see
:mod:`.data`), so restoring weights, optimiser moments, EMA and the stage's extra state at step
s continues bit-for-bit as if never stopped.  A checkpoint is also written when the loop stops
early (Ctrl-C or ``max_steps``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from pathlib import Path

import torch

from .configs import TrainConfig
from .data import CropSource
from .distributed import World, average_gradients, broadcast_module, init_from_env
from .ema import EMA
from .safe_state import load_state, save_state
from .stages import stage_class

_CKPT = re.compile(r"step-(\d+)\.safetensors$")
KEEP_CHECKPOINTS = 3
#: stage settings a resumed run may change (a longer run, other checkpoint/log intervals)
RESUMABLE_CHANGES = ("steps", "ckpt_every", "log_every")


class RunDirError(ValueError):
    """The run folder does not match the request (existing run without --resume, other config)."""


def _state_base(weights: Path) -> Path:
    """``ckpt/step-N.safetensors`` -> ``ckpt/step-N.state`` (its :mod:`.safe_state` pair)."""
    return weights.with_name(weights.name[: -len(".safetensors")] + ".state")


def checkpoints(stage_dir: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of the complete checkpoints in a stage folder, oldest first.

    Raises:
        RunDirError: the folder holds only checkpoints of the old pickled format, which are not
            loaded (unpickling a file can run any code it holds).
    """
    d = stage_dir / "ckpt"
    found, pickled = [], 0
    if d.is_dir():
        for p in d.iterdir():
            m = _CKPT.search(p.name)
            if not m or p.name.endswith(".state.safetensors"):
                continue
            base = _state_base(p)
            if base.with_name(base.name + ".json").exists():
                found.append((int(m.group(1)), p))
            elif p.with_suffix(".pt").exists():
                pickled += 1
    if pickled and not found:
        raise RunDirError(f"{d}: only old-format checkpoints (pickled .pt states), which are not loaded "
                          "for safety; restart the stage without --resume")
    return sorted(found)


def _config_difference(saved: dict, now: dict) -> list[str]:
    """Dotted names of the settings that differ, ignoring :data:`RESUMABLE_CHANGES`."""
    out = []
    for k in sorted(set(saved) | set(now)):
        a, b = saved.get(k), now.get(k)
        if a is None and isinstance(b, dict):
            continue  # a stage added to TrainConfig after this run started
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{k}.{f}" for f in sorted(set(a) | set(b))
                    if f not in RESUMABLE_CHANGES and a.get(f) != b.get(f)]
        elif a != b:
            out.append(k)
    return out


@contextlib.contextmanager
def _stage_lock(stage_dir: Path, main: bool):
    """Exclusive ``flock`` on ``STAGE/.lock`` (rank 0 only); the holder's pid is written in it."""
    if not main:
        yield
        return
    import fcntl

    stage_dir.mkdir(parents=True, exist_ok=True)
    with open(stage_dir / ".lock", "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "?"
            raise RunDirError(f"{stage_dir} is being trained by another process (pid {holder}); "
                              "wait for it or stop it first") from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _autocast(device: torch.device, precision: str):
    if device.type != "cuda" or precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast("cuda", dtype=dtype)


class Trainer:
    """Runs one stage.  See :func:`train` for the arguments."""

    def __init__(self, stage_name: str, tcfg: TrainConfig, data: str | Path, run_dir: str | Path, *,
                 device: str = "cpu", resume: bool = False, precision: str = "fp32",
                 progress: bool = True, world: World | None = None) -> None:
        if precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be fp32, bf16 or fp16, got {precision!r}")
        self.world = world or init_from_env(device)
        if device.startswith("cuda") and self.world.size > 1:
            device = f"cuda:{self.world.local_rank}"
        self.device = torch.device(device)
        self.tcfg = tcfg
        self.settings = tcfg.stage(stage_name)
        self.precision = precision
        self.progress = progress and self.world.main
        self.stage_dir = Path(run_dir) / stage_name
        source = CropSource(data, "train", tcfg.class_weights, tcfg.seed)
        self.stage = stage_class(stage_name)(tcfg, Path(run_dir), source, self.device, self.world)
        for m in self.stage.groups.values():
            m.to(self.device)
            broadcast_module(m, self.world)
        s = self.settings
        self.optimizers = {
            g: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=s.lr, betas=s.betas,
                                 weight_decay=s.weight_decay)
            for g, m in self.stage.groups.items()
        }
        self.scalers = {g: torch.amp.GradScaler("cuda") for g in self.stage.groups} if (
            precision == "fp16" and self.device.type == "cuda") else {}
        export = self.stage.groups.get(self.stage.export_group)
        self.ema = EMA(export, s.ema_decay) if (export is not None and s.ema_decay > 0) else None
        self.step = 0
        self._prepare_dir(resume)

    # -- run folder ------------------------------------------------------------------------------
    def _prepare_dir(self, resume: bool) -> None:
        cfg_path = self.stage_dir / "config.json"
        found = checkpoints(self.stage_dir)
        if found and not resume:
            raise RunDirError(
                f"{self.stage_dir} already holds checkpoints (last: step {found[-1][0]}); "
                "pass --resume to continue it or choose another --out"
            )
        if resume and cfg_path.exists():
            diff = _config_difference(json.loads(cfg_path.read_text()), json.loads(self.tcfg.to_json()))
            if diff:
                raise RunDirError(f"{self.stage_dir} was started with another config (differs in: "
                                  f"{', '.join(diff)}); resume with the same --config/--set "
                                  f"(only {', '.join(RESUMABLE_CHANGES)} may change)")
        if found:
            self._load(found[-1][1])
        if self.world.main:
            self.stage_dir.mkdir(parents=True, exist_ok=True)
            cfg_path.write_text(json.dumps(json.loads(self.tcfg.to_json()), indent=1, sort_keys=True) + "\n")

    def _save(self) -> None:
        if not self.world.main:
            return
        from safetensors.torch import save_file

        d = self.stage_dir / "ckpt"
        d.mkdir(parents=True, exist_ok=True)
        tensors = {}
        for g, m in self.stage.groups.items():
            for k, v in m.state_dict().items():
                tensors[f"live.{g}.{k}"] = v.detach().cpu().contiguous()
        if self.ema is not None:
            for k, v in self.ema.shadow.items():
                tensors[f"ema.{k}"] = v.detach().cpu().contiguous()
        state = {
            "step": self.step,
            "optimizers": {g: o.state_dict() for g, o in self.optimizers.items()},
            "scalers": {g: s.state_dict() for g, s in self.scalers.items()},
            "ema": None if self.ema is None else {"decay": self.ema.decay, "updates": self.ema.updates},
            "extra": self.stage.extra_state(),
        }
        weights = d / f"step-{self.step:07d}.safetensors"
        # Weights first, then the state pair (its JSON last): a crash never leaves a checkpoint
        # that checkpoints() would pick without all its files.
        tmp_st = weights.with_name(weights.name + ".tmp")
        save_file(tensors, str(tmp_st), metadata={"step": str(self.step)})
        os.replace(tmp_st, weights)
        save_state(state, _state_base(weights))
        for _, old in checkpoints(self.stage_dir)[:-KEEP_CHECKPOINTS]:
            base = _state_base(old)
            for f in (base.with_name(base.name + ".json"), base.with_name(base.name + ".safetensors"), old):
                f.unlink(missing_ok=True)

    def _load(self, path: Path) -> None:
        from safetensors.torch import load_file

        tensors = load_file(str(path), device=str(self.device))
        for g, m in self.stage.groups.items():
            prefix = f"live.{g}."
            m.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
        state = load_state(_state_base(path), self.device)
        for g, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][g])
        for g, s in self.scalers.items():
            if g in state.get("scalers", {}):
                s.load_state_dict(state["scalers"][g])
        if self.ema is not None and state["ema"] is not None:
            self.ema.updates = state["ema"]["updates"]
            for k in self.ema.shadow:
                self.ema.shadow[k].copy_(tensors[f"ema.{k}"])
        self.stage.load_extra_state(state["extra"])
        self.step = int(state["step"])

    # -- the loop --------------------------------------------------------------------------------
    def _optimize(self, group: str, loss: torch.Tensor) -> float:
        module, opt = self.stage.groups[group], self.optimizers[group]
        params = [p for p in module.parameters() if p.requires_grad]
        opt.zero_grad(set_to_none=True)
        scaler = self.scalers.get(group)
        (scaler.scale(loss) if scaler else loss).backward()
        average_gradients(params, self.world)
        if scaler:
            scaler.unscale_(opt)
        norm = torch.nn.utils.clip_grad_norm_(params, self.settings.grad_clip)
        if scaler:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        return float(norm)

    def run(self, max_steps: int | None = None) -> dict:
        """Train up to the stage's ``steps`` (or ``max_steps`` more); returns the last log line.

        The stage folder is locked while it runs: a second process training the same stage
        (which would interleave logs and overwrite checkpoints) is refused with RunDirError.
        """
        with _stage_lock(self.stage_dir, self.world.main):
            return self._run(max_steps)

    def _run(self, max_steps: int | None) -> dict:
        s = self.settings
        end = s.steps if max_steps is None else min(s.steps, self.step + max_steps)
        log_path = self.stage_dir / "log.jsonl"
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=s.steps, initial=self.step, desc=f"train {self.stage.name}", unit="step",
                       dynamic_ncols=True)
        last: dict = {}
        acc: dict[str, float] = {}
        n_acc, t_acc = 0, 0.0
        try:
            while self.step < end:
                t0 = time.perf_counter()
                factor = self.stage.lr_factor(self.step)
                for opt in self.optimizers.values():
                    for group in opt.param_groups:
                        group["lr"] = s.lr * factor
                batch = self.stage.batch(self.step)
                cache: dict = {}
                logs: dict[str, float] = {}
                for g in self.stage.active_groups(self.step):
                    with _autocast(self.device, self.precision):
                        loss, parts = self.stage.loss(g, batch, cache)
                    logs.update(parts)
                    logs[f"grad_norm_{g}"] = self._optimize(g, loss)
                with torch.no_grad():
                    logs.update(self.stage.after_step(self.step, batch, cache))
                if self.ema is not None:
                    self.ema.update(self.stage.groups[self.stage.export_group])
                self.step += 1
                dt = time.perf_counter() - t0
                for k, v in logs.items():
                    acc[k] = acc.get(k, 0.0) + float(v)
                n_acc, t_acc = n_acc + 1, t_acc + dt
                if bar is not None:
                    bar.update(1)
                    main = next((k for k in logs if k.startswith("loss")), None)
                    if main:
                        bar.set_postfix({main: f"{logs[main]:.4g}"}, refresh=False)
                if self.step % s.log_every == 0 or self.step == end:
                    last = {"step": self.step, "lr": s.lr * factor, "sec_per_step": t_acc / n_acc,
                            **{k: v / n_acc for k, v in acc.items()}, "time": time.time()}
                    if self.world.main:
                        with open(log_path, "a", encoding="utf-8") as f:
                            f.write(json.dumps(last) + "\n")
                    acc, n_acc, t_acc = {}, 0, 0.0
                if self.step % s.ckpt_every == 0:
                    self._save()
        except KeyboardInterrupt:
            if bar is not None:
                bar.close()
            self._save()
            raise
        if bar is not None:
            bar.close()
        saved = checkpoints(self.stage_dir)
        if not saved or saved[-1][0] != self.step:
            self._save()
        if self.step >= s.steps and self.world.main:
            self.write_final()
        return last

    def export_weights(self) -> dict[str, torch.Tensor]:
        module = self.stage.groups.get(self.stage.export_group)
        if module is None:
            weights = {}
        elif self.ema is not None:
            weights = self.ema.weights(module)
        else:
            weights = {k: v.detach().clone() for k, v in module.state_dict().items()}
        out = self.stage.export({k: v.cpu() for k, v in weights.items()})
        return {k: v.detach().cpu().contiguous() for k, v in out.items()}

    def write_final(self) -> Path:
        from safetensors.torch import save_file

        final = self.export_weights()
        path = self.stage_dir / "final.safetensors"
        save_file(final, str(path), metadata={"stage": self.stage.name, "step": str(self.step),
                                              "config": self.tcfg.to_json()})
        summary = self.stage.finish(final)
        if summary:
            with open(self.stage_dir / "log.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps({"step": self.step, "final": summary}) + "\n")
        return path


def train(stage: str, tcfg: TrainConfig, data: str | Path, run_dir: str | Path, *, device: str = "cpu",
          resume: bool = False, precision: str = "fp32", max_steps: int | None = None,
          progress: bool = True) -> dict:
    """Train one stage into ``run_dir/stage`` and return the last log line.

    Args:
        stage: ``mae``, ``kmeans``, ``vae``, ``vocoder`` or ``ldm``.
        tcfg: the recipe (:func:`.configs.get_train_config`).
        data: corpus folder or manifest (its ``train`` split is used).
        run_dir: the run folder shared by all stages of one model.
        device: ``cpu`` or ``cuda``; under torchrun each process takes its local GPU.
        resume: continue from the newest checkpoint (required if checkpoints exist).
        precision: ``fp32``, or ``bf16`` / ``fp16`` autocast (CUDA only; ignored on CPU).
        max_steps: stop after this many more steps (checkpoint written), e.g. for time slices.
    """
    trainer = Trainer(stage, tcfg, data, run_dir, device=device, resume=resume, precision=precision,
                      progress=progress)
    return trainer.run(max_steps)
