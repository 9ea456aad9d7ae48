"""Windowing regimes: how audio and tokens are cut into the windows the networks run on.

* :class:`~.official.OfficialWindowing` -- the published 10.24 s windows (latency ~10.9 s);
* :class:`~.units.UnitWindowing` -- the real-time presets' 160 ms units (a few hundred ms).

:func:`windowing_for` is the one place that tells the regimes apart; everything else asks the
:class:`~.base.Windowing` a codec holds.  A new regime is one more implementation of that
protocol, plus a line here.
"""

from __future__ import annotations

from torch import nn

from ..config import CodecConfig
from .base import CodecParts, Windowing
from .official import OfficialWindowing
from .speech import SpeechWindowing
from .units import UnitWindowing


def windowing_for(cfg: CodecConfig) -> Windowing:
    """The windowing of a config: the speech route carries a ``speech`` section, rt presets a
    ``stream`` section, the published model neither."""
    if cfg.speech is not None:
        return SpeechWindowing(cfg)
    if cfg.stream is None:
        return OfficialWindowing(cfg)
    return UnitWindowing(cfg)


def build_encoder(cfg: CodecConfig, *, training: bool = False) -> nn.Module:
    """The encoder of a config's regime, weights random (``training`` keeps the MAE decoder of
    the latent-diffusion regimes, which only training uses)."""
    if cfg.speech is not None:
        from ..encoder.speech_encoder import SpeechEncoder

        return SpeechEncoder(cfg)
    from ..encoder.codec_encoder import SemantiCodecEncoder

    return SemantiCodecEncoder(cfg, with_mae_decoder=training)


def build_decoder(cfg: CodecConfig, *, training: bool = False) -> nn.Module:
    """The decoder of a config's regime, weights random (``training`` keeps the VAE encoder)."""
    if cfg.speech is not None:
        from ..decoder.speech_decoder import SpeechDecoder

        return SpeechDecoder(cfg)
    from ..decoder.latent_diffusion import LatentDiffusionDecoder

    return LatentDiffusionDecoder(cfg, with_vae_encoder=training)


__all__ = ["CodecParts", "Windowing", "OfficialWindowing", "UnitWindowing", "SpeechWindowing", "windowing_for",
           "build_encoder", "build_decoder"]
