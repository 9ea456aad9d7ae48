"""Streaming with the published 10.24 s windowing: streamed output == offline output.

Encoder: any block sizes give exactly the ids of ``codec.encode(whole signal)``.  Decoder: any
token chunking gives ``codec.decode(all tokens, steps=2, seed=s)`` (within 1e-5; bitwise where
the window waveforms come from the memo below).

Speed: one decoder window costs ~3 s on this CPU even for the reduced model, so the decoder's
``generate`` is memoised on its exact inputs (feature, x_T and every step's noise, bytes
hashed, plus steps/eta/cfg_scale) while the offline references are computed.  A streamed run
then reuses a cached window only if it passes bitwise the same inputs; the tests also assert
that streamed runs cause no cache miss, i.e. every window they sampled is one the offline
decode sampled.  One test per rate runs uncached (real sampling inside the stream).
"""

from __future__ import annotations

import hashlib
import itertools
import math

import pytest
import torch
from conftest import golden_config

from semanticodec_rt.codec import SemantiCodec
from semanticodec_rt.windowing import official_lengths as lengths
from semanticodec_rt.windowing.official_stream import (
    OfficialStreamingDecoder, OfficialStreamingEncoder, StreamFinishedError,
)

pytestmark = pytest.mark.streaming

SR = 16000
WIN = lengths.SEGMENT_SAMPLES  # 163840
NEED = WIN + 240  # samples window 0 needs (its last fbank frame reaches 240 samples past it)
SEED = 3
STEPS = 2


