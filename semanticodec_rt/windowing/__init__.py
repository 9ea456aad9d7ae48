"""Windowing regimes: how audio and tokens are cut into the windows the networks run on.

* :class:`~.official.OfficialWindowing` -- the published 10.24 s windows (latency ~10.9 s);
* :class:`~.units.UnitWindowing` -- the real-time presets' 160 ms units (a few hundred ms).

:func:`windowing_for` is the one place that tells the regimes apart; everything else asks the
:class:`~.base.Windowing` a codec holds.  A new regime is one more implementation of that
protocol, plus a line here.
"""

from __future__ import annotations

from ..config import CodecConfig
from .base import CodecParts, Windowing
from .official import OfficialWindowing
from .units import UnitWindowing


def windowing_for(cfg: CodecConfig) -> Windowing:
    """The windowing of a config: rt presets carry a ``stream`` section, the published model none."""
    if cfg.stream is None:
        return OfficialWindowing(cfg)
    return UnitWindowing(cfg)


__all__ = ["CodecParts", "Windowing", "OfficialWindowing", "UnitWindowing", "windowing_for"]
