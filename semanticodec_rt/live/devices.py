"""Audio devices through PortAudio (``sounddevice``), imported only when a live command runs.

``import sounddevice`` fails with ``OSError`` (not ImportError) when the system's PortAudio
library (``libportaudio2``) is missing, and the package, its tests and ``--help`` must work on
such machines, so the import happens here, lazily, and both errors become
:class:`AudioUnavailable`.

Only *callback* streams are opened: a blocking PortAudio stream (``.write()``) on the JACK host
API corrupts the heap in PortAudio 19.6 (the process aborts at close), callback streams never
did.  Input and output are two separate streams, which also works on the ALSA ``pulse`` plugin,
where a full-duplex stream breaks.

Every stream, the live engine's and the voice link's, is opened by :func:`callback_stream`, which
hands each block to an ``on_block(samples, t, xrun)`` function on the audio thread.  Those
functions follow one rule (:mod:`.engine`): never wait, never allocate an array, only copy
samples through a lock-free ring (:mod:`.ringbuffer`) and count what did not fit.  The engine's
``on_input``/``on_output`` are such functions, and so are the one-way streams of :mod:`.streams`.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

__all__ = ["AudioUnavailable", "sounddevice", "rescan", "list_devices", "parse_device", "device_rate",
           "callback_stream", "open_streams"]


class AudioUnavailable(OSError):
    """No PortAudio (or no sounddevice), or a device that refused its stream; ``str()`` says which.

    An OSError: the command line reports it as a refusal of the system (exit status 1)."""


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


def device_rate(direction: str, device: str | None = None) -> int:
    """The sample rate PortAudio reports as the default of ``device`` (``--input``/``--output``
    text, ``None``: the default device) for ``direction`` (``"input"`` or ``"output"``), in Hz:
    what a JACK server runs at, 44100 or 48000 on most sound cards.

    Raises :class:`AudioUnavailable` without PortAudio, ``ValueError`` when no device matches.
    """
    sd = sounddevice()
    return int(round(sd.query_devices(parse_device(device), direction)["default_samplerate"]))


def callback_stream(direction: str, on_block, device=None, *, sample_rate: int, block: int = 0,
                    clock=time.perf_counter):
    """A mono float32 PortAudio callback stream (not started) that hands every block to ``on_block``.

    Args:
        direction: ``"input"`` (capture) or ``"output"`` (playback).
        on_block: called on the audio thread as ``on_block(samples, t, xrun)``: ``samples`` ``[n]``
            float32 is the captured block (input) or the buffer to fill in place (output), a view
            of PortAudio's buffer valid only during the call; ``t`` is ``clock()`` at the callback's
            start (seconds); ``xrun`` is true when PortAudio flagged an over/underflow.  It must
            not wait or allocate (see the module docstring).
        device: a device number or (part of a) name (:func:`parse_device`); ``None``: the default.
        sample_rate: Hz.
        block: frames per callback; 0 lets PortAudio choose (and vary) it.
        clock: the time source of ``t``.

    Raises :class:`AudioUnavailable` without PortAudio, sounddevice's ``PortAudioError`` when the
    device refuses, ``ValueError`` when no device matches ``device``.
    """
    sd = sounddevice()
    if direction == "input":
        stream_class = sd.InputStream

        def callback(indata, frames, time_info, status):
            on_block(indata[:, 0], clock(), bool(status))
    elif direction == "output":
        stream_class = sd.OutputStream

        def callback(outdata, frames, time_info, status):
            on_block(outdata[:, 0], clock(), bool(status))
    else:
        raise ValueError(f"direction must be 'input' or 'output', got {direction!r}")
    return stream_class(device=device, callback=callback, samplerate=sample_rate, blocksize=block, channels=1,
                        dtype="float32")


@contextmanager
def open_streams(engine, input_device=None, output_device=None):
    """Open (and finally close) an input and an output callback stream that feed ``engine``.

    Mono float32 at ``engine.sample_rate``, ``engine.block`` frames per callback.  Sets the
    engine's device latencies from what the streams report.  Yields ``(input, output)`` streams,
    already started; the engine's worker is not started here.
    """
    common = dict(sample_rate=engine.sample_rate, block=engine.block, clock=time.perf_counter)
    streams = []
    try:
        streams.append(callback_stream("input", engine.on_input, input_device, **common))
        streams.append(callback_stream("output", engine.on_output, output_device, **common))
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
