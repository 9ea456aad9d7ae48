"""Counters of a live run: a running min/mean/max, and the report printed at the end.

The numbers themselves are collected by :class:`~.engine.LiveEngine`; this module only keeps
summaries small (no unbounded lists) and turns the stats dict into text.
"""

from __future__ import annotations

import math

__all__ = ["Running", "format_report"]


class Running:
    """Count, last, mean, min and max of a stream of numbers, in O(1) memory."""

    def __init__(self):
        self.n, self.total, self.last = 0, 0.0, math.nan
        self.lo, self.hi = math.inf, -math.inf

    def add(self, x: float) -> None:
        x = float(x)  # numpy scalars in, plain floats out (JSON, repr)
        self.n += 1
        self.total += x
        self.last = x
        self.lo = min(self.lo, x)
        self.hi = max(self.hi, x)

    def summary(self, scale: float = 1.0, digits: int = 2) -> dict:
        """``{"n", "last", "mean", "min", "max"}`` times ``scale``; ``None`` values when empty."""
        if not self.n:
            return {"n": 0, "last": None, "mean": None, "min": None, "max": None}
        r = lambda v: round(v * scale, digits)  # noqa: E731
        return {"n": self.n, "last": r(self.last), "mean": r(self.total / self.n), "min": r(self.lo),
                "max": r(self.hi)}


def _ms(value) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _rest(lat: dict) -> float | None:
    """Measured mean latency less its known parts."""
    mean = lat["measured"]["mean"]
    if mean is None:
        return None
    return mean - lat["algorithmic"] - lat["jitter_buffer"] - lat["device_in"] - lat["device_out"]


def format_report(s: dict) -> str:
    """The end-of-run summary of :meth:`LiveEngine.stats` as aligned ``key  value`` lines."""
    lat, inp, out, wk = s["latency_ms"], s["input"], s["output"], s["worker"]
    m = lat["measured"]
    rtf = "-" if wk["rtf"] is None else f"{wk['rtf']:.3f}"
    lines = [
        ("mode", f"{s['mode']} at {s['sample_rate']} Hz, block {s['block']} samples, "
                 f"unit {s['unit']} samples, ran {s['seconds']:.1f} s"),
        ("latency", f"measured {_ms(m['mean'])} mean (min {_ms(m['min'])}, max {_ms(m['max'])}, "
                    f"last {_ms(m['last'])}, {m['n']} blocks)"),
        ("  parts", f"algorithmic {_ms(lat['algorithmic'])} + jitter buffer {_ms(lat['jitter_buffer'])} + "
                    f"devices {_ms(lat['device_in'])} in / {_ms(lat['device_out'])} out + the rest "
                    f"{_ms(_rest(lat))} (compute, waiting for whole blocks, scheduling)"),
        ("worker", f"real-time factor {rtf} (compute {wk['compute_s']:.2f} s for {wk['audio_s']:.2f} s "
                   f"of audio; slowest chunk {_ms(wk['max_chunk_ms'])})"),
        ("overruns", f"{inp['overruns']} input blocks dropped (ring full), "
                     f"{wk['skipped_units']} units skipped behind"),
        ("underruns", f"{out['underruns']} output blocks short (silence), "
                      f"{wk['dropped_units']} units dropped ahead, "
                      f"{out['start_trim_samples']} samples trimmed at (re)starts"),
        ("xruns", f"{inp['xruns']} input / {out['xruns']} output callbacks flagged by the device"),
        ("queues", f"input ring max {inp['ring_max_fill']} of {inp['ring_capacity']}, "
                   f"output ring max {out['ring_max_fill']} of {out['ring_capacity']} samples"),
    ]
    codec = s.get("codec") or {}
    if codec.get("packets"):
        bps = codec["wire_bps"]
        lines.append(("packets", f"{codec['packets']} ({codec['packet_bytes']} bytes"
                                 + (f", {bps:.0f} bps with framing)" if bps else ")")))
    width = max(len(k) for k, _ in lines)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in lines)
