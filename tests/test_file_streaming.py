"""Files coded block by block (issue 16, deliverable 4): the streamed path equals the whole-file one.

The whole-file path is what ``encode`` did before: read the file whole (``read_audio_file``),
resample every channel at once (``resample``), apply the channel policy, encode.  The streamed
path reads blocks (``AudioFileBlocks``), resamples them with ``StreamingResampler(exact=True)``
and encodes as they come (``FileWaveform``, ``compress``).  Samples, tokens and ``.scrt`` bytes
must be identical, and every error must read as it did.  The memory figures themselves come
from ``examples/file_memory_probe.py`` (not a test: minutes of audio).
"""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
import soundfile as sf
import torch

from semanticodec_rt import api, cli
from semanticodec_rt.audio.files import (
    AudioFileBlocks, AudioInputError, apply_channel_policy, read_audio_file,
)
from semanticodec_rt.audio.load import FileWaveform, load_waveform
from semanticodec_rt.audio.resample import (
    NATIVE_CONV_MAX_SAMPLES, StreamingResampler, resample, resampled_length, sinc_resample_kernel,
)
from semanticodec_rt.bitstream import read_scrt
from semanticodec_rt.codec import SemantiCodec
from semanticodec_rt.config import rt_config
from semanticodec_rt.lab.eval.run import Clip, _load_reference

pytestmark = pytest.mark.streaming

SR = 16000
RATES = (48000, 44100, 22050, 8000, 16000, 96000)


def _whole(path, mono: str) -> torch.Tensor:
    """The whole-file path: read all, resample all channels, then the channel policy."""
    wave, sr = read_audio_file(path, mono=None)
    if sr != SR:
        wave = resample(wave, sr, SR)
    return apply_channel_policy(wave, mono)


def _stream(resampler: StreamingResampler, x: torch.Tensor, sizes) -> torch.Tensor:
    """``x`` pushed in blocks of the given sizes (cycled), then flushed; the output joined."""
    out, i, sizes = [], 0, list(sizes)
    while i < x.shape[-1]:
        k = sizes[len(out) % len(sizes)]
        out.append(resampler.push(x[..., i : i + k]))
        i += k
    out.append(resampler.flush())
    return torch.cat(out, -1)


