"""Streaming encode/decode: pcm blocks in, token positions out, and back.

:class:`StreamingEncoder` and :class:`StreamingDecoder` pick the implementation from the model:
the real-time presets (``cfg.stream`` set; latency of a few hundred ms) or the published
10.24 s windowing (latency ~10.9 s: the official model cannot stream with less).  Both keep
their state in explicit per-stage objects (``.state``) and give the same result as the offline
``SemantiCodec.encode`` / ``decode`` for any block sizes.
"""

from __future__ import annotations


def _impl_classes(codec):
    if codec.cfg.stream is not None:
        from .units_stream import RTStreamingDecoder, RTStreamingEncoder

        return RTStreamingEncoder, RTStreamingDecoder
    from .official_stream import OfficialStreamingDecoder, OfficialStreamingEncoder

    return OfficialStreamingEncoder, OfficialStreamingDecoder


def StreamingEncoder(codec, batch_size: int = 1):
    """``push(pcm [B, n]) -> tokens [B, m, 2]``, ``flush()``, ``reset()``, ``state``."""
    return _impl_classes(codec)[0](codec, batch_size=batch_size)


def StreamingDecoder(codec, batch_size: int = 1, steps=None, cfg_scale=None, eta=None, seed: int = 0, **kwargs):
    """``push(tokens [B, m, 2]) -> pcm [B, 1, n]``, ``flush()``, ``reset()``, ``state``.

    rt presets also take ``n_samples`` (the stream length, if known) to stop at the input length.
    """
    cls = _impl_classes(codec)[1]
    return cls(codec, batch_size=batch_size, steps=steps, cfg_scale=cfg_scale, eta=eta, seed=seed, **kwargs)


__all__ = ["StreamingEncoder", "StreamingDecoder"]