def _signal(n: int, seed: int = 0, dc: float = 0.0) -> torch.Tensor:
    """A few tones + noise (+ a DC offset), float32 ``[n]``."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n, dtype=torch.float64) / SR
    x = 0.3 * torch.sin(2 * math.pi * 440.0 * t) + 0.1 * torch.sin(2 * math.pi * 1234.5 * t + 1.0)
    x = x + 0.05 * torch.sin(2 * math.pi * 97.0 * t) * torch.sin(2 * math.pi * 0.3 * t) + dc
    return x.float() + 0.05 * torch.randn(n, generator=g)


def _random_tokens(codec, length: int, batch: int = 1, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    sem = torch.randint(0, codec.cfg.semantic_vocab_size, (batch, length), generator=g)
    ac = torch.randint(0, codec.cfg.acoustic.codebook_size, (batch, length), generator=g)
    return torch.stack([sem, ac], dim=-1)


class GenerateMemo:
    """Memoises ``decoder.generate`` on the exact bytes of its inputs (see the module docstring)."""

    def __init__(self, decoder):
        self.decoder = decoder
        self.orig = decoder.generate
        self.cache: dict[str, torch.Tensor] = {}
        self.enabled = True
        self.hits = self.misses = 0

    def _key(self, feature, x_T, step_noise, steps, eta, cfg_scale, separate_guidance) -> str:
        h = hashlib.sha256(repr((int(steps), float(eta), float(cfg_scale), bool(separate_guidance))).encode())
        tensors = [feature, x_T]
        if step_noise is not None:
            tensors += [step_noise(i) for i in range(len(self.decoder.ddim(steps, eta)))]
        for t in tensors:
            t = t.detach().cpu().contiguous()
            h.update(repr((tuple(t.shape), str(t.dtype))).encode())
            h.update(t.numpy().tobytes())
        return h.hexdigest()

    def __call__(self, feature, x_T, step_noise, steps=50, eta=1.0, cfg_scale=2.0, trace=None,
                 separate_guidance=False):
        kw = dict(steps=steps, eta=eta, cfg_scale=cfg_scale, separate_guidance=separate_guidance)
        if not self.enabled or trace is not None:
            return self.orig(feature, x_T, step_noise, trace=trace, **kw)
        key = self._key(feature, x_T, step_noise, steps, eta, cfg_scale, separate_guidance)
        if key in self.cache:
            self.hits += 1
            return self.cache[key].clone()
        self.misses += 1
        out = self.orig(feature, x_T, step_noise, **kw)
        self.cache[key] = out.clone()
        return out


def _memoised(codec) -> GenerateMemo:
    memo = GenerateMemo(codec.decoder)
    codec.decoder.generate = memo  # instance attribute shadows the method
    return memo


@pytest.fixture(scope="module")
def codec100():
    codec = SemantiCodec.random(golden_config(100), seed=0)
    codec.memo = _memoised(codec)
    yield codec
    del codec.decoder.generate


@pytest.fixture(scope="module")
def codec25():
    codec = SemantiCodec.random(golden_config(25), seed=0)
    codec.memo = _memoised(codec)
    yield codec
    del codec.decoder.generate


# -- streaming drivers (check the emission bounds after every call) ------------------------------


def _encode_stream(enc: OfficialStreamingEncoder, x: torch.Tensor, blocks) -> torch.Tensor:
    """Push ``x [B, n]`` in the given block sizes (cycled), then flush."""
    rate = enc.cfg.token_rate
    out, i = [], 0
    for k in itertools.cycle(blocks):
        if i >= x.shape[-1]:
            break
        k = min(k, x.shape[-1] - i)
        piece = enc.push(x[:, i : i + k])
        assert piece.dtype == torch.int64 and piece.shape[0] == x.shape[0] and piece.shape[2] == 2
        out.append(piece)
        i += k
        assert enc.n_samples == i
        assert enc.n_tokens == sum(p.shape[1] for p in out)
        # never more than the final count of any stream that starts with these samples
        assert enc.n_tokens <= lengths.tokens_after_encode(enc.n_samples, rate)
        # bounded memory: at most one window + the 240-sample frame tail stays buffered
        assert enc.state.buffer.n < NEED
        assert enc.state.buffer.start == WIN * enc.state.window.window_index
    out.append(enc.flush())
    assert enc.n_tokens == lengths.tokens_after_encode(x.shape[-1], rate)
    return torch.cat(out, dim=1)


def _block_sizes(kind, n: int, seed: int = 0):
    if kind == "big":
        return [n]
    if isinstance(kind, int):
        return [kind]
    if kind == "random":
        g = torch.Generator().manual_seed(seed)
        sizes = torch.randint(0, 30000, (n // 7000 + 8,), generator=g).tolist()
        return sizes + [n]
    if kind == "ones-at-boundary":
        # big blocks up to shortly before window 0's last needed sample, then 2600 single
        # samples across the point where window 0 becomes complete (and the 10.24 s boundary)
        start = WIN - 1800
        return [start // 2, start - start // 2] + [1] * 2600 + [n]
    raise ValueError(kind)


def _decode_stream(dec: OfficialStreamingDecoder, tokens: torch.Tensor, chunks) -> torch.Tensor:
    """Push ``tokens [B, L, 2]`` in the given chunk sizes (cycled), then flush."""
    rate = dec.cfg.token_rate
    L = tokens.shape[1]
    out, i = [], 0
    for k in itertools.cycle(chunks):
        if i >= L:
            break
        k = min(k, L - i)
        pcm = dec.push(tokens[:, i : i + k])
        assert pcm.dtype == torch.float32 and pcm.shape[:2] == (tokens.shape[0], 1)
        out.append(pcm)
        i += k
        assert dec.n_tokens == i
        assert dec.n_samples == sum(p.shape[-1] for p in out)
        # never past the trim bound of the tokens seen so far, nor the final output length
        assert dec.n_samples <= lengths.trim_length(i, rate)
        assert dec.n_samples <= lengths.decode_output_len(L, rate)
        # token buffer holds the next window's tokens only
        st = dec.state
        assert st.tokens.start == st.windows.next_window_start
        assert st.tokens.tokens.shape[1] == i - st.tokens.start
    out.append(dec.flush())
    return torch.cat(out, dim=-1)


def _chunk_sizes(kind, L: int, seed: int = 0):
    if kind == "all":
        return [L]
    if isinstance(kind, int):
        return [kind]
    if kind == "random":
        g = torch.Generator().manual_seed(seed)
        return torch.randint(0, 90, (L,), generator=g).tolist()
    raise ValueError(kind)


# -- encoder ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signal14():
    return _signal(14 * SR + 123, seed=1, dc=0.01)[None]  # ~14 s: 2 encoder windows


@pytest.fixture(scope="module")
def tokens14(codec100, signal14):
    return codec100.encode(signal14)


@pytest.mark.parametrize("blocks", ["ones-at-boundary", 160, 16000, "random", "big"])
def test_encoder_blocks_equal_offline(codec100, signal14, tokens14, blocks):
    n = signal14.shape[-1]
    assert tokens14.shape == (1, lengths.tokens_after_encode(n, 100), 2)
    enc = codec100.stream_encoder()
    got = _encode_stream(enc, signal14, _block_sizes(blocks, n))
    assert torch.equal(got, tokens14)


def test_encoder_emits_window_exactly_when_complete(codec100, signal14, tokens14):
    """Window 0 leaves when sample 163840 + 240 arrives, not one sample earlier."""
    enc = codec100.stream_encoder()
    assert enc.push(signal14[:, : NEED - 1]).shape == (1, 0, 2)
    first = enc.push(signal14[:, NEED - 1 : NEED])
    assert torch.equal(first, tokens14[:, :512])
    assert enc.state.buffer.n == 240 and enc.state.buffer.start == WIN
    assert enc.state.window.window_index == 1 and enc.n_tokens == 512
    rest = enc.push(signal14[:, NEED:])
    assert rest.shape == (1, 0, 2)  # 14 s: window 1 is the padded last window
    assert torch.equal(enc.flush(), tokens14[:, 512:])


@pytest.mark.parametrize(
    "n",
    [
        5000,  # far less than a window
        WIN + 100,  # window 0 complete but not its frame tail: flush encodes 2 windows
        NEED,  # window 0 leaves on the last sample; flush encodes the padded window 1
        2 * WIN,  # exact multiple: the reference adds a whole zero segment (3 windows)
        2 * WIN + 5,
    ],
)
def test_encoder_edge_lengths(codec100, n):
    x = _signal(n, seed=n, dc=-0.02)[None]
    ref = codec100.encode(x)
    assert ref.shape[1] == lengths.tokens_after_encode(n, 100)
    for blocks in (_block_sizes("random", n, seed=n), [n]):
        assert torch.equal(_encode_stream(codec100.stream_encoder(), x, blocks), ref)


def test_encoder_batch_lockstep(codec100):
    n = 12 * SR + 77
    x = torch.stack([_signal(n, seed=5), _signal(n, seed=6, dc=0.05) * 0.5])
    ref = codec100.encode(x)
    enc = codec100.stream_encoder(batch_size=2)
    got = _encode_stream(enc, x, _block_sizes("random", n, seed=2))
    assert got.shape == ref.shape == (2, lengths.tokens_after_encode(n, 100), 2)
    assert torch.equal(got, ref)


def test_encoder_reset_and_empty(codec100, signal14, tokens14):
    enc = codec100.stream_encoder()
    first = _encode_stream(enc, signal14, [40000])
    with pytest.raises(ValueError, match="flushed"):
        enc.push(signal14[:, :10])
    with pytest.raises(RuntimeError, match="flushed"):  # also a RuntimeError, like the rt classes
        enc.flush()
    enc.reset()
    assert enc.n_samples == 0 and enc.n_tokens == 0 and enc.state.buffer.n == 0
    second = _encode_stream(enc, signal14, [12345])
    assert torch.equal(first, tokens14) and torch.equal(second, first)
    enc.reset()
    assert enc.push(torch.zeros(0)).shape == (1, 0, 2)
    assert enc.flush().shape == (1, 0, 2)  # codec.encode raises on empty audio instead


def test_encoder_errors(codec100):
    enc = codec100.stream_encoder(batch_size=2)
    bad = [
        (torch.zeros(100), r"\[2, n\]"),  # [n] only when B = 1
        (torch.zeros(3, 100), r"\[2, n\]"),
        (torch.zeros(2, 1, 100), r"\[2, n\]"),
        (torch.zeros(2, 100, dtype=torch.int16), "floating"),
        (torch.tensor([[0.0, float("nan")], [0.0, 0.0]]), "NaN"),
        (torch.tensor([[0.0, float("inf")], [0.0, 0.0]]), "infinite"),
        ([[0.0], [0.0]], "torch.Tensor"),
    ]
    enc.push(torch.zeros(2, 10))
    for pcm, match in bad:
        with pytest.raises(ValueError, match=match):
            enc.push(pcm)
    assert enc.n_samples == 10  # rejected blocks change nothing
    with pytest.raises(ValueError, match="batch_size"):
        codec100.stream_encoder(batch_size=0)


def test_encoder_caller_buffer_reuse(codec100, signal14, tokens14):
    """The stream copies each block: a caller reusing one block buffer cannot corrupt it."""
    enc = codec100.stream_encoder()
    block = torch.empty(1, 1000)
    out = []
    for i in range(0, signal14.shape[-1], 1000):
        piece = signal14[:, i : i + 1000]
        block[:, : piece.shape[-1]] = piece
        out.append(enc.push(block[:, : piece.shape[-1]]))
        block.fill_(0.7)
    out.append(enc.flush())
    assert torch.equal(torch.cat(out, 1), tokens14)


def test_latency_is_stated(codec100):
    for obj in (codec100.stream_encoder(), codec100.stream_decoder(steps=STEPS)):
        assert obj.algorithmic_latency_ms == codec100.windowing.algorithmic_latency_ms
        assert 10_000 < obj.algorithmic_latency_ms < 11_000
        assert "cannot give less than ~10 s" in type(obj).__doc__


# -- decoder ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dec_tokens(codec100):
    """992 random positions: the first 704 give windows (0, 512), (480, 224) -- a remainder
    window; all 992 give (0, 512), (480, 512) -- the last window ends exactly at L, so no
    remainder window must follow although 32 tokens lie past the last window's stride."""
    return _random_tokens(codec100, 992, seed=11)


