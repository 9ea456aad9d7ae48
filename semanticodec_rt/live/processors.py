"""What the live worker runs on the audio: the codec over the wire format, or nothing at all.

A processor turns a mono 16 kHz float32 stream into another one *aligned* to it: output sample
``k`` belongs to input sample ``k`` (the codec's decoder emits the reconstruction of input sample
``k`` as its ``k``-th sample, only later).  That alignment is what lets the engine follow one
sample from the microphone to the speaker and measure the latency.

* :class:`Passthrough` -- input ring -> output ring, to measure the audio path alone;
* :class:`CodecProcessor` -- streaming encoder -> token packets (the stream's
  :class:`~semanticodec_rt.bitstream.TokenPacketizer`, exactly the bytes a voice link would
  send, parsed back with ``decode_packet``) -> streaming decoder.

Both have ``unit`` (the samples the processor works in; the engine drops whole units when it
falls behind), ``algorithmic_latency_ms``, ``default_jitter_ms`` (output buffer beyond a unit),
``warmup()``, ``process(pcm [n]) -> pcm [m]`` and ``stats()``.
"""

from __future__ import annotations

import numpy as np

from ..bitstream import StreamInfo, TokenPacketizer, decode_packet

__all__ = ["Passthrough", "CodecProcessor"]


class Passthrough:
    """The identity: measures rings, callbacks and devices without a model."""

    name = "passthrough"
    algorithmic_latency_ms = 0.0
    # None: one audio block of output buffer; the worker only has to move each block before the
    # next callback, and a 20 ms period leaves room for a scheduling hiccup of that much.
    default_jitter_ms = None

    def __init__(self, unit: int = 320):
        self.unit = int(unit)  # no framing of its own: the audio block is the unit

    def process(self, pcm: np.ndarray) -> np.ndarray:
        return pcm

    def warmup(self) -> None:
        pass

    def stats(self) -> dict:
        return {}


class CodecProcessor:
    """A real-time preset's streaming encoder and decoder, joined by serialised token packets.

    Its output comes in bursts of one unit per unit of input, each after the unit's compute
    time; the output buffer beyond a unit (``default_jitter_ms``) absorbs how much that compute
    time varies from unit to unit (up to ~100 ms for rt-tiny/rt-small on a loaded 2-core CPU).

    Args:
        codec: a :class:`SemantiCodec` whose config is a streaming (rt) preset.
        steps, cfg_scale, seed: decoder sampling options (default: the model's).
    """

    def __init__(self, codec, steps: int | None = None, cfg_scale: float | None = None, seed: int = 0):
        cfg, windowing = codec.cfg, codec.windowing
        if not windowing.realtime:
            raise ValueError(
                f"{cfg.name} is not a streaming preset: its {windowing.name} windowing cannot run live "
                f"(latency ~{windowing.algorithmic_latency_ms / 1000:.1f} s); use an rt preset"
            )
        self.codec, self.cfg = codec, cfg
        self.name = cfg.name
        self.encoder = codec.stream_encoder()
        self.decoder = codec.stream_decoder(steps=steps, cfg_scale=cfg_scale, seed=seed)
        self.info = StreamInfo.for_codec(codec)
        self.frames_per_packet = self.info.frames_per_packet
        self.unit = windowing.unit_samples  # 2560 samples (160 ms), 5120 at rate 25
        self.algorithmic_latency_ms = windowing.algorithmic_latency_ms
        self.default_jitter_ms = 100.0
        self._reset_counters()

    def _reset_counters(self) -> None:
        self.packetizer = TokenPacketizer(self.info)  # sequence numbers and frame count
        self.packets = 0
        self.packet_bytes = 0

    def warmup(self, seconds: float = 1.0) -> None:
        """Run ``seconds`` of silence through both ends, then start the streams afresh.

        The first calls of a model allocate and pick kernels (hundreds of ms); done here, they
        do not land on the first live units as a burst of underruns.
        """
        self.process(np.zeros(int(seconds * self.cfg.sample_rate), np.float32))
        self.encoder.reset()
        self.decoder.reset()
        self._reset_counters()

    def process(self, pcm: np.ndarray) -> np.ndarray:
        """``[n]`` float32 samples in -> ``[m]`` float32 samples out (whole units, when ready)."""
        import torch

        tokens = self.encoder.push(torch.from_numpy(np.ascontiguousarray(pcm, np.float32))[None])[0]
        if tokens.shape[0] == 0:
            return np.zeros(0, np.float32)
        ids = self._over_the_wire(tokens.numpy())
        return self.decoder.push(torch.from_numpy(ids)[None])[0, 0].numpy()

    def _over_the_wire(self, ids: np.ndarray) -> np.ndarray:
        """Send ``ids`` ``[m, 2]`` as TOKENS packets and parse them back, as a receiver would."""
        info, parts = self.info, []
        for packet in self.packetizer.push(ids) + self.packetizer.flush():  # nothing held back
            parts.append(decode_packet(packet.data, info.semantic_bits, info.acoustic_bits,
                                       semantic_vocab=info.semantic_vocab,
                                       acoustic_vocab=info.acoustic_vocab).ids)
            self.packets += 1
            self.packet_bytes += len(packet.data)
        return np.concatenate(parts)

    def stats(self) -> dict:
        """Packets and bytes sent; ``wire_bps`` is the bitrate with the 15 bytes of framing each."""
        frames = self.packetizer.frames
        seconds = frames / self.cfg.token_rate * 2  # a frame is 2 of token_rate's ids
        return {
            "packets": self.packets,
            "packet_bytes": self.packet_bytes,
            "token_frames": frames,
            "wire_bps": self.packet_bytes * 8 / seconds if seconds else None,
        }
