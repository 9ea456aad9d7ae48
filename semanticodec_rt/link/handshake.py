"""Keyed sessions that cannot be replayed: a receiver nonce and a key derived per session.

A pre-shared key alone proves only that *some* key holder sent a datagram, not that it was sent
now: a recorded session would be accepted in full by a receiver started later.  So a keyed link
runs one round trip before any audio:

1. the sender's HELLO (tagged with the pre-shared key) carries a fresh random *sender nonce*
   and a HELLO sequence number;
2. a receiver that can take the session answers with ACCEPT (tagged with the pre-shared key):
   the HELLO's sequence number, the sender nonce echoed, and a fresh random *receiver nonce*;
3. both ends derive the session key
   ``HMAC-SHA256(key, "semanticodec-rt link session" | session u32 | sender nonce | receiver nonce)``
   and every DATA datagram is tagged with it.  The receiver locks the session at the first DATA
   datagram whose tag checks out under that key.

Why this design: the receiver's nonce is new in every run, so DATA recorded from an earlier run
(tagged with an earlier session key) fails the tag, and a recorded HELLO replayed to a new
receiver only earns an ACCEPT that the replayer cannot use (it has no pre-shared key to derive
the new session key).  It needs a return path from receiver to sender, which UDP to the
sender's source address gives (also through NAT, whose mapping the sender's datagrams open).
The alternative without a return path, timestamps in HELLO, needs synchronised clocks and a
replay cache that survives restarts; the nonce needs neither.  ACCEPT is never larger than the
HELLO that caused it, so the receiver cannot be used to amplify traffic.

HELLOs keep the pre-shared key (not the session key) so that a receiver that starts late, or
restarts, can answer a repeated HELLO: the sender then re-keys, but only for an ACCEPT that
answers a HELLO newer than the one it last keyed on (an old ACCEPT replayed to the sender does
nothing).  Unkeyed links skip all this: without a key anybody can forge anything, which is why
``link recv`` listens on 127.0.0.1 only unless given a key or ``--insecure``.

ACCEPT body, integers big-endian: HELLO seq u32, sender nonce (16 bytes), receiver nonce (16
bytes); 36 bytes, no CRC (the tag covers it).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from dataclasses import dataclass

from .datagram import DatagramError

__all__ = ["NONCE_BYTES", "Accept", "new_nonce", "session_key", "encode_accept", "decode_accept"]

NONCE_BYTES = 16
_ACCEPT = struct.Struct(f"!I{NONCE_BYTES}s{NONCE_BYTES}s")
_LABEL = b"semanticodec-rt link session"


@dataclass(frozen=True)
class Accept:
    """A receiver's answer to HELLO number ``hello_seq`` of the sender that chose ``sender_nonce``."""

    hello_seq: int
    sender_nonce: bytes
    receiver_nonce: bytes


def new_nonce() -> bytes:
    return os.urandom(NONCE_BYTES)


def session_key(key: bytes, session: int, sender_nonce: bytes, receiver_nonce: bytes) -> bytes:
    """The 32-byte key that tags the DATA datagrams of one session with one receiver."""
    msg = _LABEL + struct.pack("!I", session) + sender_nonce + receiver_nonce
    return hmac.new(key, msg, hashlib.sha256).digest()


def encode_accept(accept: Accept) -> bytes:
    return _ACCEPT.pack(accept.hello_seq, accept.sender_nonce, accept.receiver_nonce)


def decode_accept(body: bytes) -> Accept:
    """Parse an ACCEPT body.

    Raises:
        DatagramError: reason ``malformed`` (wrong length).
    """
    if len(body) != _ACCEPT.size:
        raise DatagramError("malformed", f"ACCEPT of {len(body)} bytes, expected {_ACCEPT.size}")
    return Accept(*_ACCEPT.unpack(body))
