"""Filling a module built on the meta device from a state dict, strictly."""

from __future__ import annotations

import torch
from torch import nn

from ..encoder.positional import PositionalEncoding


class CheckpointMismatchError(ValueError):
    """A checkpoint does not have exactly the keys/shapes of the configured architecture."""


def assign_state(module: nn.Module, sd: dict[str, torch.Tensor], what: str) -> None:
    """Strictly load ``sd`` into ``module``; tensors built on the meta device are replaced."""
    try:
        module.load_state_dict(sd, strict=True, assign=True)
    except RuntimeError as e:  # names the keys; re-raised with our error type
        raise CheckpointMismatchError(f"{what}: {e}") from None
    # Derived, non-persistent tables are not in the checkpoint: rebuild them for real.
    for m in module.modules():
        if isinstance(m, PositionalEncoding):
            m.reset_table()
    # The float flag of old vq-pytorch versions must become the module's 0-d bool again.
    for name, buf in module.named_buffers():
        if name.endswith("_codebook.initted") and buf.dtype != torch.bool:
            owner = module.get_submodule(name.rsplit(".", 1)[0])
            owner.register_buffer("initted", buf.reshape(()).bool())
