"""semanticodec_rt: a streaming, real-time implementation of the SemantiCodec audio codec.

The front door (:mod:`.api`)::

    import semanticodec_rt as sc

    codec = sc.load_model()                        # the shipped default; or a path,
                                                   # "official:DIR[:RATE[:VOCAB]]", "preset:NAME"
    data = sc.compress("speech.wav", model=codec)  # .scrt bytes (out=PATH writes a file)
    audio = sc.decompress(data, model=codec)       # [1, n] float32 at 16 kHz (out=PATH.wav)
    enc, dec = sc.StreamingEncoder(codec), sc.StreamingDecoder(codec)

Names are loaded on first use, so ``import semanticodec_rt`` stays cheap (no torch) for tools
that only read ``.scrt`` files.
"""

from .version import __version__

_API = ("load_model", "compress", "decompress", "StreamingEncoder", "StreamingDecoder", "preset_names",
        "DEFAULT_MODEL", "ModelSpecError", "WavReport")

__all__ = ["__version__", "SemantiCodec", "PRESETS", "SAMPLE_RATE", *_API]


def __getattr__(name: str):
    if name in _API:
        from . import api

        return getattr(api, name)
    if name == "SemantiCodec":
        from .codec import SemantiCodec

        return SemantiCodec
    if name in ("PRESETS", "SAMPLE_RATE"):
        from . import config

        return getattr(config, name)
    raise AttributeError(f"module 'semanticodec_rt' has no attribute {name!r}")
