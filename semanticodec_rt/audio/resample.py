"""Band-limited windowed-sinc resampling, numerically compatible with the reference.

The reference resamples with ``torchaudio.functional.resample(w, sr, 16000)`` at its defaults
(``sinc_interp_hann``, ``lowpass_filter_width=6``, ``rolloff=0.99``).  This is an independent
implementation of that algorithm in plain torch (errata E7):

1. Reduce both rates by their gcd (44100 -> 16000 becomes 441 -> 160).
2. Cutoff ``base = 0.99 * min(orig, new)`` in the reduced units, half-width
   ``width = ceil(6 * orig / base)`` input samples (17 for 441 -> 160).
3. For output phase ``j`` (0..new-1) and tap ``i`` (``-width .. width + orig - 1``) the time
   offset is ``t = (i / orig - j / new) * base``, clamped to +-6 zero crossings; the kernel is
   ``sinc(pi t) * cos(pi t / 12)**2 * base / orig`` (a Hann window over +-6 crossings).
4. Pad the input with ``width`` zeros on the left and ``width + orig`` on the right, convolve
   with stride ``orig`` (one output channel per phase) and interleave the ``new`` phases.
5. Keep ``ceil(new * N / orig)`` samples.

Float quirks of the reference that are reproduced on purpose:

* The kernel is computed **in the waveform's dtype** (float32 for float32 audio), with the Python
  constants (``pi``, ``base``, ``scale``) rounded to that dtype by torch's scalar promotion; a
  float64 kernel differs by ~1e-7 relative.
* The output length is ``ceil`` of ``new * N / orig`` computed in Python float64 and then
  **rounded to float32** (``torch.as_tensor`` of a Python float takes the default dtype) before
  the ``ceil``.  Above 2**22 output samples (about 262 s at 16 kHz) the float32 rounding can drop
  the fractional part, and the reference output is one sample shorter than the exact ceiling.
* Equal rates return the input tensor itself (no copy), like the reference.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

LOWPASS_FILTER_WIDTH = 6  # zero crossings on each side of the sinc
ROLLOFF = 0.99  # cutoff as a fraction of the lower Nyquist frequency


def _as_rate(rate, name: str) -> int:
    """Validate a sample rate (Hz) and return it as int."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(rate).__name__}")
    if not math.isfinite(rate) or rate <= 0 or int(rate) != rate:
        raise ValueError(f"{name} must be a positive integer rate in Hz, got {rate!r}")
    return int(rate)


def reduced_rates(orig_freq: int, new_freq: int) -> tuple[int, int]:
    """Both rates divided by their gcd (e.g. 44100, 16000 -> 441, 160)."""
    o = _as_rate(orig_freq, "orig_freq")
    n = _as_rate(new_freq, "new_freq")
    g = math.gcd(o, n)
    return o // g, n // g


def resampled_length(n_samples: int, orig_freq: int, new_freq: int) -> int:
    """Output length of :func:`resample` for ``n_samples`` inputs (reference quirk included).

    ``ceil(float32(new * n / orig))`` with ``new``/``orig`` gcd-reduced: the float64 quotient is
    rounded to float32 before the ceiling, exactly as the reference does.
    """
    o, n = reduced_rates(orig_freq, new_freq)
    if o == n:
        return n_samples
    return int(math.ceil(float(np.float32(n * n_samples / o))))


@functools.lru_cache(maxsize=32)
def _cached_kernel(o: int, n: int, lpw: int, rolloff: float, dtype: torch.dtype, device: str):
    return _build_kernel(o, n, lpw, rolloff, dtype, torch.device(device))


def _build_kernel(o: int, n: int, lpw: int, rolloff: float, dtype: torch.dtype, device):
    base = min(o, n) * rolloff  # Python float, cast to `dtype` when it meets a tensor
    width = math.ceil(lpw * o / base)
    # Tap time in input periods (row vector) minus phase time in output periods (column).
    taps = torch.arange(-width, width + o, dtype=dtype, device=device) / o
    phases = torch.arange(0, -n, -1, dtype=dtype, device=device) / n
    t = (phases[:, None] + taps[None, :]) * base
    t = t.clamp(-lpw, lpw)  # beyond +-lpw crossings the window is zero anyway
    window = torch.cos(t * math.pi / lpw / 2) ** 2
    t = t * math.pi
    scale = base / o  # unity DC gain of the low-pass at the lower rate
    one = torch.ones((), dtype=dtype, device=device)
    sinc = torch.where(t == 0, one, torch.sin(t) / t)
    kernel = sinc * (window * scale)
    return kernel[:, None, :].contiguous(), width  # [n, 1, 2*width + o]


