"""A low-bandwidth voice link: token packets over UDP (``semanticodec-rt link send|recv``).

The datagrams carry the ``.scrt`` token packets unchanged (:mod:`semanticodec_rt.bitstream`),
behind a 5-byte link header and an optional HMAC tag (:mod:`.datagram`); a HELLO names the model
(:mod:`.hello`).  The sender (:mod:`.sender`) encodes pcm as it is captured; the receiver
(:mod:`.receiver`, :mod:`.recv_loop`) de-duplicates and reorders by sequence number
(:mod:`.seqwindow`), times units with an adaptive jitter buffer (:mod:`.jitter`), conceals what
is missing (:mod:`.plc`) and decodes on its own thread (:mod:`.worker`, :mod:`.decoders`) into a
WAV file or a device (:mod:`.sinks`; devices through :mod:`semanticodec_rt.live.streams`, the
same lock-free callback layer as ``live``).  :mod:`.stats` counts both ends and
:mod:`.impair` is a seeded lossy channel and :mod:`.loopback` runs both ends in one process,
for tests and the example.

Nothing here imports torch or sounddevice at import time.
"""

from .datagram import MAX_DATAGRAM, TAG_BYTES, UDP_IP_OVERHEAD, DatagramError, load_key
from .decoders import CodecDecoder, SilentDecoder
from .impair import ImpairedChannel, Impairments, LossyRelay
from .jitter import JitterBuffer
from .loopback import run_loopback
from .plc import PLC_MODES, Concealer
from .receiver import ReceiverCore, link_info
from .recv_loop import receive_stream
from .sender import Packetizer, Sender, file_blocks
from .seqwindow import SeqWindow
from .sinks import NullSink, WavSink
from .stats import REJECT_REASONS, ReceiverStats, SenderStats

__all__ = [
    "MAX_DATAGRAM",
    "TAG_BYTES",
    "UDP_IP_OVERHEAD",
    "DatagramError",
    "load_key",
    "CodecDecoder",
    "SilentDecoder",
    "Impairments",
    "ImpairedChannel",
    "LossyRelay",
    "JitterBuffer",
    "run_loopback",
    "PLC_MODES",
    "Concealer",
    "ReceiverCore",
    "link_info",
    "receive_stream",
    "Packetizer",
    "Sender",
    "file_blocks",
    "SeqWindow",
    "NullSink",
    "WavSink",
    "REJECT_REASONS",
    "ReceiverStats",
    "SenderStats",
]
