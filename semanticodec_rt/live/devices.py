"""Audio devices through PortAudio (``sounddevice``), imported only when a live command runs.

``import sounddevice`` fails with ``OSError`` (not ImportError) when the system's PortAudio
library (``libportaudio2``) is missing, and the package, its tests and ``--help`` must work on
such machines, so the import happens here, lazily, and both errors become
:class:`AudioUnavailable`.

Only *callback* streams are opened: a blocking PortAudio stream (``.write()``) on the JACK host
API corrupts the heap in PortAudio 19.6 (the process aborts at close), callback streams never
did.  Input and output are two separate streams, which also works on the ALSA ``pulse`` plugin,
where a full-duplex stream breaks.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

__all__ = ["AudioUnavailable", "sounddevice", "rescan", "list_devices", "parse_device", "open_streams"]


class AudioUnavailable(RuntimeError):
    """No PortAudio (or no sounddevice); ``str()`` says what to install."""


def sounddevice():
    """The ``sounddevice`` module, or :class:`AudioUnavailable` with the reason."""
    try:
        import sounddevice as sd
    except ImportError as e:
        raise AudioUnavailable(f"the sounddevice package is not installed ({e}): pip install sounddevice") from None
    except OSError as e:  # "PortAudio library not found"
        raise AudioUnavailable(f"{e} (install the system package libportaudio2)") from None
    return sd


def rescan() -> None:
    """Re-initialise PortAudio: it lists host APIs and devices only when it initialises.

    Needed after a JACK server started in this process's lifetime (``sounddevice`` initialises
    at import).  Uses sounddevice's private ``_terminate``/``_initialize``: there is no public way.
    """
    sd = sounddevice()
    sd._terminate()
    sd._initialize()


def list_devices() -> str:
    """What ``--list-devices`` prints: every device with its host API, and the defaults."""
    sd = sounddevice()
    apis = sd.query_hostapis()
    lines = []
    for i, dev in enumerate(sd.query_devices()):
        api = apis[dev["hostapi"]]["name"]
        lines.append(f"{i:3d}  {dev['name']}  ({api}; {dev['max_input_channels']} in, "
                     f"{dev['max_output_channels']} out, default {dev['default_samplerate']:g} Hz)")
    if not lines:
        lines.append("no audio devices found (no sound card; a JACK or PulseAudio server is not running?)")
    d_in, d_out = sd.default.device
    lines.append(f"default input: {d_in}, default output: {d_out}")
    return "\n".join(lines)


def parse_device(text: str | None):
    """``--input/--output``: a device number, a (part of a) device name, or ``None`` (default)."""
    if text is None:
        return None
    text = text.strip()
    return int(text) if text.lstrip("-").isdigit() else text


@contextmanager
def open_streams(engine, input_device=None, output_device=None):
    """Open (and finally close) an input and an output callback stream that feed ``engine``.

    Mono float32 at ``engine.sample_rate``, ``engine.block`` frames per callback.  Sets the
    engine's device latencies from what the streams report.  Yields ``(input, output)`` streams,
    already started; the engine's worker is not started here.
    """
    sd = sounddevice()
    common = dict(samplerate=engine.sample_rate, blocksize=engine.block, channels=1, dtype="float32")
    clock = time.perf_counter

    def in_callback(indata, frames, time_info, status):
        engine.on_input(indata[:, 0], clock(), bool(status))

    def out_callback(outdata, frames, time_info, status):
        engine.on_output(outdata[:, 0], clock(), bool(status))

    streams = []
    try:
        streams.append(sd.InputStream(device=input_device, callback=in_callback, **common))
        streams.append(sd.OutputStream(device=output_device, callback=out_callback, **common))
        engine.in_latency_s, engine.out_latency_s = streams[0].latency, streams[1].latency
        for s in reversed(streams):  # output first: its first blocks are silence anyway
            s.start()
        yield tuple(streams)
    finally:
        for s in streams:
            try:
                s.close(ignore_errors=True)
            except Exception:  # closing must not hide the error that brought us here
                pass