@pytest.fixture(scope="module")
def dec_refs(codec100, dec_tokens):
    refs = {L: codec100.decode(dec_tokens[:, :L], steps=STEPS, seed=SEED) for L in (704, 992)}
    assert lengths.decoder_windows(704, 100) == [(0, 512), (480, 224)]
    assert lengths.decoder_windows(992, 100) == [(0, 512), (480, 512)]
    for L, ref in refs.items():
        assert ref.shape == (1, 1, lengths.decode_output_len(L, 100))
    return refs


@pytest.mark.parametrize("L", [704, 992])
@pytest.mark.parametrize("chunks", [1, 7, 100, "random", "all"])
def test_decoder_chunks_equal_offline(codec100, dec_tokens, dec_refs, L, chunks):
    memo = codec100.memo
    misses = memo.misses
    dec = codec100.stream_decoder(steps=STEPS, seed=SEED)
    got = _decode_stream(dec, dec_tokens[:, :L], _chunk_sizes(chunks, L, seed=L))
    assert memo.misses == misses, "a streamed window had inputs no offline window had"
    assert got.shape == dec_refs[L].shape
    torch.testing.assert_close(got, dec_refs[L], atol=1e-5, rtol=0)
    # Same window waveforms (memo) -> the incremental overlap-add must be bitwise overlap_add
    # (float64 numpy-linspace fades; torch.linspace fades would differ in the last bits).
    assert torch.equal(got, dec_refs[L])