def sinc_resample_kernel(
    orig_freq: int,
    new_freq: int,
    lowpass_filter_width: int = LOWPASS_FILTER_WIDTH,
    rolloff: float = ROLLOFF,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, int]:
    """The polyphase kernel ``[new', 1, 2*width + orig']`` and ``width`` (gcd-reduced rates).

    Row ``j`` holds the FIR taps that produce output phase ``j`` from input samples
    ``[k*orig' - width, k*orig' + orig' + width)``.  A fresh tensor is returned (callers may
    modify it).
    """
    if lowpass_filter_width <= 0:
        raise ValueError(f"lowpass_filter_width must be positive, got {lowpass_filter_width}")
    if not 0.0 < rolloff <= 1.0:
        raise ValueError(f"rolloff must be in (0, 1], got {rolloff}")
    o, n = reduced_rates(orig_freq, new_freq)
    kernel, width = _cached_kernel(
        o, n, int(lowpass_filter_width), float(rolloff), dtype, str(torch.device(device))
    )
    return kernel.clone(), width


def resample(
    waveform: torch.Tensor,
    orig_freq: int,
    new_freq: int,
    lowpass_filter_width: int = LOWPASS_FILTER_WIDTH,
    rolloff: float = ROLLOFF,
) -> torch.Tensor:
    """Resample ``waveform`` ``[..., N]`` from ``orig_freq`` to ``new_freq`` Hz -> ``[..., N']``.

    All leading dims (channels, batch) are resampled independently with the same kernel.
    ``N' = ceil(float32(new' * N / orig'))`` (see the module docstring).  Float dtype is kept;
    the computation runs in that dtype, like the reference.  Equal rates return ``waveform``
    itself.  The input is never modified.
    """
    if not waveform.is_floating_point():
        raise TypeError(f"resample expects a floating-point waveform, got {waveform.dtype}")
    o_full = _as_rate(orig_freq, "orig_freq")
    n_full = _as_rate(new_freq, "new_freq")
    if o_full == n_full:
        return waveform
    o, n = reduced_rates(o_full, n_full)
    kernel, width = _cached_kernel(
        o, n, int(lowpass_filter_width), float(rolloff), waveform.dtype, str(waveform.device)
    )
    shape = waveform.shape
    length = shape[-1]
    x = waveform.reshape(-1, length)
    # Left pad centres tap 0 on input sample 0; the extra `o` on the right makes the last
    # (partial) block of `o` inputs produce a full set of `n` phases before the final cut.
    x = F.pad(x, (width, width + o))
    y = F.conv1d(x[:, None, :], kernel, stride=o)  # [B, n phases, blocks]
    y = y.transpose(1, 2).reshape(x.shape[0], -1)  # interleave: block-major, phase-minor
    y = y[:, : resampled_length(length, o, n)]
    return y.reshape(*shape[:-1], y.shape[-1])



#: torch convolves a float32 CPU input of batch 1 with its native kernel up to this many samples
#: and with oneDNN (mkldnn) above (aten's ``use_mkldnn`` heuristic; a batch of 2 or more always
#: takes oneDNN).  The two round differently, and only oneDNN gives each output sample the same
#: bits whatever the length of the input it is computed from.
NATIVE_CONV_MAX_SAMPLES = 20480


