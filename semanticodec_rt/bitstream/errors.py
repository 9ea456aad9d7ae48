"""Errors of the ``.scrt`` bitstream and the model-identity check.

Every malformed input the bitstream readers see (short, corrupted, inconsistent, truncated) is
reported as :class:`BitstreamError` with a one-line human message.  It subclasses ``ValueError``
so that callers who only know "bad input" can catch that.
"""

from __future__ import annotations

__all__ = ["BitstreamError", "ModelMismatchError", "check_model"]


class BitstreamError(ValueError):
    """A ``.scrt`` file or token packet is malformed, or values do not fit the format."""


class ModelMismatchError(BitstreamError):
    """The stream was produced by a different model than the one asked to decode it."""


def check_model(info, config_sha: str, config_name: str) -> None:
    """Raise :class:`ModelMismatchError` unless ``info`` names the decoder's model.

    The config sha is the identity (a name is only a label: two configs may share a name across
    versions), so only a sha mismatch is an error.  The message names both models.

    Args:
        info: a ``StreamInfo`` (anything with ``.model`` = sha and ``.config`` = name).
        config_sha: ``CodecConfig.sha()`` of the decoder.
        config_name: ``CodecConfig.name`` of the decoder.
    """
    if info.model != config_sha:
        raise ModelMismatchError(
            f"this .scrt was made by model {info.config} (sha {info.model}), "
            f"the decoder is model {config_name} (sha {config_sha})"
        )
