"""Length bookkeeping of the reference codec (``load_audio`` / ``encode`` / ``decode``).

Every number here is computed with the same Python ``float``/``int`` expressions, in the same
order, as the published inference code, so that every edge case rounds the same way.  These
rules are not "nice"; they are what the published model was run with, and a port that wants
token-for-token and sample-for-sample agreement has to keep them:

* ``target_token_len = 8 * d' / 0.16 / K`` with ``d' = d + (0.16 - d % 0.16)`` and
  ``d = n_samples / 16000``.  Python's float ``%`` decides the edge cases:

  - an exact multiple of 0.16 s gains a *whole extra* 0.16 s patch (``d % 0.16 == 0`` still
    adds 0.16): 10.24 s -> 520 positions at rate 100;
  - 9.6 s gives ``9.6 % 0.16 == 0.15999999999999945``, hence ``d' == 9.6`` and 480 positions;
  - 1.0 s gives ``56.00000000000001``, which ``ceil`` turns into **57** (rate 100).

* Segment padding adds ``163840 - n % 163840`` zeros; the guard in the reference is always
  true, so a length that is already a multiple of 163840 gains a whole extra 10.24 s segment.
* Decoder windows: ``W = 512 / K`` tokens, overlap ``int(W * 0.0625)`` tokens, full windows while
  ``start + W < L``, then the remainder.  Each decoded window is 163872 samples
  (160 * 1024 + 32), the overlap-add advances by ``163872 - 10240 = 153632`` per window.
* Trim: ``int(((L / 8) * 16 * 0.01 * K) * 16000)`` samples; ``int`` truncates expressions such
  as ``256959.99999999997`` (L = 803, rate 100), dropping one sample.

Units: ``n_samples`` are samples at 16 kHz, durations are seconds, token lengths count token
*positions* (each position carries a semantic and an acoustic index).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import SAMPLE_RATE, stack_factor

# Constants of the reference code (``semanticodec/main.py``).  They are the official values and
# are deliberately not derived from a (possibly reduced) config: reduced test configs shrink the
# widths, never the time grid.
SEGMENT_SAMPLES = 163840  # 10.24 s encoder window at 16 kHz
MEL_FRAMES_PER_SEGMENT = 1024  # fbank frames per encoder window
PATCH_DURATION = 0.16  # seconds per AudioMAE time patch (16 frames of 10 ms)
TOKENS_PER_PATCH_R100 = 8  # 8 frequency patches per time patch at token rate 100
DECODER_WINDOW_TOKENS_R100 = 512  # decoder window in tokens at rate 100 (10.24 s)
WINDOW_OVERLAP_RATIO = 0.0625  # decoder windows overlap 0.64 s
SEGMENT_DURATION = 10.24
DECODED_WINDOW_SAMPLES = 163872  # vocoder output per window: 160 * 1024 + 32 (not 163840!)
OVERLAP_SAMPLES = int(SEGMENT_DURATION * WINDOW_OVERLAP_RATIO * SAMPLE_RATE)  # 10240 = 0.64 s


def duration_s(n_samples: int, sample_rate: int = SAMPLE_RATE) -> float:
    """d = n_samples / sample_rate, a Python float (seconds)."""
    return n_samples / sample_rate


def patch_rounded_duration_s(n_samples: int, sample_rate: int = SAMPLE_RATE) -> float:
    """d' = d + (0.16 - d % 0.16) in Python floats (seconds).

    Quirk kept from the reference: there is no ``d % 0.16 != 0`` guard, so a duration that is an
    exact multiple of 0.16 s gains a whole extra 0.16 s; float ``%`` may also return almost
    0.16 for exact-looking multiples (9.6 s -> 0.15999999999999945), which then adds ~0.
    """
    d = duration_s(n_samples, sample_rate)
    return d + (PATCH_DURATION - d % PATCH_DURATION)


def target_token_len(n_samples: int, token_rate: int, sample_rate: int = SAMPLE_RATE) -> float:
    """The reference's float ``target_token_len = 8 * d' / 0.16 / K`` (token positions).

    The value is compared with ``repr()`` in the golden tests, so the evaluation order
    (multiply by 8, divide by 0.16, divide by K, left to right) is part of the contract.
    """
    k = stack_factor(token_rate)
    d2 = patch_rounded_duration_s(n_samples, sample_rate)
    return TOKENS_PER_PATCH_R100 * d2 / PATCH_DURATION / k


def ceil_target_token_len(n_samples: int, token_rate: int, sample_rate: int = SAMPLE_RATE) -> int:
    """``math.ceil(target_token_len)``: what ``encode`` slices the token sequence to."""
    return math.ceil(target_token_len(n_samples, token_rate, sample_rate))


def segment_padding(n_samples: int) -> int:
    """Zeros appended by ``load_audio``: ``163840 - n % 163840`` (always >= 1).

    Quirk: a length that is already a multiple of 163840 gets 163840 zeros, i.e. a whole
    extra all-zero 10.24 s encoder segment.
    """
    return SEGMENT_SAMPLES - (n_samples % SEGMENT_SAMPLES)


def padded_samples(n_samples: int) -> int:
    """Waveform length after the segment padding (a multiple of 163840)."""
    return n_samples + segment_padding(n_samples)


def n_segments(n_samples: int) -> int:
    """Number of 10.24 s encoder windows of the padded waveform."""
    return padded_samples(n_samples) // SEGMENT_SAMPLES


def mel_target_length(n_samples: int) -> int:
    """Fbank frames the reference pads/cuts to: 1024 * n_segments."""
    return MEL_FRAMES_PER_SEGMENT * n_segments(n_samples)


def tokens_per_window(token_rate: int) -> int:
    """T_w = 512 / K token positions per 10.24 s window (512 / 256 / 128)."""
    return DECODER_WINDOW_TOKENS_R100 // stack_factor(token_rate)


def encoder_tokens_before_trim(n_samples: int, token_rate: int) -> int:
    """Token positions the encoder emits for the padded file: n_segments * T_w."""
    return n_segments(n_samples) * tokens_per_window(token_rate)


def tokens_after_encode(n_samples: int, token_rate: int, sample_rate: int = SAMPLE_RATE) -> int:
    """Token positions ``encode`` returns: ``tokens[:, :ceil(target_token_len)]``.

    A Python slice never grows the sequence, hence the ``min`` with the encoder output.
    """
    return min(
        ceil_target_token_len(n_samples, token_rate, sample_rate),
        encoder_tokens_before_trim(n_samples, token_rate),
    )


def decoder_window_overlap_tokens(token_rate: int) -> int:
    """int(W * 0.0625) = 32 / 16 / 8 tokens: always 0.64 s."""
    return int(tokens_per_window(token_rate) * WINDOW_OVERLAP_RATIO)


def decoder_windows(n_tokens: int, token_rate: int) -> list[tuple[int, int]]:
    """``(start, length)`` of every decoder token window (``long_token_split_window``).

    Full windows of W tokens at stride ``W - overlap`` (9.6 s) are taken while
    ``start + W < n_tokens`` (strict: a sequence of exactly W tokens is one window); the
    remainder ``tokens[start:]`` (1..W tokens) is the last window.  ``n_tokens == 0`` gives no
    window at all.
    """
    if n_tokens < 0:
        raise ValueError(f"n_tokens must be >= 0, got {n_tokens}")
    w = tokens_per_window(token_rate)
    stride = w - decoder_window_overlap_tokens(token_rate)
    out: list[tuple[int, int]] = []
    start = 0
    while start + w < n_tokens:
        out.append((start, w))
        start += stride
    if start < n_tokens:
        out.append((start, n_tokens - start))
    return out


def decode_len_before_trim(n_windows: int, window_samples: int = DECODED_WINDOW_SAMPLES) -> int:
    """Overlap-add output length: ``163872 + (n_win - 1) * 153632`` samples.

    Each window is appended after its first 10240 samples; because windows are 163872 samples
    long (not 163840), window k lands 32 * k samples late relative to its token time.
    """
    if n_windows < 1:
        raise ValueError(f"n_windows must be >= 1, got {n_windows}")
    return window_samples + (n_windows - 1) * (window_samples - OVERLAP_SAMPLES)


def trim_expression(n_tokens: int, token_rate: int) -> float:
    """The float ``((L / 8) * 16 * 0.01 * K) * 16000`` before ``int`` (samples).

    It is ``L * 320 * K`` mathematically but may land just below the integer, e.g.
    ``256959.99999999997`` for L = 803 at rate 100.
    """
    k = stack_factor(token_rate)
    return ((n_tokens / 8) * 16 * 0.01 * k) * 16000


def trim_length(n_tokens: int, token_rate: int) -> int:
    """``int(trim_expression)``: truncation toward zero can drop one sample (see above)."""
    return int(trim_expression(n_tokens, token_rate))


def decode_output_len(n_tokens: int, token_rate: int) -> int:
    """Final ``decode()`` length: ``min(trim_length, decode_len_before_trim)`` (slice semantics)."""
    n_win = len(decoder_windows(n_tokens, token_rate))
    return min(trim_length(n_tokens, token_rate), decode_len_before_trim(n_win))


@dataclass(frozen=True)
class LengthPlan:
    """All length facts of one input, as the reference computes them (one token rate).

    Field names follow ``golden/lengths.json``.
    """

    n_samples: int  # input samples at 16 kHz
    token_rate: int
    padded_samples: int
    n_segments: int
    mel_target_length: int  # fbank frames
    target_token_len: float
    ceil_target_token_len: int
    encoder_tokens_before_trim: int
    tokens_after_encode: int
    decode_windows_start_len: tuple[tuple[int, int], ...]
    decode_len_before_trim: int  # samples
    decode_trim_len: int  # samples
    decode_output_len: int  # samples


def plan_lengths(n_samples: int, token_rate: int) -> LengthPlan:
    """Every bookkeeping number for an ``n_samples`` (16 kHz) input at ``token_rate``."""
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}")
    n_tok = tokens_after_encode(n_samples, token_rate)
    windows = decoder_windows(n_tok, token_rate)
    before = decode_len_before_trim(len(windows))
    trim = trim_length(n_tok, token_rate)
    return LengthPlan(
        n_samples=n_samples,
        token_rate=token_rate,
        padded_samples=padded_samples(n_samples),
        n_segments=n_segments(n_samples),
        mel_target_length=mel_target_length(n_samples),
        target_token_len=target_token_len(n_samples, token_rate),
        ceil_target_token_len=ceil_target_token_len(n_samples, token_rate),
        encoder_tokens_before_trim=encoder_tokens_before_trim(n_samples, token_rate),
        tokens_after_encode=n_tok,
        decode_windows_start_len=tuple(windows),
        decode_len_before_trim=before,
        decode_trim_len=trim,
        decode_output_len=min(trim, before),
    )