@pytest.mark.heavy
def test_decoder_uncached_then_reset(codec100, dec_tokens, dec_refs):
    """Real sampling inside the stream (no memo); reset() then repeats the stream exactly."""
    dec = codec100.stream_decoder(steps=STEPS, seed=SEED)
    codec100.memo.enabled = False
    try:
        first = _decode_stream(dec, dec_tokens[:, :704], [100])
    finally:
        codec100.memo.enabled = True
    torch.testing.assert_close(first, dec_refs[704], atol=1e-5, rtol=0)
    dec.reset()
    assert dec.n_tokens == 0 and dec.n_samples == 0 and dec.state.overlap_add.tail is None
    assert dec.state.windows.window_index == 0 and dec.state.tokens.tokens.shape[1] == 0
    misses = codec100.memo.misses
    second = _decode_stream(dec, dec_tokens[:, :704], [13])
    assert codec100.memo.misses == misses
    torch.testing.assert_close(second, first, atol=1e-5, rtol=0)
    dec.reset()
    assert dec.push(torch.zeros(1, 0, 2, dtype=torch.int64)).shape == (1, 1, 0)
    assert dec.flush().shape == (1, 1, 0)  # codec.decode raises on L = 0 instead


def test_decoder_emission_schedule(codec100, dec_tokens, dec_refs):
    """Audio leaves when a window's W tokens are in; the last 10240 samples are held back."""
    dec = codec100.stream_decoder(steps=STEPS, seed=SEED)
    assert dec.push(dec_tokens[:, :511]).shape == (1, 1, 0)
    first = dec.push(dec_tokens[:, 511:512])
    assert first.shape == (1, 1, 163872 - 10240)
    st = dec.state
    assert st.windows.window_index == 1 and st.windows.next_window_start == 480
    assert st.overlap_add.tail.shape[-1] == 10240 and st.overlap_add.emitted == first.shape[-1]
    assert st.tokens.tokens.shape[1] == 32  # tokens [480, 512) kept for window 1
    assert dec.push(dec_tokens[:, 512:704]).shape == (1, 1, 0)
    last = dec.flush()
    got = torch.cat([first, last], -1)
    torch.testing.assert_close(got, dec_refs[704], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="flushed"):
        dec.push(dec_tokens[:, :1])