def _signal(shape, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy((0.3 * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32))


# -- the streaming resampler -----------------------------------------------------------------------
@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("channels", [(), (1,), (2,)], ids=["1d", "mono", "stereo"])
def test_streaming_resampler_is_bit_exact(rate, channels):
    r = random.Random(rate)
    for n in (1, 2, 150, 1001, 30011):
        x = _signal((*channels, n), seed=n)
        want = resample(x, rate, SR)
        blockings = [[1], [2], [129, 151], [r.randint(0, 5000) + 1 for _ in range(40)], [4096], [n]]
        for sizes in blockings if n <= 1001 else blockings[2:]:
            got = _stream(StreamingResampler(rate, SR, exact=True), x, sizes)
            assert got.shape == want.shape and torch.equal(got, want), (n, sizes[:3])


@pytest.mark.parametrize("rate", [48000, 44100, 8000])
def test_exact_single_channel_around_the_kernel_switch(rate):
    """One channel is convolved by torch's native kernel up to NATIVE_CONV_MAX_SAMPLES samples and by
    oneDNN above: the whole-signal call's side of that line must be kept."""
    kernel, width = sinc_resample_kernel(rate, SR)
    o = kernel.shape[-1] - 2 * width  # input samples per block of output phases
    padding = 2 * width + o  # what resample() adds around the signal
    for length in (NATIVE_CONV_MAX_SAMPLES - padding, NATIVE_CONV_MAX_SAMPLES - padding + 1,
                   NATIVE_CONV_MAX_SAMPLES + 3 * o):
        x = _signal((1, length), seed=length)
        want = resample(x, rate, SR)
        for sizes in ([977], [length], [5000, 1]):
            assert torch.equal(_stream(StreamingResampler(rate, SR, exact=True), x, sizes), want), (length, sizes)


def test_default_resampler_is_low_latency_and_rounds_alike():
    """Without ``exact`` one channel comes out as soon as the kernel allows (live audio), equal to
    the whole-signal resampler to float rounding; several channels are exact either way."""
    x = _signal((1, 48000))
    res = StreamingResampler(48000, SR)
    first = res.push(x[:, :960])
    assert first.shape[-1] >= 960 // 3 - 8  # 20 ms in, ~20 ms out (not 20480 samples' wait)
    got = torch.cat([first, _stream(res, x[:, 960:], [960])], -1)
    want = resample(x, 48000, SR)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    stereo = _signal((2, 48000), seed=1)
    assert torch.equal(_stream(StreamingResampler(48000, SR), stereo, [960]), resample(stereo, 48000, SR))


def test_streaming_resampler_edges():
    res = StreamingResampler(SR, SR)
    x = _signal((2, 100))
    assert res.push(x) is x and res.flush().shape == (2, 0)
    assert StreamingResampler(48000, SR).flush().shape == (0,)  # nothing pushed
    res = StreamingResampler(48000, SR)
    res.push(torch.zeros(2, 10))
    with pytest.raises(ValueError, match="every block"):
        res.push(torch.zeros(1, 10))
    with pytest.raises(TypeError, match="floating-point"):
        res.push(torch.zeros(2, 10, dtype=torch.int16))
    res.flush()
    with pytest.raises(RuntimeError, match="flushed"):
        res.push(torch.zeros(2, 10))
    with pytest.raises(ValueError, match="positive integer"):
        StreamingResampler(0, SR)
    # float64 runs torch's native kernel, which rounds by length: equal to rounding only
    x64 = _signal((1, 5000)).double()
    torch.testing.assert_close(_stream(StreamingResampler(44100, SR), x64, [333]), resample(x64, 44100, SR),
                               rtol=0, atol=1e-12)


@pytest.mark.slow
def test_streaming_resampler_float32_length_quirk_at_length():
    """Past 2**24 output samples the reference length ``ceil(float32(...))`` falls a sample short of
    the exact ceiling; the stream must stop exactly there too (50 M samples: ~17.5 min at 48 kHz)."""
    n = 3 * (2**24 + 2) + 1
    assert resampled_length(n, 48000, SR) == 2**24 + 2  # the exact ceiling is 2**24 + 3
    x = torch.sin(torch.arange(n, dtype=torch.float32) * 0.001)[None] * 0.5
    got = _stream(StreamingResampler(48000, SR, exact=True), x, [1 << 16])
    want = resample(x, 48000, SR)
    assert got.shape == want.shape and torch.equal(got, want)


@pytest.fixture(scope="module")
def rt_tiny():
    return SemantiCodec.random(rt_config("rt-tiny", 100, 256), seed=0)


# -- files read block by block -----------------------------------------------------------------------
FILES = [(48000, 2, "PCM_16"), (44100, 1, "FLOAT"), (16000, 2, "PCM_16"), (8000, 3, "PCM_24"),
         (22050, 1, "PCM_16")]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("blocks")
    out = {}
    for rate, ch, subtype in FILES:
        p = root / f"{rate}_{ch}.wav"
        sf.write(p, _signal((int(2.3 * rate) + 7, ch), seed=rate).numpy(), rate, subtype=subtype)
        out[(rate, ch)] = p
    p = root / "48000_2.flac"
    sf.write(p, _signal((48000 * 2 + 5, 2), seed=5).numpy(), 48000, subtype="PCM_16")
    out["flac"] = p
    return out


@pytest.mark.parametrize("key", [k[:2] for k in FILES] + ["flac"], ids=str)
@pytest.mark.parametrize("mono", ["first", "mean"])
def test_file_waveform_equals_the_whole_file(files, key, mono):
    path = files[key]
    want = _whole(path, mono)
    for block_frames in (1000, 4097, 1 << 16):
        stream = FileWaveform(path, mono=mono, block_frames=block_frames).check()
        assert stream.n_samples == want.shape[1]
        assert torch.equal(stream.read(), want)
        assert torch.equal(stream.read(12345), want[:, :12345])
        assert all(b.shape[0] == 1 and b.dtype == torch.float32 for b in stream)
    assert torch.equal(load_waveform(path, mono=mono)[0], want)
    blocks = AudioFileBlocks(path, block_frames=777)
    assert torch.equal(torch.cat(list(blocks), 1), read_audio_file(path, mono=None)[0])


def _message(fn) -> str:
    with pytest.raises(AudioInputError) as e:
        fn()
    return str(e.value)


def test_file_errors_read_as_before(tmp_path, rt_tiny):
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0, 2), np.float32), 48000, subtype="FLOAT")
    late_nan = tmp_path / "late_nan.wav"
    x = _signal((10000, 2)).numpy()
    x[9000, 1], x[9500, 0], x[9999, 1] = np.nan, np.inf, np.nan
    sf.write(late_nan, x, 48000, subtype="FLOAT")
    text = tmp_path / "text.wav"
    text.write_text("not audio at all")
    for path in (empty, late_nan, text, tmp_path / "missing.wav", tmp_path):
        want = _message(lambda: read_audio_file(path))
        assert _message(lambda: FileWaveform(path, block_frames=1000).check()) == want
        assert _message(lambda: FileWaveform(path, block_frames=1000).read()) == want
        assert _message(lambda: load_waveform(path)) == want
        assert _message(lambda: api.compress(path, rt_tiny)) == want
    assert "3 non-finite samples (2 NaN, 1 +/-Inf)" in _message(lambda: FileWaveform(late_nan).check())
    # a bad sample past a cut still rejects the file, as the whole-file read did
    assert "non-finite" in _message(lambda: FileWaveform(late_nan, block_frames=1000).read(100))
    rate = tmp_path / "rate.wav"
    sf.write(rate, np.zeros((100, 1), np.float32), 44100)
    assert "has sample rate 44100 Hz, but 16000 Hz was given" in _message(
        lambda: FileWaveform(rate, sample_rate=16000))
    with pytest.raises(ValueError, match="channel policy"):
        FileWaveform(rate, mono=None)


