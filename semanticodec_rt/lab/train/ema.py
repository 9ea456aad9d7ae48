"""Exponential moving average of a module's floating-point parameters (the exported weights)."""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    """``shadow = decay * shadow + (1 - decay) * param`` after every optimiser step.

    The first ``1 / (1 - decay)`` steps use ``min(decay, (1 + n) / (10 + n))`` so early
    averages are not dominated by the random initialisation.
    """

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.decay = float(decay)
        self.updates = 0
        self.shadow = {k: p.detach().clone() for k, p in module.named_parameters() if p.is_floating_point()}

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for k, p in module.named_parameters():
            if k in self.shadow:
                self.shadow[k].mul_(d).add_(p.detach(), alpha=1 - d)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        self.decay = float(state["decay"])
        self.updates = int(state["updates"])
        for k, v in state["shadow"].items():
            self.shadow[k].copy_(v)

    def weights(self, module: nn.Module) -> dict[str, torch.Tensor]:
        """The module's state dict with the averaged parameters in place of the live ones."""
        sd = {k: v.detach().clone() for k, v in module.state_dict().items()}
        for k, v in self.shadow.items():
            sd[k] = v.clone()
        return sd
