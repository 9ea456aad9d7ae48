"""The speech route (``sp-*`` presets): its pieces against float64 twins and brute force, the
streamed == offline guarantee, the bitstream with composite acoustic ids, checkpoints, and
exact resumption of its training."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from conftest import decode_in_pieces, write_tiny_streams

from semanticodec_rt.codec import SemantiCodec
from semanticodec_rt.config import PRESETS, CodecConfig
from semanticodec_rt.decoder.speech import pitch
from semanticodec_rt.encoder.causal_vit import CausalViT
from semanticodec_rt.encoder.rvq import ResidualVQ, compose_ids, split_ids
from semanticodec_rt.encoder.xcorr import n_frames, pitch_xcorr, reference_xcorr

PRESET = "sp-small-r50"


@pytest.fixture(scope="module")
def codec() -> SemantiCodec:
    return SemantiCodec.random(PRESETS[PRESET], seed=3)


def _voiced(n: int, f0: float = 143.0, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / 16000
    return (0.3 * torch.sin(2 * np.pi * f0 * t) + 0.05 * torch.randn(n, generator=g)).float()


# -- pieces ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [0, 399, 400, 401, 559, 560, 1777, 4003])
def test_xcorr_matches_float64_loop(n):
    x = _voiced(n).double()
    got = pitch_xcorr(x[None])[0].numpy()
    ref = reference_xcorr(x.numpy())
    assert got.shape == (n_frames(n), 224) == ref.shape
    np.testing.assert_allclose(got, ref, atol=1e-9)


def test_xcorr_finds_the_period_and_streams():
    x = _voiced(6400, f0=160.0)[None].double()  # period 100 samples
    r = pitch_xcorr(x)[0]
    lag = r[4:].argmax(-1) + 32  # a sinusoid matches itself at every multiple of its period
    assert ((lag - 100 * (lag / 100).round()).abs() <= 1).all()
    assert r[4:, 100 - 32].min() > 0.8
    # a later piece with its history gives the frames of the whole signal from there on
    cut = 160 * 13
    part = pitch_xcorr(x[:, cut:], history=x[:, cut - 256 : cut])[0]
    torch.testing.assert_close(part, r[13 : 13 + len(part)], atol=1e-9, rtol=0)


@pytest.mark.parametrize("length,context", [(1, 3), (7, 3), (23, 5), (40, 15)])
def test_causal_vit_step_equals_forward(length, context):
    torch.manual_seed(length)
    vit = CausalViT(12, 16, depth=3, heads=2, context=context).double().eval()
    with torch.no_grad():
        for p in vit.parameters():  # the distance bias too, so it is exercised
            p.add_(torch.randn_like(p) * 0.1)
        x = torch.randn(2, length, 12, dtype=torch.float64)
        full = vit(x)
        caches, steps = None, []
        for u in range(length):
            y, caches = vit.step(x[:, u], caches)
            steps.append(y)
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-12, rtol=0)
    # causal: the future does not change the past
    with torch.no_grad():
        x2 = x.clone()
        x2[:, -1] += 1.0
        torch.testing.assert_close(vit(x2)[:, :-1], full[:, :-1], atol=1e-12, rtol=0)


def test_rvq_ids_and_greedy_quantisation():
    torch.manual_seed(0)
    vq = ResidualVQ(8, stages=3, bits=5)
    x = torch.randn(50, 8)
    ids = vq.quantize(x)
    assert ids.shape == (50, 3) and ids.min() >= 0 and ids.max() < 32
    # stage 0 is the brute-force nearest codeword
    d = torch.cdist(x.double(), vq.embed[0].double())
    assert torch.equal(ids[:, 0], d.argmin(-1))
    comp = compose_ids(ids, 5)
    assert comp.max() < 1 << 15
    assert torch.equal(split_ids(comp, 3, 5), ids)
    big = torch.tensor([[1023, 0, 512, 1023]])
    assert compose_ids(big, 10).item() == 1023 + (512 << 20) + (1023 << 30)
    # more stages never leave a larger residual on average
    errs = [(x - sum(vq.embed[s][ids[:, s]] for s in range(k))).pow(2).sum(-1).mean() for k in (1, 2, 3)]
    assert errs[0] >= errs[1] >= errs[2]


def test_rvq_training_restarts_dead_codes():
    torch.manual_seed(1)
    vq = ResidualVQ(4, stages=2, bits=4, decay=0.5).train()
    x = torch.randn(256, 4) * 3 + 10  # far from every initial codeword
    for _ in range(20):
        q, ids, commit = vq(x)
    assert torch.isfinite(vq.embed).all()
    assert len(ids[:, 0].unique()) > 8  # restarted codes are in use
    assert commit.item() < 1.0


def test_pitch_bins_roundtrip_and_no_octave_averaging():
    f18 = torch.linspace(-1.49, 1.49, 301)
    b = pitch.f18_to_bin(f18, 192)
    assert b.min() >= 0 and b.max() <= 191
    onehot = torch.full((301, 192), -30.0)
    onehot[torch.arange(301), b] = 0.0
    assert (pitch.decode_pitch(onehot) - f18).abs().max() <= pitch.bin_width(192) / 2 + 1e-6
    # two modes an octave apart (f18 differs by 1): the decoder picks one, never the middle
    logits = torch.full((192,), -30.0)
    lo, hi = pitch.f18_to_bin(torch.tensor(-0.5), 192), pitch.f18_to_bin(torch.tensor(0.5), 192)
    logits[lo], logits[hi] = 0.1, 0.0
    got = pitch.decode_pitch(logits).item()
    assert abs(got - (-0.5)) < pitch.bin_width(192)


# -- the codec -----------------------------------------------------------------------------------
def test_preset_layout():
    cfg = PRESETS[PRESET]
    assert CodecConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.acoustic.codebook_size == 1 << 40 and cfg.token_rate == 50
    assert 25 * (12 + 40) == 1300  # positions/s x bits: the payload rate the preset is sized for
    assert "speech" not in PRESETS["rt-small-r100"].to_dict()  # older configs keep their sha


@pytest.mark.parametrize("n", [1, 639, 640, 641, 4321])
def test_encode_stream_equals_offline(codec, n):
    x = torch.stack([_voiced(n, seed=1), _voiced(n, f0=97.0, seed=2)])
    ref = codec.encode(x)
    assert ref.shape == (2, codec.windowing.frames_for_samples(n), 2)
    assert ref[..., 0].max() < 4096 and ref[..., 1].max() < 1 << 40 and ref.min() >= 0
    rng = random.Random(n)
    enc = codec.stream_encoder(batch_size=2)
    out, i = [], 0
    while i < n:
        k = rng.randint(1, 1500)
        out.append(enc.push(x[:, i : i + k]))
        i += k
    out.append(enc.flush())
    assert torch.equal(torch.cat(out, 1), ref)


def test_decode_stream_equals_offline_and_options(codec):
    x = torch.stack([_voiced(5000, seed=4), _voiced(5000, f0=210.0, seed=5)])
    tokens = codec.encode(x)
    ref = codec.decode(tokens, seed=7)
    assert ref.shape == (2, 1, tokens.shape[1] * 640)
    assert torch.equal(decode_in_pieces(codec, tokens, seed=7), ref)
    assert torch.equal(codec.decode(tokens, seed=7), ref)  # reproducible
    assert not torch.equal(codec.decode(tokens, seed=8), ref)  # the flow's noise is seeded
    reg = codec.decode(tokens, steps=0, seed=7)
    assert torch.equal(reg, codec.decode(tokens, steps=0, seed=8))  # regression only: no noise
    assert codec.decode(tokens, seed=7, n_samples=5000).shape[-1] == 5000
    assert codec.decoder_feature(tokens).shape == (2, tokens.shape[1], 192 + 64)  # centroid || code


def test_bitstream_roundtrip_and_file_rate(codec):
    import semanticodec_rt as sc
    from semanticodec_rt.bitstream import read_scrt

    x = _voiced(160000, seed=6)
    blob = sc.compress(x, model=codec)
    tokens = codec.encode(x)[0]
    assert np.array_equal(read_scrt(blob)[1], tokens.numpy())
    payload_bps = 25 * 52
    assert len(blob) * 8 / 10.0 <= 1.1 * payload_bps


def test_checkpoint_roundtrip(codec, tmp_path):
    from semanticodec_rt.weights import checkpoint

    path = tmp_path / "sp.safetensors"
    checkpoint.save(codec, path)
    back = checkpoint.load(path)
    back.decoder.attach_vocoder(codec.decoder.vocoder)  # the random model's vocoder, not the shipped one
    x = _voiced(3000, seed=9)[None]
    assert torch.equal(back.encode(x), codec.encode(x))
    assert torch.equal(back.decode(codec.encode(x)), codec.decode(codec.encode(x)))
    assert not any(k.startswith("decoder.vocoder") for k in checkpoint.codec_tensors(codec))


# -- training ------------------------------------------------------------------------------------
def _tiny_streams(folder, seconds: float = 12.0):
    write_tiny_streams(folder, (_voiced(int(seconds * 16000), seed=11).numpy() * 20000).astype(np.int16))


@pytest.mark.parametrize("stage", ["semantic", "codec", "flow"])
def test_training_resumes_exactly(tmp_path, stage):
    from semanticodec_rt.lab.train import speech_loop

    _tiny_streams(tmp_path)
    kw = dict(steps=4, batch=2, units=6, ckpt_every=2, log_every=2, valid_every=1000, log=lambda *a: None)

    def fresh():
        c = SemantiCodec.random(PRESETS[PRESET], seed=0)
        speech_loop.set_feature_stats(c, json.loads((tmp_path / "stats.json").read_text()))
        return c

    straight = fresh()
    speech_loop.train_stage(straight, stage, tmp_path, tmp_path / "a", **kw)
    first = fresh()
    speech_loop.save_model(first, tmp_path / "b")
    speech_loop.train_stage(first, stage, tmp_path, tmp_path / "b", **{**kw, "steps": 2})
    resumed = fresh()
    assert speech_loop.load_model_state(resumed, tmp_path / "b")
    out = speech_loop.train_stage(resumed, stage, tmp_path, tmp_path / "b", **kw)
    assert out["step"] == 4
    a, b = straight.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys()
    changed = [k for k in a if not torch.equal(a[k], fresh().state_dict()[k])]
    assert changed, "training changed nothing"
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_missing_positions_repeat_the_previous_one(codec):
    tokens = codec.encode(_voiced(6400, seed=12)[None])
    missing = torch.zeros(1, tokens.shape[1], dtype=torch.bool)
    missing[0, [3, 4, 7]] = True
    garbled = tokens.clone()
    garbled[0, [3, 4, 7]] = 0  # the ids of a lost position are ignored
    held = tokens.clone()
    held[0, 3] = held[0, 2]
    held[0, 4] = held[0, 2]
    held[0, 7] = held[0, 6]
    dec = codec.stream_decoder(seed=1)
    got = torch.cat([dec.push(garbled, missing), dec.flush()], -1)
    assert torch.equal(got, codec.decode(held, seed=1))


@pytest.mark.heavy
def test_voice_link_carries_the_speech_route(codec, tmp_path):
    """Over 127.0.0.1, lossless: the receiver's audio is the offline decode of the offline ids
    (40-bit acoustic ids in every packet, HELLO v2 with the 2^40 vocab)."""
    import soundfile as sf

    from semanticodec_rt.link.loopback import run_loopback
    from semanticodec_rt.link.sinks import WavSink

    wave = _voiced(32000, seed=13).numpy()
    out = tmp_path / "heard.wav"
    sent, got, _ = run_loopback(codec, wave, min_delay=0.3, sink=WavSink(out, 16000, 32000, use_float=True))
    assert got["lost"] == 0 and sent["frames_sent"] == 50
    heard, _ = sf.read(str(out), dtype="float32")
    offline = codec.decode(codec.encode(torch.from_numpy(wave)[None]), n_samples=32000)[0, 0].numpy()
    np.testing.assert_array_equal(heard, offline)


def test_live_processor_runs_the_speech_route(codec):
    from semanticodec_rt.live.processors import CodecProcessor

    proc = CodecProcessor(codec)
    assert proc.unit == 640 and proc.algorithmic_latency_ms == pytest.approx(95.0)
    wave = _voiced(12800, seed=14).numpy()
    out = [proc.process(wave[i : i + 640]) for i in range(0, len(wave), 640)]
    # one position of lookahead held back, the rest out as soon as each position is in
    assert sum(len(o) for o in out) == len(wave) - 2 * 640


@pytest.mark.heavy
def test_feature_streams_of_a_small_corpus(tmp_path):
    """`data features` on a 3-clip corpus: one stream per split, the opus analysis of that very
    stream (row r = samples from 160 r), levels in range, test clips never read."""
    import soundfile as sf
    from conftest import unavailable

    from semanticodec_rt.lab.data import DataError, feature_stream, opus_source
    from semanticodec_rt.lab.data import manifest as mf

    try:
        opus_source.tools()
    except DataError as e:
        unavailable(f"the opus 1.5.2 source build is unavailable: {e}")
    corpus = tmp_path / "corpus"
    entries = []
    for i, (split, cls, secs) in enumerate([("train", "speech", 1.5), ("train", "sfx", 0.7),
                                            ("valid", "speech", 1.0), ("test", "speech", 1.0)]):
        rel = f"{split}/{cls}/pkg/c{i}.flac"
        (corpus / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(corpus / rel), _voiced(int(secs * 16000), f0=120.0 + 30 * i, seed=i).numpy() * 0.5, 16000)
        entries.append(mf.make_entry(path=rel, cls=cls, pkg="pkg", licence="x", src=f"/s/{i}", orig_sr=16000,
                                     n_samples=int(secs * 16000), split=split, group=f"g{i}"))
    mf.write(corpus / "manifest.jsonl", entries)
    stats = feature_stream.build_streams(corpus, tmp_path / "streams", seed=1)
    out = tmp_path / "streams"
    assert set(stats["summary"]) == {"train", "valid"}
    assert stats["summary"]["train"]["clips"] == 2 and stats["summary"]["valid"]["clips"] == 1
    pcm = np.load(out / "train.pcm.npy")
    feat = np.load(out / "train.feat.npy")
    assert pcm.dtype == np.int16 and feat.shape == (len(pcm) // 160, 20)
    np.testing.assert_array_equal(feat, opus_source.fargan_features(pcm)[:, :20])
    clips = [json.loads(line) for line in (out / "train.clips.jsonl").read_text().splitlines()]
    for c in clips:
        x = pcm[c["start"] : c["start"] + c["n"]].astype(np.float64) / 32767
        level = feature_stream.active_rms_db(x)
        assert feature_stream.LEVEL_DBFS[0] - 1 <= level <= feature_stream.LEVEL_DBFS[1] + 1
    assert not any("test/" in c["path"] for c in clips)
    assert len(stats["mean"]) == 20 and stats["silence"][0] < stats["mean"][0]


def test_rvq_is_float32_under_bf16_autocast():
    torch.manual_seed(2)
    vq = ResidualVQ(8, stages=2, bits=9).train()
    lin = torch.nn.Linear(8, 8)
    x = torch.randn(2048, 8) * 0.3  # many points among 512 close codewords: bf16 distances would tie
    before = vq.embed[0].clone()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = lin(x)
        q, ids, commit = vq(h)
    assert h.dtype == torch.bfloat16  # what the RVQ is handed under autocast
    assert q.dtype == torch.float32 and vq.embed.dtype == torch.float32 and commit.dtype == torch.float32
    # the choice is the float64 nearest codeword of the (bf16-rounded) input, not a bf16 distance's
    assert torch.equal(ids[:, 0], torch.cdist(h.double(), before.double()).argmin(-1))


def test_zero_steps_is_for_the_speech_route_only(codec):
    from semanticodec_rt.config import SamplerError

    rt = SemantiCodec.random(PRESETS["rt-tiny-r100"])
    tokens = rt.encode(torch.zeros(1, 2560))
    with pytest.raises(SamplerError, match="at least 1 step"):
        rt.decode(tokens, steps=0)
    with pytest.raises(SamplerError):
        rt.stream_decoder(steps=0)
    assert codec.windowing.min_steps == 0 and codec.sampler(0).steps == 0


@pytest.mark.train
def test_train_speech_cli_runs_the_recipe_and_exports(tmp_path, capsys):
    """`train speech` with a tiny recipe on a tiny stream: every stage, then a second call that
    has nothing left to do, `train export`, and the exported model coding a file."""
    from semanticodec_rt import cli
    from semanticodec_rt.lab.train import speech_run
    from semanticodec_rt.weights import checkpoint

    data, run, model = tmp_path / "streams", tmp_path / "run", tmp_path / "sp.safetensors"
    data.mkdir()
    _tiny_streams(data)
    sets = [f"--set={kv}" for kv in ("semantic_steps=3", "codec_steps=3", "flow_steps=2", "batch=2", "units=6",
                                      "kmeans_positions=200", "kmeans_iters=2", "precision=bf16")]
    assert cli.main(["train", "speech", "--data", data, "--out", run, *sets, "--threads", "1"]) == 0
    assert speech_run.progress(run) == ["semantic 3/3", "kmeans done", "codec 3/3", "flow 2/2"]
    record = json.loads((run / "recipe.json").read_text())
    assert set(record["cpu_s"]) >= {"semantic", "kmeans", "codec", "flow"}
    assert json.loads((run / "codec" / "state.json").read_text())["precision"] == "bf16"
    before = (run / "model.safetensors").read_bytes()
    assert cli.main(["train", "speech", "--data", data, "--out", run, *sets, "-q"]) == 0  # all done
    assert (run / "model.safetensors").read_bytes() == before
    assert cli.main(["train", "speech", "--data", data, "--out", run, "--set", "bogus=1"]) == 2
    # packed as float16 (what the repository keeps) and resumed from the pack, one codec step more
    from semanticodec_rt.lab.train.speech_pack import pack

    index = pack(run, tmp_path / "pack")
    assert "semantic/state.safetensors" not in index["files"]  # frozen by the codebook
    more = [s.replace("codec_steps=3", "codec_steps=4") for s in sets]
    assert cli.main(["train", "speech", "--data", data, "--out", tmp_path / "run2", "--from-pack", tmp_path / "pack",
                     *more, "-q"]) == 0
    assert speech_run.progress(tmp_path / "run2") == ["semantic 3/3", "kmeans done", "codec 4/4", "flow 2/2"]
    assert cli.main(["train", "speech", "--data", data, "--out", run, "--from-pack", tmp_path / "pack", "-q"]) == 2
    assert cli.main(["train", "export", "--out", run, "--model-out", model, "-q"]) == 0
    meta = checkpoint.read_metadata(model)
    assert meta["storage"] == "float16" and "opus" in meta["user.fargan"] and "semantic" in meta["user.cpu_s"]
    codec = checkpoint.load(model)
    assert codec.cfg.speech is not None and codec.decoder.vocoder is not None
    wav = tmp_path / "in.wav"
    import soundfile as sf

    sf.write(str(wav), _voiced(8000, seed=3).numpy(), 16000)
    assert cli.main(["roundtrip", wav, tmp_path / "out.wav", "--model", model, "--steps", "1", "-q"]) == 0
    out, sr = sf.read(str(tmp_path / "out.wav"))
    assert sr == 16000 and len(out) == 8000 and np.isfinite(out).all()


def test_nonfinite_weights_and_samples_never_become_sound(codec, tmp_path):
    """A checkpoint with a NaN weight is refused; NaN samples reach a WAV or the playback ring
    as silence, counted, never as full scale."""
    import soundfile as sf
    from safetensors.torch import load_file, save_file

    from semanticodec_rt.audio.wav_writer import WavWriter
    from semanticodec_rt.live.streams import PlaybackRing
    from semanticodec_rt.weights import checkpoint

    path = tmp_path / "m.safetensors"
    checkpoint.save(codec, path)
    t = load_file(str(path))
    t["decoder.regressor.head.0.weight"][0, 0] = float("nan")
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    save_file(t, str(path), metadata=meta)
    with pytest.raises(checkpoint.CheckpointError, match="NaN"):
        checkpoint.load(path, verify=False)
    pcm = np.array([0.5, np.nan, -np.inf, np.inf, -0.25], np.float32)
    for use_float in (False, True):
        wav = tmp_path / f"o{use_float}.wav"
        with WavWriter(wav, use_float) as w:
            w.write(pcm)
        y, _ = sf.read(str(wav), dtype="float32")
        assert w.n_nonfinite == 3 and np.isfinite(y).all()
        np.testing.assert_allclose(y, [0.5, 0, 0, 0, -0.25], atol=1e-4)
    ring = PlaybackRing(16000, capacity_s=0.01)
    ring.write(pcm)
    out = np.full(5, 9.0, np.float32)
    ring.on_output(out, 0.0)
    assert ring.nonfinite == 3 and np.isfinite(out).all() and np.abs(out).max() <= 0.5