def test_eval_reference_is_the_cut_of_the_whole_file(files):
    path = files[(48000, 2)]
    clip = Clip(path=path, rel=path.name, cls="other")
    whole = _whole(path, "first")[0].numpy().astype(np.float64)
    assert np.array_equal(_load_reference(clip, 1.0), whole[:SR])
    assert np.array_equal(_load_reference(clip, 0), whole)
    assert np.array_equal(_load_reference(clip, 60.0), whole)


# -- encode: tokens and .scrt bytes --------------------------------------------------------------------
@pytest.fixture(scope="module")
def speech_codec():
    return api.load_model()  # the shipped default: the speech route


@pytest.mark.parametrize("codec_name", ["speech_codec", "rt_tiny"])
@pytest.mark.parametrize("key", [(48000, 2), (44100, 1)], ids=str)
def test_compress_a_file_equals_compress_of_the_whole_wave(request, files, codec_name, key):
    codec = request.getfixturevalue(codec_name)
    path = files[key]
    for mono in ("first", "mean"):
        want = api.compress(_whole(path, mono), codec, mono=mono)
        assert api.compress(path, codec, mono=mono) == want
        assert api.compress(FileWaveform(path, mono=mono, block_frames=3001), codec) == want
    _, tokens, _ = read_scrt(io.BytesIO(want))
    assert np.array_equal(tokens, codec.encode(_whole(path, "mean"))[0].numpy())


def test_cli_encode_and_roundtrip_stream_the_file(files, speech_codec, tmp_path, capsys):
    path = files[(48000, 2)]
    model = str(api.DEFAULT_MODEL)
    out = tmp_path / "x.scrt"
    assert cli.main(["encode", str(path), str(out), "--model", model, "-q"]) == 0
    assert out.read_bytes() == api.compress(_whole(path, "first"), speech_codec)
    wav = tmp_path / "x.wav"
    assert cli.main(["decode", str(out), str(wav), "--model", model, "-q"]) == 0
    rt = tmp_path / "rt.wav"
    assert cli.main(["roundtrip", str(path), str(rt), "--model", model, "-q"]) == 0
    assert rt.read_bytes() == wav.read_bytes()
    capsys.readouterr()


@pytest.mark.slow
def test_three_minutes_at_48k_stereo_equal_the_whole_file_path(speech_codec, tmp_path):
    """Real length: 3 min of 48 kHz stereo, encoded and decoded by the CLI, against the whole-file
    encode and the in-memory decode of the same tokens."""
    path = tmp_path / "long.wav"
    rng = np.random.default_rng(7)
    with sf.SoundFile(str(path), "w", samplerate=48000, channels=2, subtype="PCM_16") as f:
        for start in range(0, 180 * 48000, 480000):
            t = (start + np.arange(480000)) / 48000
            voice = np.sin(2 * np.pi * 150 * t + 3 * np.sin(2 * np.pi * 0.5 * t)) * np.clip(np.sin(8 * t), 0, 1)
            f.write(np.stack([0.3 * voice, 0.01 * rng.standard_normal(len(t))], 1).astype(np.float32))
    model = str(api.DEFAULT_MODEL)
    scrt, wav = tmp_path / "long.scrt", tmp_path / "long_dec.wav"
    assert cli.main(["encode", str(path), str(scrt), "--model", model, "-q"]) == 0
    wave = _whole(path, "first")
    assert scrt.read_bytes() == api.compress(wave, speech_codec)
    assert cli.main(["decode", str(scrt), str(wav), "--model", model, "-q", "--float"]) == 0
    decoded, rate = sf.read(str(wav), dtype="float32")
    _, tokens, _ = read_scrt(scrt)
    want = speech_codec.decode(torch.from_numpy(tokens)[None], n_samples=wave.shape[1])[0, 0].numpy()
    assert rate == SR and decoded.shape == want.shape
    np.testing.assert_array_equal(decoded, want)
