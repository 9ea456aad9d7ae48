"""Discriminators for adversarial training (training only; never part of a shipped model).

* :class:`MultiPeriodDiscriminator` and :class:`MultiScaleDiscriminator`: the HiFi-GAN pair
  (Kong et al. 2020) for the vocoder -- periods 2, 3, 5, 7, 11 on the waveform folded to 2-D,
  and three scales (raw, /2, /4 average-pooled) of grouped 1-D convolutions.  ``width`` scales
  every channel count (1.0 = the paper) so a CPU run can afford them.
* :class:`PatchDiscriminator`: a small fully-convolutional critic on mel images for the VAE's
  optional adversarial term.

Every discriminator returns ``(scores, features)``: a list of score maps and a list of the
intermediate activations (for the feature-matching loss).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

SLOPE = 0.1


def _ch(c: int, width: float) -> int:
    return max(4, int(round(c * width)))


def _conv_stack(convs: nn.ModuleList, post: nn.Module, x: torch.Tensor):
    """Leaky-ReLU conv layers then the score conv: ``(scores [B, -1], every activation)``."""
    feats = []
    for conv in convs:
        x = F.leaky_relu(conv(x), SLOPE)
        feats.append(x)
    x = post(x)
    feats.append(x)
    return x.flatten(1), feats


class PeriodDiscriminator(nn.Module):
    """Waveform ``[B, 1, n]`` folded into ``[B, 1, n/p, p]`` and judged by 2-D convs (k x 1)."""

    def __init__(self, period: int, width: float = 1.0) -> None:
        super().__init__()
        self.period = period
        chans = [1] + [_ch(c, width) for c in (32, 128, 512, 1024, 1024)]
        self.convs = nn.ModuleList()
        for i in range(5):
            stride = 1 if i == 4 else 3
            self.convs.append(weight_norm(nn.Conv2d(chans[i], chans[i + 1], (5, 1), (stride, 1), padding=(2, 0))))
        self.post = weight_norm(nn.Conv2d(chans[-1], 1, (3, 1), padding=(1, 0)))

    def forward(self, x: torch.Tensor):
        b, c, n = x.shape
        if n % self.period:
            x = F.pad(x, (0, self.period - n % self.period), mode="reflect")
        return _conv_stack(self.convs, self.post, x.view(b, c, -1, self.period))


class MultiPeriodDiscriminator(nn.Module):
    def __init__(self, periods: tuple[int, ...] = (2, 3, 5, 7, 11), width: float = 1.0) -> None:
        super().__init__()
        self.discs = nn.ModuleList(PeriodDiscriminator(p, width) for p in periods)

    def forward(self, x: torch.Tensor):
        scores, feats = [], []
        for d in self.discs:
            s, f = d(x)
            scores.append(s)
            feats.append(f)
        return scores, feats


class ScaleDiscriminator(nn.Module):
    """Grouped strided 1-D convs on the waveform ``[B, 1, n]``."""

    # (out channels, kernel, stride, groups) of the HiFi-GAN / MelGAN scale discriminator
    LAYERS = ((128, 15, 1, 1), (128, 41, 2, 4), (256, 41, 2, 16), (512, 41, 4, 16),
              (1024, 41, 4, 16), (1024, 41, 1, 16), (1024, 5, 1, 1))

    def __init__(self, width: float = 1.0, spectral: bool = False) -> None:
        super().__init__()
        norm = spectral_norm if spectral else weight_norm
        self.convs = nn.ModuleList()
        c_in = 1
        for c, k, s, g in self.LAYERS:
            c_out = _ch(c, width)
            groups = g
            while c_in % groups or c_out % groups:
                groups //= 2
            self.convs.append(norm(nn.Conv1d(c_in, c_out, k, s, padding=k // 2, groups=max(1, groups))))
            c_in = c_out
        self.post = norm(nn.Conv1d(c_in, 1, 3, padding=1))

    def forward(self, x: torch.Tensor):
        return _conv_stack(self.convs, self.post, x)


class MultiScaleDiscriminator(nn.Module):
    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        self.discs = nn.ModuleList([ScaleDiscriminator(width, spectral=True), ScaleDiscriminator(width),
                                    ScaleDiscriminator(width)])
        self.pool = nn.AvgPool1d(4, 2, padding=2)

    def forward(self, x: torch.Tensor):
        scores, feats = [], []
        for i, d in enumerate(self.discs):
            if i:
                x = self.pool(x)
            s, f = d(x)
            scores.append(s)
            feats.append(f)
        return scores, feats


class HiFiGANDiscriminator(nn.Module):
    """MPD + MSD; ``forward(wave)`` -> (all score maps, all feature lists)."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        self.mpd = MultiPeriodDiscriminator(width=width)
        self.msd = MultiScaleDiscriminator(width=width)

    def forward(self, x: torch.Tensor):
        s1, f1 = self.mpd(x)
        s2, f2 = self.msd(x)
        return s1 + s2, f1 + f2


class PatchDiscriminator(nn.Module):
    """Mel image ``[B, 1, T, M]`` -> patch scores; 3 strided conv layers, LeakyReLU(0.2)."""

    def __init__(self, channels: int = 32, layers: int = 3) -> None:
        super().__init__()
        mods: list[nn.Module] = [nn.Conv2d(1, channels, 4, 2, 1), nn.LeakyReLU(0.2)]
        c = channels
        for _ in range(layers - 1):
            mods += [nn.Conv2d(c, 2 * c, 4, 2, 1), nn.GroupNorm(8, 2 * c), nn.LeakyReLU(0.2)]
            c *= 2
        mods.append(nn.Conv2d(c, 1, 3, 1, 1))
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor):
        feats = []
        for m in self.net:
            x = m(x)
            if isinstance(m, nn.LeakyReLU):
                feats.append(x)
        return [x.flatten(1)], [feats]
