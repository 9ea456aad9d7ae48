"""Metadata of a ``.scrt`` stream: :class:`StreamInfo`, what the file header holds.

A version 2 file stores these fields in a binary header (:mod:`.container`; the bits are derived
from the vocab sizes there).  A version 1 file stores them as a JSON object, keys (all required,
no others; compact and sorted when written):

===================== ========== ==============================================================
key                   type       meaning
===================== ========== ==============================================================
``model``             str        sha of the model's config (``CodecConfig.sha()``)
``config``            str        config name (a label for messages)
``token_rate``        int        ids per second, both streams (100 / 50 / 25)
``semantic_vocab``    int        semantic vocab size (ids ``0 .. vocab - 1``)
``acoustic_vocab``    int        acoustic vocab size (8192; 2^40 for the speech route's composite ids)
``semantic_bits``     int        ``ceil(log2(semantic_vocab))``; checked, never free
``acoustic_bits``     int        ``ceil(log2(acoustic_vocab))``; checked, never free
``sample_rate``       int        Hz
``n_samples``         int|null   audio length; ``null`` when written live (END has it)
``n_frames``          int|null   token positions; ``null`` when written live (END has it)
``frames_per_packet`` int        most frames in one TOKENS packet
``version``           str        package version that wrote the stream
===================== ========== ==============================================================

A *frame* is one token position, i.e. one (semantic, acoustic) id pair, so frames per second are
``token_rate / 2`` and the payload bitrate is ``token_rate / 2 * (semantic_bits + acoustic_bits)``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..version import __version__
from .bitpack import MAX_BITS, bits_for_vocab
from .errors import BitstreamError
from .packet import MAX_PACKET_BYTES, MAX_PACKET_FRAMES, PACKET_OVERHEAD

__all__ = ["StreamInfo", "default_frames_per_packet"]

_U32 = 1 << 32
_U64 = 1 << 64
_PACKET_S = 0.16  # default packet duration: one AudioMAE patch column (160 ms)

_JSON_KEYS = (
    "model", "config", "token_rate", "semantic_bits", "acoustic_bits", "semantic_vocab",
    "acoustic_vocab", "sample_rate", "n_samples", "n_frames", "frames_per_packet", "version",
)


def default_frames_per_packet(token_rate: int) -> int:
    """Frames per packet for ~160 ms packets: 8 / 4 / 2 at token rate 100 / 50 / 25."""
    return max(1, round(_PACKET_S * token_rate / 2))


@dataclass(frozen=True)
class StreamInfo:
    """Metadata of one ``.scrt`` stream (the JSON header).

    Attributes:
        model: sha of the model's config (``CodecConfig.sha()``); identifies the decoder.
        config: config name (a label for messages).
        token_rate: ids per second, semantic and acoustic together (100 / 50 / 25); token
            positions ("frames") per second are ``token_rate / 2``.
        semantic_vocab, acoustic_vocab: vocab sizes (ids are ``0 .. vocab - 1``).
        sample_rate: audio sample rate in Hz.
        n_samples: audio length in samples, or ``None`` while unknown (live writing).
        n_frames: token positions in the stream, or ``None`` while unknown.
        frames_per_packet: most frames per TOKENS packet; default ~160 ms of frames.
        version: package version that wrote the stream; default the running one.
    """

    model: str
    config: str
    token_rate: int
    semantic_vocab: int
    acoustic_vocab: int
    sample_rate: int
    n_samples: int | None = None
    n_frames: int | None = None
    frames_per_packet: int | None = None
    version: str | None = None

    def __post_init__(self) -> None:
        for key in ("model", "config"):
            _expect_str(key, getattr(self, key))
        _expect_int("token_rate", self.token_rate, 1, 1 << 20)
        _expect_int("semantic_vocab", self.semantic_vocab, 2, _U32)
        _expect_int("acoustic_vocab", self.acoustic_vocab, 2, 1 << MAX_BITS)
        _expect_int("sample_rate", self.sample_rate, 1, 1 << 24)
        if self.n_samples is not None:
            _expect_int("n_samples", self.n_samples, 0, _U64 - 1)
        if self.n_frames is not None:
            # END's first_frame (a u32) carries the total.
            _expect_int("n_frames", self.n_frames, 0, _U32 - 1)
        fpp = self.frames_per_packet
        if fpp is None:
            fpp = default_frames_per_packet(int(self.token_rate))
        _expect_int("frames_per_packet", fpp, 1, self.max_frames_per_packet)
        version = self.version
        if version is None:
            version = __version__
        _expect_str("version", version)
        # Normalise numpy integers to int so that JSON and equality behave.
        for key in ("token_rate", "semantic_vocab", "acoustic_vocab", "sample_rate",
                    "n_samples", "n_frames"):
            value = getattr(self, key)
            if value is not None:
                object.__setattr__(self, key, int(value))
        object.__setattr__(self, "frames_per_packet", int(fpp))
        object.__setattr__(self, "version", version)

    @classmethod
    def from_config(cls, config, **kwargs) -> "StreamInfo":
        """Metadata for a ``CodecConfig``; ``kwargs`` set the other fields (``n_samples``, ...)."""
        return cls(
            model=config.sha(),
            config=config.name,
            token_rate=config.token_rate,
            semantic_vocab=config.semantic_vocab_size,
            acoustic_vocab=config.acoustic.codebook_size,
            sample_rate=config.sample_rate,
            **kwargs,
        )

    @classmethod
    def for_codec(cls, codec, **kwargs) -> "StreamInfo":
        """Metadata of a stream made by ``codec``: named by its model sha (its weights' hash for
        a checkpoint), not its config sha, so that a decoder with other weights refuses it.
        The one builder every writer of streams uses (files, live, link, eval)."""
        return dataclasses.replace(cls.from_config(codec.cfg, **kwargs), model=codec.model_sha)

    # -- derived ------------------------------------------------------------------------------
    @property
    def semantic_bits(self) -> int:
        return bits_for_vocab(self.semantic_vocab)

    @property
    def acoustic_bits(self) -> int:
        return bits_for_vocab(self.acoustic_vocab)

    @property
    def frame_bits(self) -> int:
        """Payload bits per token position (28 at vocab 32768 + 8192)."""
        return self.semantic_bits + self.acoustic_bits

    @property
    def frames_per_s(self) -> float:
        """Token positions per second: ``token_rate`` counts both ids of a position."""
        return self.token_rate / 2

    @property
    def payload_bps(self) -> float:
        """Nominal payload bitrate in bits/s, framing excluded (1400.0 at rate 100, vocab 32768)."""
        return self.frames_per_s * self.frame_bits

    @property
    def max_frames_per_packet(self) -> int:
        """Largest frame count whose packet fits the u16 length prefix."""
        room = (MAX_PACKET_BYTES - PACKET_OVERHEAD) * 8 // self.frame_bits
        return min(MAX_PACKET_FRAMES, room)

    # -- JSON ---------------------------------------------------------------------------------
    def to_json_dict(self) -> dict:
        """The header's JSON object (all :data:`_JSON_KEYS`)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["semantic_bits"] = self.semantic_bits
        d["acoustic_bits"] = self.acoustic_bits
        return d

    @classmethod
    def from_json_dict(cls, d) -> "StreamInfo":
        """Validate a parsed header object; every problem is a :class:`BitstreamError`."""
        if not isinstance(d, dict):
            raise BitstreamError(f"header metadata must be a JSON object, got {type(d).__name__}")
        missing = [k for k in _JSON_KEYS if k not in d]
        if missing:
            raise BitstreamError(f"header metadata lacks keys: {', '.join(missing)}")
        unknown = sorted(k for k in d if k not in _JSON_KEYS)
        if unknown:
            raise BitstreamError(f"header metadata has unknown keys: {', '.join(unknown)}")
        # Required in a file: the constructor's defaults (running version, ~160 ms packets)
        # must not paper over a damaged header.
        _expect_str("version", d["version"])
        _expect_int("frames_per_packet", d["frames_per_packet"], 1, MAX_PACKET_FRAMES)
        info = cls(**{k: d[k] for k in _JSON_KEYS if k not in ("semantic_bits", "acoustic_bits")})
        for key in ("semantic_bits", "acoustic_bits"):
            _expect_int(key, d[key], 1, 32)
            if d[key] != getattr(info, key):
                vocab = key.replace("bits", "vocab")
                raise BitstreamError(
                    f"header says {key}={d[key]} but {vocab}={getattr(info, vocab)} "
                    f"needs {getattr(info, key)}"
                )
        return info


def _expect_int(key: str, value, lo: int, hi: int) -> None:
    # JSON gives int or float; bool is an int subclass but never a count.
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise BitstreamError(f"header field {key} must be an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        shown = str(value) if abs(value) < 1 << 80 else "a huge number"  # keep messages short
        raise BitstreamError(f"header field {key}={shown} is outside {lo}..{hi}")


def _expect_str(key: str, value) -> None:
    if not isinstance(value, str) or not value or len(value) > 256:
        raise BitstreamError(f"header field {key} must be a non-empty string of at most 256 chars")
