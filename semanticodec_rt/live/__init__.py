"""Live audio: microphone -> streaming encoder -> token packets -> streaming decoder -> speaker.

Layout (one concept per module):

* :mod:`.ringbuffer` -- the lock-free SPSC ring between an audio callback and the worker;
* :mod:`.timeline` -- device clocks and position maps, behind the measured latency;
* :mod:`.processors` -- what the worker runs: the codec over the wire format, or passthrough;
* :mod:`.engine` -- rings + worker thread + counters; runs without audio devices (tests);
* :mod:`.stats` -- running summaries and the end-of-run report;
* :mod:`.devices` -- PortAudio callback streams via ``sounddevice``, imported lazily;
* :mod:`.streams` -- one-way capture / playback through rings, for the voice link (``link``);
* :mod:`.session` -- one run on real devices, with duration, Ctrl-C and clean shutdown;
* :mod:`.jack_server` -- a private JACK dummy server (no sound card needed), for tests/examples.

Importing this package never imports ``sounddevice`` (PortAudio may be missing).
"""

from .engine import LiveEngine
from .processors import CodecProcessor, Passthrough
from .ringbuffer import SPSCRing, next_pow2
from .stats import format_report

__all__ = ["LiveEngine", "CodecProcessor", "Passthrough", "SPSCRing", "next_pow2", "format_report"]
