"""What a training stage provides to the loop (:mod:`..loop`).

A stage owns its models and its loss; the loop owns optimisation, EMA, checkpoints, logs and
data parallelism.  Per step the loop calls :meth:`Stage.batch`, then for each trainable group in
:attr:`Stage.groups` order :meth:`Stage.loss` followed by backward / gradient averaging /
clipping / optimiser step, then :meth:`Stage.after_step` (non-gradient updates such as k-means
or VQ codebook EMAs).  ``cache`` lets a later group reuse an earlier group's forward pass
(the generator output a GAN's discriminator and generator losses share).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..configs import TrainConfig
from ..data import CropSource, shard
from ..distributed import World


class Stage:
    #: stage name (also the sub-folder of the run directory)
    name: str = ""
    #: earlier stages whose final weights this one loads (frozen)
    needs: tuple[str, ...] = ()
    #: the group whose weights are averaged (EMA) and exported
    export_group: str = "model"

    def __init__(self, tcfg: TrainConfig, run_dir: Path, data: CropSource, device: torch.device,
                 world: World) -> None:
        self.tcfg = tcfg
        self.cfg = tcfg.model_config()
        self.settings = tcfg.stage(self.name)
        self.run_dir = Path(run_dir)
        self.data = data
        self.device = device
        self.world = world
        #: trainable groups in update order, e.g. {"disc": D, "model": G}
        self.groups: dict[str, nn.Module] = {}

    # -- data ------------------------------------------------------------------------------------
    def global_batch(self, step: int) -> dict:
        """The step's batch over all processes (deterministic in (seed, step))."""
        raise NotImplementedError

    def batch(self, step: int) -> dict:
        """This process's share of :meth:`global_batch`, moved to the device."""
        b = shard(self.global_batch(step), self.world.rank, self.world.size)
        return {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in b.items()}

    # -- optimisation ----------------------------------------------------------------------------
    def loss(self, group: str, batch: dict, cache: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """The scalar loss to minimise for ``group`` and the numbers to log."""
        raise NotImplementedError

    def active_groups(self, step: int) -> list[str]:
        """The groups updated at ``step`` (all by default; a GAN may start its critic later)."""
        return list(self.groups)

    def after_step(self, step: int, batch: dict, cache: dict) -> dict[str, float]:
        """Non-gradient updates after the optimiser steps; returns numbers to log."""
        return {}

    def lr_factor(self, step: int) -> float:
        """Multiplier of the peak learning rate: linear warm-up, cosine to 10 % at the end."""
        s = self.settings
        if step < s.warmup:
            return (step + 1) / s.warmup
        import math

        span = max(1, s.steps - s.warmup)
        t = min(1.0, (step - s.warmup) / span)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t))

    # -- state -----------------------------------------------------------------------------------
    def extra_state(self) -> dict:
        """State outside the groups' state dicts that an exact resume needs."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    def export(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Tensors of ``final.safetensors`` from the export group's (EMA) state dict."""
        return weights

    def finish(self, final: dict[str, torch.Tensor]) -> dict[str, float]:
        """Called once on rank 0 after the last step with the exported tensors; may write
        reports into the stage folder and returns summary numbers for the log."""
        return {}

    # -- helpers ---------------------------------------------------------------------------------
    def stage_dir(self, name: str | None = None) -> Path:
        return self.run_dir / (name or self.name)

    def load_final(self, name: str) -> dict[str, torch.Tensor]:
        """The final tensors of an earlier stage (error naming the command to run if absent)."""
        from safetensors.torch import load_file

        path = self.stage_dir(name) / "final.safetensors"
        if not path.exists():
            raise FileNotFoundError(
                f"stage {self.name!r} needs the {name!r} stage first: {path} is missing "
                f"(run 'semanticodec-rt train {name} --out {self.run_dir} ...')"
            )
        return {k: v.to(self.device) for k, v in load_file(str(path)).items()}
