"""Both ends of the link in one process over 127.0.0.1, optionally through a lossy relay.

For tests and ``examples/voice_link.py``: the sender runs on a thread (replaying a wave in real
time), the receiver on the calling thread, so a run takes about the audio's duration.
"""

from __future__ import annotations

import socket
import threading

import numpy as np

from .decoders import CodecDecoder
from .impair import ImpairedChannel, Impairments, LossyRelay
from .receiver import ReceiverCore, link_info
from .recv_loop import receive_stream
from .sender import Packetizer, Sender, file_blocks
from .sinks import NullSink

__all__ = ["run_loopback"]


def run_loopback(codec, wave: np.ndarray, *, imp: Impairments | None = None, key: bytes | None = None,
                 plc: str = "repeat", frames_per_packet: int | None = None, min_delay: float = 0.04,
                 max_delay: float = 1.0, decoder=None, sink=None, timeout: float = 1.5,
                 wrap_blocks=None) -> tuple[dict, dict, ImpairedChannel | None]:
    """Send ``wave`` (``[n]`` float32, 16 kHz) to a receiver on this machine.

    Args:
        codec: an rt preset codec (both ends use it).
        imp: impairments of a :class:`~.impair.LossyRelay` between the ends (None: direct).
        key, plc, frames_per_packet, min_delay, max_delay: as the command line's options.
        decoder: the receiver's unit decoder (default :class:`~.decoders.CodecDecoder`).
        sink: where the audio goes (default :class:`~.sinks.NullSink`); closed by the run.
        timeout: the receiver's end-of-stream timeout, seconds.
        wrap_blocks: ``f(blocks, sender_socket, receiver_address) -> blocks``, a hook to send
            extra datagrams while the stream runs (tests inject junk with it).

    Returns:
        ``(sender stats, receiver stats, relay channel or None)``.
    """
    tu = codec.windowing.unit_frames
    unit_samples = codec.windowing.unit_samples
    decoder = CodecDecoder(codec) if decoder is None else decoder
    sink = NullSink() if sink is None else sink
    core = ReceiverCore(link_info(codec), tu, key=key, plc=plc, min_delay=min_delay, max_delay=max_delay)
    packetizer = Packetizer(link_info(codec, frames_per_packet or tu), key=key)
    sent: dict = {}
    failed: list[BaseException] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        target = rx.getsockname()
        relay = LossyRelay(target, imp) if imp is not None else None

        def send() -> None:
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
                    blocks = file_blocks(wave, unit_samples, codec.cfg.sample_rate)
                    if wrap_blocks is not None:
                        blocks = wrap_blocks(blocks, tx, target)
                    sender = Sender(codec, tx, relay.address if relay else target, packetizer)
                    sent.update(sender.run(blocks).to_dict())
            except BaseException as e:  # noqa: BLE001 - re-raised on the caller's thread
                failed.append(e)

        thread = threading.Thread(target=send, name="link-sender", daemon=True)
        if relay is not None:
            relay.__enter__()
        try:
            thread.start()
            got = receive_stream(rx, core, decoder, sink, timeout=timeout, wait=30.0)
            thread.join()
        finally:
            if relay is not None:
                relay.__exit__(None, None, None)
    if failed:
        raise failed[0]
    return sent, got, relay.channel if relay is not None else None
