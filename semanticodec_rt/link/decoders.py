"""Unit decoders of the receiver: concealed ids in, 16 kHz pcm out.

Both take whole units: ``push(ids [n, 2] int64, pad [n] bool)`` with ``n`` a multiple of
``unit_frames``, return float32 ``[m]`` samples; ``flush()`` returns the held-back tail and
``reset()`` starts a new stream.  Over a stream they emit exactly ``units * unit_samples``
samples, whatever the call pattern.

:class:`CodecDecoder` runs the real-time streaming decoder (``pad`` rows read as "no token", see
:meth:`~semanticodec_rt.windowing.unit_stream.RTStreamingDecoder.push`); :class:`SilentDecoder` costs
nothing and lets the jitter buffer, concealment and accounting run for minutes in tests.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CodecDecoder", "SilentDecoder"]


class CodecDecoder:
    """The streaming decoder of an rt preset behind the unit-decoder interface.

    Args:
        codec: a :class:`~semanticodec_rt.codec.SemantiCodec` with a real-time windowing.
        steps, cfg_scale, seed: sampling options of its streaming decoder.
    """

    def __init__(self, codec, steps: int | None = None, cfg_scale: float | None = None, seed: int = 0):
        windowing = codec.windowing
        if not windowing.realtime:
            raise ValueError(f"{codec.cfg.name} is not a real-time preset: the link decodes rt presets only")
        self.unit_frames = windowing.unit_frames
        self.unit_samples = windowing.unit_samples
        self._dec = codec.stream_decoder(steps=steps, cfg_scale=cfg_scale, seed=seed)

    def push(self, ids: np.ndarray, pad: np.ndarray) -> np.ndarray:
        import torch

        pcm = self._dec.push(torch.from_numpy(ids)[None], torch.from_numpy(pad)[None])
        return pcm[0, 0].numpy()

    def flush(self) -> np.ndarray:
        return self._dec.flush()[0, 0].numpy()

    def reset(self) -> None:
        self._dec.reset()


class SilentDecoder:
    """Zeros of the right length: ``unit_samples`` per unit (for tests and dry runs)."""

    def __init__(self, unit_frames: int, unit_samples: int):
        self.unit_frames, self.unit_samples = unit_frames, unit_samples

    def push(self, ids: np.ndarray, pad: np.ndarray) -> np.ndarray:
        return np.zeros(len(ids) // self.unit_frames * self.unit_samples, dtype=np.float32)

    def flush(self) -> np.ndarray:
        return np.zeros(0, dtype=np.float32)

    def reset(self) -> None:
        pass
