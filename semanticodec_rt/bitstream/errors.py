"""Errors of the ``.scrt`` bitstream and the model-identity check.

Every malformed input the bitstream readers see (short, corrupted, inconsistent, truncated) is
reported as :class:`BitstreamError` with a one-line human message.  It subclasses ``ValueError``
so that callers who only know "bad input" can catch that.
"""

from __future__ import annotations

__all__ = ["BitstreamError", "ModelMismatchError", "check_model", "layout_mismatch", "printable"]

#: the fields of a stream's layout that must equal the decoder's own (the bits follow from the vocabs)
LAYOUT_FIELDS = ("token_rate", "semantic_vocab", "acoustic_vocab", "sample_rate")


class BitstreamError(ValueError):
    """A ``.scrt`` file or token packet is malformed, or values do not fit the format."""


class ModelMismatchError(BitstreamError):
    """The stream was produced by a different model than the one asked to decode it."""


def printable(text: str, limit: int = 80) -> str:
    """A string from a file or the wire, safe to print: control characters (terminal escape
    sequences), other unprintables and lone surrogates as backslash escapes; at most ``limit``
    characters (then an ellipsis)."""
    text = str(text)
    cut = text[:limit]
    safe = "".join(c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode("ascii")
                   for c in cut)
    return safe + ("..." if len(text) > limit else "")


def layout_mismatch(info, expected) -> str | None:
    """What differs between a stream's layout and the decoder's (``None`` when they agree).

    A stream that names the right model but another token rate, vocab or sample rate is forged
    or damaged: read as the model's layout, its ids would be cut at the wrong bit positions, and
    taken as it claims, its sizes would drive allocations (a 2^20 vocab, a 2^20 Hz rate).
    """
    diffs = [f"{f}={getattr(info, f)} (the model's: {getattr(expected, f)})"
             for f in LAYOUT_FIELDS if getattr(info, f) != getattr(expected, f)]
    return "; ".join(diffs) or None


def check_model(info, config_sha: str, config_name: str, expected=None) -> None:
    """Raise :class:`ModelMismatchError` unless ``info`` names the decoder's model (and, given the
    decoder's own ``expected`` StreamInfo, has its layout).

    The config sha is the identity (a name is only a label: two configs may share a name across
    versions), so a sha mismatch is an error; so is any difference in the layout fields.  The
    message names both models, with the stream's strings made safe to print.

    Args:
        info: a ``StreamInfo`` (anything with ``.model`` = sha and ``.config`` = name).
        config_sha: ``CodecConfig.sha()`` of the decoder.
        config_name: ``CodecConfig.name`` of the decoder.
        expected: the decoder's ``StreamInfo.for_codec(codec)``; ``None`` checks the sha only.
    """
    if info.model != config_sha:
        raise ModelMismatchError(
            f"this .scrt was made by model {printable(info.config)} (sha {printable(info.model)}), "
            f"the decoder is model {config_name} (sha {config_sha})"
        )
    if expected is not None:
        diff = layout_mismatch(info, expected)
        if diff:
            raise ModelMismatchError(f"this .scrt names model {config_name} but not its layout: {diff}")
