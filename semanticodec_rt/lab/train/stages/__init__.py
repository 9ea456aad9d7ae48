"""The training stages, in pipeline order (see :mod:`semanticodec_rt.lab.train`)."""

from __future__ import annotations

from ..configs import STAGES

__all__ = ["STAGES", "stage_class"]


def stage_class(name: str):
    """The :class:`~.base.Stage` subclass of a stage name (imported on demand)."""
    if name == "mae":
        from .mae import MAEStage as cls
    elif name == "kmeans":
        from .kmeans import KMeansStage as cls
    elif name == "vae":
        from .vae import VAEStage as cls
    elif name == "vocoder":
        from .vocoder import VocoderStage as cls
    elif name == "ldm":
        from .ldm import LDMStage as cls
    elif name == "distill":
        from .distill import DistillStage as cls
    else:
        raise ValueError(f"unknown stage {name!r}; stages: {', '.join(STAGES + ('distill',))}")
    return cls

