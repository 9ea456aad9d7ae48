"""Counters of both ends of the link and the bitrates derived from them.

Bitrates are over the *audio* duration the frames cover (frames / frames per second), not the
wall clock, so they do not depend on start-up or shutdown time:

* ``payload_kbps`` -- id bits only (``frames * (semantic_bits + acoustic_bits)``), the number
  bitrate claims refer to (:mod:`semanticodec_rt.bitstream.info`);
* ``wire_kbps`` -- everything on the wire: datagram bytes plus 28 bytes of UDP/IPv4 headers each;
* ``overhead_kbps`` -- the difference, split into ``udp_ip`` (28 bytes a datagram), ``auth``
  (16-byte tags), ``hello`` (whole HELLO datagrams) and ``framing`` (link header, packet
  header, CRC and the padding bits of the last byte; END packets).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from .datagram import TAG_BYTES, UDP_IP_OVERHEAD

__all__ = ["Traffic", "SenderStats", "ReceiverStats", "REJECT_REASONS", "summary_lines", "write_stats_json"]

#: why the receiver refused a datagram (each a counter of ReceiverStats.rejected)
REJECT_REASONS = (
    "garbage",  # not a link datagram: too short, unknown version or kind
    "truncated",  # shorter than its packet header says
    "oversized",  # longer than MAX_DATAGRAM
    "bad_crc",  # CRC32 mismatch (corrupted)
    "malformed",  # anything else a bitstream parser refuses (ids out of range, bad lengths)
    "auth",  # HMAC tag missing, unexpected or wrong (wrong key, forged, altered)
    "replay",  # authenticated but seen before, or older than the replay window
    "model_mismatch",  # a session whose HELLO names another model
    "other_session",  # a session other than the one the receiver follows
    "no_session",  # no HELLO came for it before the pending buffer filled up or the end
)


@dataclass
class Traffic:
    """Datagrams one end sent or received, and the payload frames among them."""

    frame_bits: int
    frames_per_s: float
    datagrams: int = 0
    bytes: int = 0
    tagged: int = 0  # data datagrams carrying an HMAC tag
    hello_datagrams: int = 0
    hello_bytes: int = 0  # HELLO datagram bytes, tags included
    frames: int = 0  # token positions whose ids count as payload

    def add(self, n_bytes: int, *, tagged: bool = False, hello: bool = False) -> None:
        self.datagrams += 1
        self.bytes += n_bytes
        if hello:
            self.hello_datagrams += 1
            self.hello_bytes += n_bytes
        else:
            self.tagged += tagged

    def rates(self, duration_s: float) -> dict:
        """kbps over ``duration_s`` of audio: payload, wire and the overhead by kind."""
        if duration_s <= 0:
            return {"payload_kbps": 0.0, "wire_kbps": 0.0, "overhead_kbps": {}}
        payload = self.frames * self.frame_bits
        wire = 8 * (self.bytes + UDP_IP_OVERHEAD * self.datagrams)
        # each bit in one bucket: a HELLO's tag and UDP/IP headers count as HELLO
        hello = 8 * (self.hello_bytes + UDP_IP_OVERHEAD * self.hello_datagrams)
        udp_ip = 8 * UDP_IP_OVERHEAD * (self.datagrams - self.hello_datagrams)
        auth = 8 * TAG_BYTES * self.tagged
        framing = wire - payload - udp_ip - auth - hello

        def kbps(bits):
            return round(bits / duration_s / 1000, 4)

        return {
            "payload_kbps": kbps(payload),
            "wire_kbps": kbps(wire),
            "overhead_kbps": {"udp_ip": kbps(udp_ip), "framing": kbps(framing), "auth": kbps(auth),
                              "hello": kbps(hello), "total": kbps(wire - payload)},
        }


@dataclass
class SenderStats:
    """What ``link send`` did.  ``packets_sent`` counts sequence numbers (TOKENS + END)."""

    traffic: Traffic
    session: int = 0
    packets_sent: int = 0
    token_packets: int = 0
    end_datagrams: int = 0  # END is sent several times under one sequence number
    frames_sent: int = 0
    n_samples: int = 0
    max_lag_s: float = 0.0  # how far the sender fell behind real time (slow encoder)
    input_overflows: int = 0  # capture blocks dropped (device input only)
    accepted: bool | None = None  # keyed: a receiver answered the HELLO (None: no key, no handshake)
    accepts: int = 0  # ACCEPTs taken (more than 1: the receiver restarted, the sender re-keyed)
    replies_refused: int = 0  # datagrams that came back and were not a fitting ACCEPT
    frames_unsent: int = 0  # keyed: frames dropped while waiting for an ACCEPT (bounded backlog)

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "traffic"}
        t = self.traffic
        d.update(datagrams_sent=t.datagrams, bytes_sent=t.bytes, hellos_sent=t.hello_datagrams,
                 duration_s=round(t.frames / t.frames_per_s, 4), frame_bits=t.frame_bits)
        d.update(t.rates(t.frames / t.frames_per_s))
        return d


@dataclass
class ReceiverStats:
    """What ``link recv`` saw.  Packets are counted by sequence number; frames by position.

    Invariants (tested): ``packets_received + lost == expected`` (the sender's packet count once
    END arrived), ``frames_received + frames_concealed == frames_played`` (and ``frames_played +
    frames_skipped`` is the sender's frame count).
    """

    traffic: Traffic
    plc: str = ""
    session: int | None = None
    hellos: int = 0
    accepts_sent: int = 0  # keyed: answers to HELLOs (the handshake; again when a HELLO repeats)
    packets_received: int = 0  # distinct sequence numbers, late ones included
    expected: int = 0  # highest sequence number + 1 (all of them once END arrived)
    lost: int = 0
    late: int = 0  # packets whose frames all came after their unit was played
    late_frames: int = 0
    duplicates: int = 0
    reordered: int = 0  # arrived after a packet with a higher sequence number
    end_received: bool = False
    end_repeats: int = 0
    frames_received: int = 0  # in time, played as sent
    frames_concealed: int = 0
    frames_played: int = 0
    frames_skipped: int = 0  # before the first packet, when it came late: not played, not decoded
    overflow_frames: int = 0  # past the jitter buffer (a sender far ahead of real time)
    units_decoded: int = 0
    decode_dropped_units: int = 0  # the decoder fell too far behind: played as silence
    decode_queue_max: int = 0
    decode_queue_capacity: int = 0
    buffer_max_frames: int = 0
    buffer_capacity_frames: int = 0
    jitter_ms: float = 0.0
    delay_ms: float = 0.0
    max_delay_ms: float = 0.0
    n_samples: int = 0  # written to the output
    end_refused: int = 0  # END packets whose totals the receiver could not believe (also "malformed")
    timed_out: bool = False
    rejected: dict = field(default_factory=lambda: dict.fromkeys(REJECT_REASONS, 0))
    model_mismatch_error: str = ""

    def reject(self, reason: str) -> None:
        self.rejected[reason] += 1

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "traffic"}
        t = self.traffic
        d.update(datagrams_received=t.datagrams, bytes_received=t.bytes,
                 rejected_total=sum(self.rejected.values()),
                 duration_s=round(self.frames_played / t.frames_per_s, 4), frame_bits=t.frame_bits)
        d.update(t.rates(self.frames_played / t.frames_per_s))
        return d


def summary_lines(d: dict) -> list[str]:
    """``key  value`` lines of a stats dict for the terminal (nested dicts inline)."""
    width = max(len(k) for k in d)
    out = []
    for key, value in d.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items() if v or key != "rejected") or "none"
        out.append(f"{key:<{width}}  {value}")
    return out


def write_stats_json(path: str | os.PathLike, d: dict) -> None:
    with open(path, "w") as f:
        json.dump(d, f, indent=2)
        f.write("\n")