class StreamingResampler:
    """:func:`resample` block by block: the pieces joined equal ``resample`` of the whole signal.

    ``push(x [..., n]) -> y [..., m]`` returns the output samples the input so far settles;
    ``flush()`` ends the signal (the zero padding :func:`resample` puts on the right) and returns
    the rest, cut where :func:`resample` cuts: ``resampled_length(total input)``, or the last
    computed sample if that comes first (float32 rounding can put the length one past it).

    Exactness.  Each output block is the same convolution of the same input samples as in
    :func:`resample`.  With several channels (a batch of 2 or more) float32 gives the same bits
    too: both run oneDNN, whose samples do not depend on how much input a call gets (tested on
    awkward block sizes).  A single channel takes oneDNN only above
    :data:`NATIVE_CONV_MAX_SAMPLES` input samples and torch's native kernel below, which rounds
    by length, so its samples can differ from :func:`resample`'s in the last bit -- unless
    ``exact``: then it is convolved only once that much input is at hand, keeping the last
    ``NATIVE_CONV_MAX_SAMPLES`` input samples to convolve again with the new ones (their outputs
    dropped), and a signal that ends before that is convolved once, whole, at :meth:`flush`:
    :func:`resample`'s very call.  Other float dtypes agree to rounding only.

    Latency and memory.  An output sample waits for the kernel's right half and one block of
    ``orig'`` input samples; with ``exact`` and one channel the first output also waits for
    20480 input samples (fine for files, not for live audio).  The state is one pushed block
    plus ``2 * width + orig'`` input samples (about 20480 more with ``exact``).  A computed
    sample is held back while it could still fall past the final length: the reference length
    only grows with the input, so ``resampled_length(input so far)`` samples are always safe to
    return.

    Args:
        orig_freq, new_freq: rates in Hz.  Equal rates pass every block through unchanged.
        lowpass_filter_width, rolloff: as :func:`resample`.
        exact: single-channel float32 input gives :func:`resample`'s bits (see above).

    Every push must have the same leading dims (channels) and dtype; the kernel is built in the
    dtype of the first push, as :func:`resample` builds it in the waveform's.
    """

    def __init__(self, orig_freq: int, new_freq: int, lowpass_filter_width: int = LOWPASS_FILTER_WIDTH,
                 rolloff: float = ROLLOFF, *, exact: bool = False):
        if lowpass_filter_width <= 0:
            raise ValueError(f"lowpass_filter_width must be positive, got {lowpass_filter_width}")
        if not 0.0 < rolloff <= 1.0:
            raise ValueError(f"rolloff must be in (0, 1], got {rolloff}")
        self.exact = bool(exact)
        self.orig_freq = _as_rate(orig_freq, "orig_freq")
        self.new_freq = _as_rate(new_freq, "new_freq")
        self.lowpass_filter_width, self.rolloff = int(lowpass_filter_width), float(rolloff)
        self.o, self.n = reduced_rates(self.orig_freq, self.new_freq)
        self.n_in = 0  # input samples pushed (per channel)
        self.n_out = 0  # output samples returned
        self._kernel = None
        self._width = 0
        self._buf = None  # padded input from block `_buf_block`'s first tap on
        self._buf_block = 0  # output block whose first tap is _buf's first sample
        self._next_block = 0  # first output block not computed yet
        self._keep_blocks = 0  # blocks of input kept for the next call (exact, one channel)
        self._held = None  # computed output not yet safe to return
        self._finished = False

    def push(self, x: torch.Tensor) -> torch.Tensor:
        """Input ``[..., n]`` -> the output samples it settles, ``[..., m]``."""
        if self._finished:
            raise RuntimeError("StreamingResampler already flushed (make a new one)")
        if not x.is_floating_point():
            raise TypeError(f"resample expects a floating-point waveform, got {x.dtype}")
        if self._buf is None:
            self._start(x)
        elif x.shape[:-1] != self._buf.shape[:-1] or x.dtype != self._buf.dtype:
            raise ValueError(f"every block must be {list(self._buf.shape[:-1])} x N {self._buf.dtype}, "
                             f"got {list(x.shape)} {x.dtype}")
        self.n_in += x.shape[-1]
        if self.o == self.n:
            self.n_out += x.shape[-1]
            return x
        self._buf = torch.cat([self._buf, x], -1)
        return self._emit(self._convolve(final=False), resampled_length(self.n_in, self.o, self.n))

    def flush(self) -> torch.Tensor:
        """The rest of the output, ``[..., m]`` (shape ``[0]`` if nothing was ever pushed)."""
        if self._finished:
            raise RuntimeError("StreamingResampler already flushed (make a new one)")
        self._finished = True
        if self._buf is None:
            return torch.zeros(0)
        if self.o == self.n:
            return self._buf[..., :0]
        self._buf = F.pad(self._buf, (0, self._width + self.o))
        return self._emit(self._convolve(final=True), resampled_length(self.n_in, self.o, self.n))

    def _start(self, x: torch.Tensor) -> None:
        self._buf = x.new_zeros(*x.shape[:-1], 0)
        if self.o == self.n:
            return
        self._kernel, self._width = _cached_kernel(self.o, self.n, self.lowpass_filter_width,
                                                   self.rolloff, x.dtype, str(x.device))
        # The left zero pad of resample(): output block 0 reads from input sample -width.
        self._buf = x.new_zeros(*x.shape[:-1], self._width)
        self._held = x.new_zeros(*x.shape[:-1], 0)
        if self.exact and math.prod(x.shape[:-1]) == 1:
            self._keep_blocks = -(-NATIVE_CONV_MAX_SAMPLES // self.o)

    def _convolve(self, final: bool) -> torch.Tensor:
        """The output blocks not computed yet that the buffer holds every tap of, interleaved."""
        span = self._kernel.shape[-1]  # 2 * width + o taps
        shape = self._buf.shape[:-1]
        length = self._buf.shape[-1]
        blocks = (length - span) // self.o + 1 if length >= span else 0
        new = self._buf_block + blocks - self._next_block
        if new <= 0 or (self._keep_blocks and not final and length <= NATIVE_CONV_MAX_SAMPLES):
            return self._buf.new_zeros(*shape, 0)
        # The whole buffer, as resample() passes its whole padded input: the length picks the kernel.
        x = self._buf.reshape(-1, 1, length)
        y = F.conv1d(x, self._kernel, stride=self.o)[..., blocks - new :]  # [B, n phases, new]
        self._next_block += new
        # Keep the input from the next block on, and before it what a single channel convolves again.
        first = max(self._buf_block, self._next_block - self._keep_blocks)
        self._buf = self._buf[..., (first - self._buf_block) * self.o :]
        self._buf_block = first
        return y.transpose(1, 2).reshape(*shape, new * self.n)

    def _emit(self, new: torch.Tensor, limit: int) -> torch.Tensor:
        """The held and ``new`` samples, up to ``limit`` output samples returned in all."""
        held = torch.cat([self._held, new], -1)
        k = max(0, min(held.shape[-1], limit - self.n_out))
        self._held = held[..., k:]
        self.n_out += k
        return held[..., :k]