@pytest.mark.heavy
def test_decoder_batch_lockstep(codec100):
    tokens = _random_tokens(codec100, 300, batch=2, seed=4)  # one (remainder) window
    ref = codec100.decode(tokens, steps=STEPS, seed=SEED)
    dec = codec100.stream_decoder(batch_size=2, steps=STEPS, seed=SEED)
    misses = codec100.memo.misses
    got = _decode_stream(dec, tokens, _chunk_sizes("random", 300, seed=9))
    assert codec100.memo.misses == misses
    assert got.shape == ref.shape == (2, 1, lengths.decode_output_len(300, 100))
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)


def test_decoder_errors(codec100):
    dec = codec100.stream_decoder(batch_size=2, steps=STEPS)
    vocab, acb = codec100.cfg.semantic_vocab_size, codec100.cfg.acoustic.codebook_size
    ok = torch.zeros(2, 3, 2, dtype=torch.int64)
    bad = [
        (torch.zeros(3, 2, dtype=torch.int64), r"\[2, m, 2\]"),  # [m, 2] only when B = 1
        (torch.zeros(1, 3, 2, dtype=torch.int64), r"\[2, m, 2\]"),
        (torch.zeros(2, 3, 3, dtype=torch.int64), r"\[2, m, 2\]"),
        (torch.zeros(2, 3, 2), "integers"),
        (torch.zeros(2, 3, 2, dtype=torch.bool), "integers"),
        (ok + torch.tensor([vocab, 0]), "semantic ids"),
        (ok + torch.tensor([0, acb]), "acoustic ids"),
        (ok - 1, "ids must be in"),
        ("tokens", "torch.Tensor"),
    ]
    for tokens, match in bad:
        with pytest.raises(ValueError, match=match):
            dec.push(tokens)
    assert dec.n_tokens == 0  # rejected chunks change nothing
    assert dec.push(ok).shape == (2, 1, 0) and dec.n_tokens == 3
    dec.reset()
    assert dec.flush().shape == (2, 1, 0)
    with pytest.raises(StreamFinishedError):
        dec.push(ok)
    with pytest.raises(ValueError, match="flushed"):
        dec.flush()
    with pytest.raises(ValueError, match="batch_size"):
        codec100.stream_decoder(batch_size=-1)


def test_the_seam_picks_the_published_windowing_only_for_the_published_grid(codec100):
    # The streaming classes are reached through the codec's windowing: a config with a ``stream``
    # section gets the rt unit grid, never these classes.
    import dataclasses

    from semanticodec_rt.config import StreamConfig
    from semanticodec_rt.windowing import OfficialWindowing, UnitWindowing, windowing_for

    assert isinstance(codec100.windowing, OfficialWindowing)
    assert isinstance(codec100.stream_encoder(), OfficialStreamingEncoder)
    assert isinstance(codec100.stream_decoder(steps=STEPS), OfficialStreamingDecoder)
    rt = dataclasses.replace(codec100.cfg, stream=StreamConfig())
    assert isinstance(windowing_for(rt), UnitWindowing)


# -- rate 25 ------------------------------------------------------------------------------------


@pytest.mark.heavy
def test_rate25_encode_decode_stream(codec25):
    """Rate 25 (K = 4, W = 128 tokens, stride 120): encoder and decoder streams == offline."""
    n = 13 * SR + 321
    x = _signal(n, seed=25, dc=0.03)[None]
    tokens = codec25.encode(x)
    assert tokens.shape == (1, lengths.tokens_after_encode(n, 25), 2)
    for blocks in ("random", 160, "big"):
        got = _encode_stream(codec25.stream_encoder(), x, _block_sizes(blocks, n, seed=7))
        assert torch.equal(got, tokens)
    L = tokens.shape[1]
    assert len(lengths.decoder_windows(L, 25)) == 2
    ref = codec25.decode(tokens, steps=STEPS, seed=SEED)
    misses = codec25.memo.misses
    for chunks in ([1], [9], [L]):
        got = _decode_stream(codec25.stream_decoder(steps=STEPS, seed=SEED), tokens, chunks)
        torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)
    assert codec25.memo.misses == misses, "a streamed window had inputs no offline window had"
