"""A private JACK server with the dummy driver: live audio without a sound card (tests, examples).

``jackd -d dummy`` keeps real time by itself (period / rate) and has ``system:capture_N`` ports that
give silence and ``system:playback_N`` ports that throw the sound away; PortAudio's JACK host API
sees it as one device, ``system``.  A test harness (a JACK client) can then route a known signal
into the application's input ports and record its output ports, sample-synchronously.

The server gets a private name (``scrt<pid>`` by default) so that parallel runs do not clash, and
:func:`jack_environment` points libjack at it (``JACK_DEFAULT_SERVER``).  ``-R`` (SCHED_FIFO) is
asked for: without it, on a loaded machine, the dummy driver reported 100+ xruns in seconds and
the round trip wandered; root (or CAP_SYS_NICE) makes it work, otherwise jackd falls back.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["JackServer", "JackUnavailable", "jack_environment", "jack_running"]


class JackUnavailable(RuntimeError):
    """jackd is not installed or did not start; ``str()`` says why (used as a skip reason)."""


def jack_environment(name: str) -> dict[str, str]:
    """Environment variables that make libjack clients (PortAudio, JACK-Client) use server ``name``.

    ``JACK_NO_START_SERVER``: a client must never start a server of its own (it would run with
    default settings and outlive us); ``JACK_NO_AUDIO_RESERVATION``: no dbus device reservation.
    """
    return {"JACK_DEFAULT_SERVER": name, "JACK_NO_START_SERVER": "1", "JACK_NO_AUDIO_RESERVATION": "1"}


def jack_running(name: str | None = None, timeout: float = 2.0) -> bool:
    """Whether a JACK server ``name`` (default: ``$JACK_DEFAULT_SERVER`` or "default") answers."""
    if shutil.which("jack_lsp") is None:
        return False
    cmd = ["jack_lsp"] + (["-s", name] if name else [])
    env = dict(os.environ, JACK_NO_START_SERVER="1")
    try:
        r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return r.returncode == 0


class JackServer:
    """``jackd -n NAME -R -d dummy -r RATE -p PERIOD``, started and stopped by this process.

    Use as a context manager, or call :meth:`start` / :meth:`stop`.  While it runs, the variables
    of :func:`jack_environment` are set in ``os.environ`` (and restored by :meth:`stop`), so
    clients created in this process connect to it.  PortAudio enumerates host APIs only when it
    initialises: re-initialise ``sounddevice`` after :meth:`start` (see ``devices.rescan``).

    Args:
        rate: sample rate in Hz (a PortAudio stream must use the server's rate).
        period: frames per JACK cycle; the round trip through the server is 2 periods.
        name: server name; default ``scrt<pid>``.
        realtime: ask for SCHED_FIFO (``-R -P 70``).
        ports: number of capture and of playback ports.
    """

    def __init__(self, rate: int = 16000, period: int = 320, name: str | None = None,
                 realtime: bool = True, ports: int = 2):
        self.rate, self.period, self.realtime, self.ports = int(rate), int(period), realtime, int(ports)
        self.name = name or f"scrt{os.getpid()}"
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self._saved_env: dict[str, str | None] = {}

    def command(self) -> list[str]:
        rt = ["-R", "-P", "70"] if self.realtime else ["--no-realtime"]
        # -t 2000: client timeout in ms; a Python client on a loaded machine can be slow to answer.
        return ["jackd", "-n", self.name, *rt, "-t", "2000", "-d", "dummy", "-r", str(self.rate),
                "-p", str(self.period), "-C", str(self.ports), "-P", str(self.ports)]

    def start(self, timeout: float = 10.0) -> "JackServer":
        """Start jackd and wait until it answers; raises :class:`JackUnavailable` otherwise."""
        if shutil.which("jackd") is None or shutil.which("jack_lsp") is None:
            raise JackUnavailable("jackd not installed (apt-get install jackd2)")
        if self.proc is not None:
            return self
        env = dict(os.environ, **jack_environment(self.name))
        fd, log = tempfile.mkstemp(prefix=f"{self.name}-", suffix=".log")
        self.log_path = Path(log)
        with os.fdopen(fd, "wb") as logf:
            # own session: a Ctrl-C meant for the app must not kill the server under it first
            self.proc = subprocess.Popen(self.command(), env=env, stdout=logf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if jack_running(self.name):
                self._set_env()
                return self
            time.sleep(0.05)
        tail = self.log_tail()
        self.stop()
        raise JackUnavailable(f"jackd did not start: {tail or 'no output'}")

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, wait (SIGKILL after ``timeout``), restore the environment.  Close clients first."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env = {}

    def log_tail(self, lines: int = 5) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:])

    def _set_env(self) -> None:
        for key, value in jack_environment(self.name).items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> "JackServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
