"""A JACK client that plays a known signal into an application's microphone and records its speaker.

On a JACK server the "devices" are ports, so a test can stand in for both ends of a live app:
:class:`LoopbackHarness` disconnects the app's input port from ``system:capture_N``, connects its
own ``to_mic`` port there instead, and connects the app's output port to its ``from_spk`` port.
Its process callback then writes the signal and records what comes back in the same JACK cycle,
so index ``i`` of the signal and of the recording are the same server frame: the delay of the
app is exactly the lag between them (no clock of the app is involved).

Needs the ``JACK-Client`` package (``import jack``), imported when a harness is made.
"""

from __future__ import annotations

import threading

import numpy as np

__all__ = ["LoopbackHarness", "locate", "lag_of", "latency_checks"]


class LoopbackHarness:
    """Plays ``signal`` and records ``len(signal)`` frames, from the cycle after :meth:`wire`.

    Args:
        signal: ``[n]`` float32 samples at the server's rate, played once, then silence.
        name: JACK client name.

    Attributes:
        recording: ``[n]`` float32, what the app's output port carried (index = signal index).
    """

    def __init__(self, signal: np.ndarray, name: str = "scrt-harness"):
        import jack

        self.signal = np.ascontiguousarray(signal, np.float32)
        self.recording = np.zeros_like(self.signal)
        self.done = threading.Event()
        self._pos = -1  # frames played so far; -1 until wired (then the process callback starts)
        self.client = jack.Client(name, no_start_server=True)
        self.to_mic = self.client.outports.register("to_mic")
        self.from_spk = self.client.inports.register("from_spk")
        self.client.set_process_callback(self._process)
        self.client.activate()

    @property
    def rate(self) -> int:
        return self.client.samplerate

    def _process(self, frames: int) -> None:
        out = self.to_mic.get_array()
        i = self._pos
        if i < 0:
            out.fill(0.0)
            return
        n = len(self.signal)
        k = max(0, min(frames, n - i))
        out[:k] = self.signal[i : i + k]
        out[k:] = 0.0
        self.recording[i : i + k] = self.from_spk.get_array()[:k]
        self._pos = i + frames
        if self._pos >= n:
            self.done.set()

    def wire(self, app: str = "PortAudio") -> tuple[str, str]:
        """Connect to the app's first input and output ports (JACK client name regex ``app``).

        Returns the (input, output) port names of the app; playback starts with the next cycle.
        """
        c = self.client
        ins = c.get_ports(f"{app}.*:in_", is_input=True, is_audio=True)
        outs = c.get_ports(f"{app}.*:out_", is_output=True, is_audio=True)
        if not ins or not outs:
            raise RuntimeError(f"no JACK ports of {app!r}: is the app's audio running?")
        app_in, app_out = ins[0], outs[0]
        for src in c.get_all_connections(app_in):  # the silent system:capture_1
            c.disconnect(src, app_in)
        c.connect(self.to_mic, app_in)
        c.connect(app_out, self.from_spk)
        self._pos = 0
        return app_in.name, app_out.name

    def wait(self, timeout: float | None = None) -> bool:
        """Until the whole signal has played (and as much was recorded)."""
        return self.done.wait(timeout)

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()

    def __enter__(self) -> "LoopbackHarness":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def locate(haystack: np.ndarray, needle: np.ndarray) -> int | None:
    """First index where ``needle`` occurs bit-exactly in ``haystack`` (``None``: nowhere).

    JACK moves float32 samples unchanged, so a stretch of a processor's output appears exactly
    in a recording; exact matching also works for the codec's output, whose large DC offset
    makes a plain cross-correlation peak in the wrong place.
    """
    needle = np.asarray(needle, np.float32)
    if len(needle) == 0:
        return None
    for c in np.flatnonzero(haystack == needle[0]):
        if np.array_equal(haystack[c : c + len(needle)], needle):
            return int(c)
    return None


def lag_of(recording: np.ndarray, signal: np.ndarray, max_lag: int) -> int:
    """Delay in frames of ``signal`` in ``recording``: the cross-correlation peak in ``0..max_lag``."""
    n = len(signal) - max_lag
    if n <= 0:
        raise ValueError(f"signal of {len(signal)} frames is too short for lags up to {max_lag}")
    a, b = recording[: n + max_lag].astype(np.float64), signal[:n].astype(np.float64)
    size = 1 << (len(a) + len(b)).bit_length()
    c = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(b, size)), size)[: max_lag + 1]
    return int(np.argmax(c))  # c[k] = sum_i a[i + k] * b[i], via the FFT: O(n log n)


def latency_checks(engine, harness, every_s: float = 4.0, start_s: float = 2.0,
                   stretch: int = 1024) -> list[tuple[int, float, float]]:
    """The engine's reported latency vs the one measured from outside, at points of the run.

    Needs an engine made with ``tap_seconds`` covering the run.  At processor position ``j``
    (every ``every_s`` seconds): the measured latency is the recording index of the stretch of
    processor *output* at ``j`` minus the signal index of the stretch of processor *input* at
    ``j`` (both found bit-exactly), i.e. the server frames between the microphone getting a
    sample and the speaker giving back what the processor made of it.  The reported one is the
    engine's last per-block measurement at or before ``j``.  Stretches that were skipped,
    dropped or not recorded are left out.

    Returns ``[(j, measured_ms, reported_ms), ...]``.
    """
    rate = engine.sample_rate
    tap_in, tap_out = engine.taps()
    history = list(engine.latency_history)
    rows = []
    end = min(len(tap_in), len(tap_out)) - stretch
    for j in range(int(start_s * rate), end, max(1, int(every_s * rate))):
        a = locate(harness.signal, tap_in[j : j + stretch])
        b = locate(harness.recording, tap_out[j : j + stretch])
        before = [lat for pos, lat in history if pos <= j]
        if a is None or b is None or not before:
            continue
        rows.append((j, (b - a) * 1000.0 / rate, before[-1] * 1000.0))
    return rows
