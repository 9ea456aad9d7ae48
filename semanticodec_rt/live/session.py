"""One live run: devices + engine, until a duration passes, Ctrl-C, or the worker fails."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from .devices import open_streams

__all__ = ["SessionResult", "run_session"]

# The audio callbacks need the GIL; a Python thread keeps it for up to this many seconds before
# it must hand it over (default 5 ms).  1 ms keeps a callback's wait for it short while the
# worker runs the model's Python code.
_SWITCH_INTERVAL_S = 0.001


@dataclass
class SessionResult:
    stats: dict
    interrupted: bool  # stopped by Ctrl-C (KeyboardInterrupt) rather than by the duration


def run_session(engine, input_device=None, output_device=None, duration: float | None = None,
                on_tick=None, tick_s: float = 1.0, on_started=None) -> SessionResult:
    """Run ``engine`` on real devices; returns its stats once the streams are closed.

    Args:
        duration: seconds to run; ``None`` runs until Ctrl-C.
        on_tick: called as ``on_tick(engine)`` about every ``tick_s`` seconds (progress lines).
        on_started: called as ``on_started(input_stream, output_stream)`` once audio runs (a test
            harness wires its ports here).

    Ctrl-C stops cleanly: streams closed, worker stopped, stats returned with ``interrupted``.
    An error in the worker thread is raised here after the same clean-up.
    """
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(_SWITCH_INTERVAL_S)
    interrupted = False
    try:
        with open_streams(engine, input_device, output_device) as (ins, outs):
            engine.start()
            try:
                if on_started is not None:
                    on_started(ins, outs)
                t_end = None if duration is None else time.monotonic() + duration
                next_tick = time.monotonic() + tick_s
                while engine.running and (t_end is None or time.monotonic() < t_end):
                    time.sleep(0.05)
                    if on_tick is not None and time.monotonic() >= next_tick:
                        on_tick(engine)
                        next_tick += tick_s
            except KeyboardInterrupt:
                interrupted = True
        # streams are closed here, before the worker stops: no callback runs into a dead engine
    except KeyboardInterrupt:  # Ctrl-C while the streams were opening or closing
        interrupted = True
    finally:
        engine.stop()
        sys.setswitchinterval(old_interval)
    if engine.error is not None:
        raise engine.error
    return SessionResult(engine.stats(), interrupted)
