"""Adversarial and feature-matching losses (least-squares GAN, as HiFi-GAN trains)."""

from __future__ import annotations

import torch


def discriminator_loss(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """Sum over discriminators of ``mean((1 - D(real))^2) + mean(D(fake)^2)``."""
    return sum(((1 - r).pow(2).mean() + f.pow(2).mean()) for r, f in zip(real, fake))


def generator_loss(fake: list[torch.Tensor]) -> torch.Tensor:
    """Sum over discriminators of ``mean((1 - D(G(x)))^2)``."""
    return sum((1 - f).pow(2).mean() for f in fake)


def feature_loss(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """Sum over discriminators and layers of the mean |real - fake| activation difference."""
    total = 0.0
    for rs, fs in zip(real, fake):
        for r, f in zip(rs, fs):
            total = total + (r.detach() - f).abs().mean()
    return total
