"""The general-audio route: router decisions with hysteresis, fades at a switch, forced routes,
the mel path voiced as the offline iSTFT vocoder voices its rows, a streamed decode equal to the
offline one with the router switching mid-stream, the router's labels and the training recipe."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import decode_in_pieces, write_tiny_streams

from semanticodec_rt.codec import SemantiCodec
from semanticodec_rt.config import PRESETS
from semanticodec_rt.decoder.speech.router import ENTER, LEAVE, RouteState, decide, fade_weights


def test_hysteresis_holds_a_route_between_the_thresholds():
    st = RouteState()
    seq = [0.45, 0.55, 0.65, 0.5, 0.42, 0.38, 0.5, 0.59, 0.61]
    got = [bool(decide(torch.tensor([p]), st, "auto")[0]) for p in seq]
    # starts on the nearer side of 0.5; enters above ENTER, leaves below LEAVE only
    assert got == [False, False, True, True, True, False, False, False, True]
    assert LEAVE < 0.5 < ENTER


def test_forced_routes_ignore_the_router():
    st = RouteState()
    assert not decide(torch.tensor([0.99]), st, "speech")[0]
    assert decide(torch.tensor([0.01]), st, "general")[0]
    with pytest.raises(ValueError, match="route must be"):
        decide(torch.tensor([0.5]), st, "music")


def test_fade_is_linear_and_continues_across_positions():
    st = RouteState()
    w0 = fade_weights(st, torch.tensor([False]), 4, 8)  # stream start: at the target at once
    assert torch.equal(w0, torch.zeros(1, 4))
    w1 = fade_weights(st, torch.tensor([True]), 4, 8)
    w2 = fade_weights(st, torch.tensor([True]), 4, 8)
    w3 = fade_weights(st, torch.tensor([True]), 4, 8)
    whole = torch.cat([w1, w2, w3], 1)[0]
    torch.testing.assert_close(whole[:8], torch.arange(1, 9) / 8.0)
    assert torch.equal(whole[8:], torch.ones(4))
    back = fade_weights(st, torch.tensor([False]), 4, 8)[0]  # a switch back mid-way fades down
    torch.testing.assert_close(back, 1 - torch.arange(1, 5) / 8.0)


@pytest.fixture(scope="module")
def codec() -> SemantiCodec:
    return SemantiCodec.random(PRESETS["sp-small-r50-g"], seed=5)


def _tone_then_noise(n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    t = torch.arange(n) / 16000
    x = 0.3 * torch.sin(2 * np.pi * 150 * t)
    x[n // 3 : 2 * n // 3] = 0.3 * torch.randn(2 * n // 3 - n // 3, generator=g)
    return x.float()


def _switching_router(codec, tokens):
    """Router weights that say "general" exactly where the token features' mean is high."""
    feats = codec.decoder_feature(tokens)[0]  # [U, D]
    r = codec.decoder.router
    score = feats.mean(-1)
    thr = score.median()
    with torch.no_grad():
        for p in r.parameters():
            p.zero_()
        r.inp.weight[0].fill_(1.0 / feats.shape[-1])
        r.inp.bias[0] = -thr
        # GRU with zero recurrent weights: h = (1 - z) * n, z = sigmoid(0) = 0.5, n = tanh(W_in x)
        r.gru.weight_ih_l0[2 * r.gru.hidden_size] = 0.0
        r.gru.weight_ih_l0[2 * r.gru.hidden_size, 0] = 50.0
        r.out.weight[0, 0] = 40.0
    return score > thr


def test_general_route_streams_like_offline_and_switches(codec):
    x = torch.stack([_tone_then_noise(16000), _tone_then_noise(16000).flip(0)])
    tokens = codec.encode(x)
    general = _switching_router(codec, tokens[:1])
    assert 0 < int(general.sum()) < len(general)  # the router does switch inside the file
    codec.decoder.route = "auto"
    ref = codec.decode(tokens, steps=0)
    assert torch.equal(decode_in_pieces(codec, tokens, steps=0), ref)
    try:
        codec.decoder.route = "speech"
        speech = codec.decode(tokens, steps=0)
        codec.decoder.route = "general"
        gen = codec.decode(tokens, steps=0)
    finally:
        codec.decoder.route = "auto"
    assert not torch.equal(ref, speech) and not torch.equal(ref, gen)
    # the router's plan says where the first switch is: item 0 is the speech route's up to that
    # position exactly, and the fade starts within it
    plan = codec.decoder.routes(codec.decoder_feature(tokens))[0]
    first = int(plan.float().argmax())
    assert plan[first] and 0 < first < len(plan) - 1
    cut = slice(0, 640 * first)
    assert torch.equal(ref[0, :, cut], speech[0, :, cut])
    nxt = slice(640 * first, 640 * (first + 1))
    assert not torch.equal(ref[0, :, nxt], speech[0, :, nxt])


def test_general_route_is_the_vocoder_of_the_mel_rows(codec):
    """Forced to the general route, the decoder's audio is the iSTFT vocoder run offline over the
    mel path's rows (after MEL_SHIFT copies of the first row), sample for sample inside the
    signal: the 2-frame shift lines the rows up with the audio and adds no latency (640 samples
    a position)."""
    from semanticodec_rt.decoder.speech_decoder import MEL_SHIFT

    x = _tone_then_noise(9600)[None]
    tokens = codec.encode(x)
    dec = codec.decoder
    try:
        dec.route = "general"
        got = codec.decode(tokens, steps=0)[0, 0]
    finally:
        dec.route = "auto"
    cond = codec.decoder_feature(tokens)
    silent = torch.zeros_like(cond[:, :1]).expand(-1, dec.general.lookahead, -1)
    with torch.no_grad():
        rows, _ = dec.general(torch.cat([cond, silent], 1))  # [1, U, 4, 64]
        mel = rows.flatten(1, 2)
        mel = torch.cat([mel[:, :1].expand(-1, MEL_SHIFT, -1), mel], 1)
        ref = dec.mel_vocoder(mel)[0]
    n = got.shape[0]
    assert n == 9600 and ref.shape[0] >= n
    inner = slice(240, n - 400)
    assert ref[inner].abs().max() > 1e-3
    torch.testing.assert_close(got[inner], ref[inner], atol=1e-5, rtol=1e-4)


def test_route_needs_a_general_model():
    plain = SemantiCodec.random(PRESETS["sp-small-r50"], seed=0)
    with pytest.raises(ValueError, match="no general-audio route"):
        plain.decoder.route = "general"
    plain.decoder.route = "speech"  # always allowed


def test_general_preset_keeps_the_bitrate_and_the_plain_sha():
    g, s = PRESETS["sp-small-r50-g"], PRESETS["sp-small-r50"]
    assert g.speech.general_route and not s.speech.general_route
    assert "general_route" not in s.to_dict()["speech"]  # earlier models keep their sha
    assert (g.token_rate, g.semantic_vocab_size, g.acoustic.codebook_size) == \
        (s.token_rate, s.semantic_vocab_size, s.acoustic.codebook_size)


# -- training -------------------------------------------------------------------------------------
def _tiny_streams(folder, seconds: float = 12.0):
    """Tone (as if speech), noise (as if music), tone: with the clip lists the router learns from."""
    n = int(seconds * 16000)
    write_tiny_streams(folder, (_tone_then_noise(n).numpy() * 20000).astype(np.int16))
    third = n // 3
    clips = [{"start": 0, "n": third, "cls": "speech"}, {"start": third, "n": third, "cls": "music"},
             {"start": 2 * third, "n": n - 2 * third, "cls": "speech"}]
    for split in ("train", "valid"):
        (folder / f"{split}.clips.jsonl").write_text("".join(json.dumps(c) + "\n" for c in clips))


def test_stream_positions_carry_the_class_of_their_clip(tmp_path):
    from semanticodec_rt.lab.train.speech_data import FeatureStream

    _tiny_streams(tmp_path)
    st = FeatureStream(tmp_path, "train")
    third = 12 * 16000 // 3
    centre = np.arange(st.positions) * 640 + 320
    want = np.where((centre >= third) & (centre < 2 * third), 1, 0)
    assert np.array_equal(st.classes, want)
    b = st.batch(3, 10, 0, 0)
    assert b.classes.shape == (3, 10) and set(b.classes.unique().tolist()) <= {0, 1}
    (tmp_path / "train.clips.jsonl").write_text(json.dumps({"start": 6400, "n": 640, "cls": "sfx"}) + "\n")
    gaps = FeatureStream(tmp_path, "train").classes
    assert gaps[10] == 1 and (gaps[:10] == -1).all() and (gaps[11:] == -1).all()


def test_mel_targets_are_the_frames_after_the_shift(tmp_path):
    """Position u's target rows are log-mel frames 4u + shift .. of the stream: the same numbers
    as the log-mel of the whole stream at those frames (away from its ends)."""
    from semanticodec_rt.audio.mel import log_mel
    from semanticodec_rt.lab.train.speech_data import FeatureStream
    from semanticodec_rt.lab.train.speech_stages import mel_targets

    _tiny_streams(tmp_path)
    st = FeatureStream(tmp_path, "train")
    whole = log_mel(torch.from_numpy(np.asarray(st.pcm[: 160 * (len(st.pcm) // 160)], np.float32) / 32767.0)[None])[0]
    p, units = 20, 8
    a, f = st.crop(p, units)
    from semanticodec_rt.lab.train.speech_data import Crops

    t = mel_targets(Crops(torch.from_numpy(a.copy())[None], torch.from_numpy(f.copy())[None]), 4, 2, units - 1)
    assert t.shape == (1, units - 1, 4, 64)
    for u in range(units - 1):
        torch.testing.assert_close(t[0, u], whole[4 * (p + u) + 2 : 4 * (p + u) + 6], atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="need"):  # the crop's last position: its windows reach past it
        mel_targets(Crops(torch.from_numpy(a.copy())[None], torch.from_numpy(f.copy())[None]), 4, 2, units)


def test_general_run_keeps_the_speech_model_and_trains_only_its_parts(tmp_path):
    """Started from an exported speech model and a vocoder: the tokens and the speech path decode
    exactly as before; the mel path's input layer and GRU start as the speech path's, the
    vocoder as the given weights; the three stages change only their own tensors (the frozen RVQ
    does not follow the batches), and resume."""
    from semanticodec_rt.lab.train import general_run, speech_loop, speech_run
    from semanticodec_rt.weights import checkpoint

    _tiny_streams(tmp_path)
    base = SemantiCodec.random(PRESETS["sp-small-r50"], seed=2)
    checkpoint.save(base, tmp_path / "base.safetensors")
    from safetensors.torch import save_file

    from semanticodec_rt.decoder.synthesis.istft_vocoder import ISTFTVocoder

    torch.manual_seed(3)
    voc = {k: v.contiguous() for k, v in ISTFTVocoder().state_dict().items()}
    save_file(voc, str(tmp_path / "voc.safetensors"))
    codec = general_run.start(tmp_path / "base.safetensors", tmp_path / "run", log=lambda *a: None,
                              vocoder=tmp_path / "voc.safetensors")
    assert all(torch.equal(codec.decoder.mel_vocoder.state_dict()[k], v) for k, v in voc.items())
    x = _tone_then_noise(6400)[None]
    tokens = codec.encode(x)
    assert torch.equal(tokens, base.encode(x))
    codec.decoder.route = "speech"
    assert torch.equal(codec.decode(tokens, steps=0), base.decode(tokens, steps=0))
    g, r = codec.decoder.general.state_dict(), codec.decoder.regressor.state_dict()
    shared = [k for k in g if k.startswith(("inp.", "gru."))]
    assert len(shared) == 6 and all(torch.equal(g[k], r[k]) for k in shared)

    before = {k: v.clone() for k, v in codec.state_dict().items()}
    recipe = general_run.GeneralRecipe(general_steps=3, vocoder_steps=2, router_steps=3, batch=2, vocoder_batch=2,
                                       units=6, precision="fp32")
    kw = dict(log=lambda *a: None)
    rec = general_run.run_general(tmp_path / "base.safetensors", tmp_path, tmp_path / "run", recipe, **kw)
    assert set(rec["cpu_s"]) == {"general", "mel_vocoder", "router"}
    trained = speech_run.build_codec(general_run.PRESET)
    assert speech_loop.load_model_state(trained, tmp_path / "run")
    after = trained.state_dict()
    changed = {k.split(".")[1] for k in after if not torch.equal(after[k], before[k])}
    assert changed == {"general", "mel_vocoder", "router"}, changed
    # a second call finds both stages done and changes nothing
    general_run.run_general(tmp_path / "base.safetensors", tmp_path, tmp_path / "run", recipe, **kw)
    again = speech_run.build_codec(general_run.PRESET)
    speech_loop.load_model_state(again, tmp_path / "run")
    assert all(torch.equal(again.state_dict()[k], after[k]) for k in after)
    path, _ = speech_run.export(tmp_path / "run", tmp_path / "g.safetensors", preset=general_run.PRESET)
    assert checkpoint.load(path).cfg.speech.general_route


def test_start_refuses_a_model_of_another_layout(tmp_path):
    from semanticodec_rt.lab.train import general_run
    from semanticodec_rt.weights import checkpoint

    other = SemantiCodec.random(PRESETS["rt-tiny-r25"], seed=0)
    checkpoint.save(other, tmp_path / "o.safetensors")
    with pytest.raises(ValueError, match="not a speech-route model"):
        general_run.start(tmp_path / "o.safetensors", tmp_path / "run", log=lambda *a: None)


def test_cli_route_option(tmp_path, capsys):
    """decode --route forces a route of a general-route model (the output differs from auto) and
    is refused, in one line, for a model without one."""
    import soundfile as sf

    from semanticodec_rt import cli
    from semanticodec_rt.weights import checkpoint

    g = SemantiCodec.random(PRESETS["sp-small-r50-g"], seed=1)
    checkpoint.save(g, tmp_path / "g.safetensors")
    plain = SemantiCodec.random(PRESETS["sp-small-r50"], seed=1)
    checkpoint.save(plain, tmp_path / "p.safetensors")
    sf.write(str(tmp_path / "in.wav"), _tone_then_noise(8000).numpy(), 16000)
    outs = {}
    for route in ("speech", "general"):
        dst = tmp_path / f"{route}.wav"
        rc = cli.main(["roundtrip", str(tmp_path / "in.wav"), str(dst), "--model", str(tmp_path / "g.safetensors"),
                       "--steps", "0", "--route", route, "-q"])
        assert rc == 0
        outs[route] = sf.read(str(dst))[0]
    assert not np.array_equal(outs["speech"], outs["general"])
    capsys.readouterr()
    rc = cli.main(["roundtrip", str(tmp_path / "in.wav"), str(tmp_path / "x.wav"), "--model",
                   str(tmp_path / "p.safetensors"), "--route", "general", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and "no general-audio route" in err[0]


def test_train_general_cli_and_export(tmp_path, capsys):
    from semanticodec_rt import cli
    from semanticodec_rt.weights import checkpoint

    _tiny_streams(tmp_path)
    checkpoint.save(SemantiCodec.random(PRESETS["sp-small-r50"], seed=2), tmp_path / "base.safetensors")
    args = ["train", "general", "--base", str(tmp_path / "base.safetensors"), "--data", str(tmp_path),
            "--out", str(tmp_path / "run"), "--set", "general_steps=2", "--set", "router_steps=2",
            "--set", "vocoder_steps=1", "--set", "vocoder_batch=2",
            "--set", "units=6", "--set", "batch=2", "--set", "precision=fp32"]
    assert cli.main(args) == 0
    assert "CPU-hours" in capsys.readouterr().out
    assert cli.main(["train", "export", "--out", str(tmp_path / "run"), "--model-out", str(tmp_path / "g.safetensors"),
                     "-q"]) == 0
    assert checkpoint.load(tmp_path / "g.safetensors").cfg.speech.general_route
    rc = cli.main([*args[:-2], "--set", "router_step=2"])
    err = capsys.readouterr().err
    assert rc != 0 and "router_steps" in err


def test_general_mix_is_music_and_effects_first(tmp_path):
    """The general mix: a quarter of each music track in excerpts, every effect, and speech
    clips up to 15 % of that; the speech mix keeps all speech and music up to 20 % of it."""
    import soundfile as sf

    from semanticodec_rt.lab.data import feature_stream as fs
    from semanticodec_rt.lab.data import manifest as mf

    entries = []
    for i, (cls, secs) in enumerate([("music", 64.0), ("music", 32.0), ("sfx", 2.0), ("sfx", 3.0)]
                                    + [("speech", 1.5)] * 12):
        rel = f"train/{cls}/c{i}.flac"
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(tmp_path / rel), np.full(int(secs * 16000), 0.1, np.float32), 16000)
        entries.append(mf.make_entry(path=rel, cls=cls, pkg="p", licence="x", src=f"/s/{i}", orig_sr=16000,
                                     n_samples=int(secs * 16000), split="train", group=f"g{i}"))

    def seconds(mix):
        got = {}
        for e, x in fs._pieces(entries, tmp_path, np.random.default_rng(0), mix):
            got[e["cls"]] = got.get(e["cls"], 0.0) + len(x) / 16000
        return got

    g = seconds("general")
    assert g["music"] == pytest.approx(fs.GENERAL_MUSIC_SHARE * 96.0, abs=fs.MUSIC_EXCERPT_S)
    assert g["sfx"] == pytest.approx(5.0)
    assert 0 < g["speech"] <= fs.GENERAL_SPEECH_SHARE * (g["music"] + g["sfx"]) + 1.5
    s = seconds("speech")
    assert s["speech"] == pytest.approx(18.0) and s["music"] <= 2 * fs.MUSIC_EXCERPT_S  # one excerpt per track at least
    with pytest.raises(ValueError, match="mix must be"):
        list(fs._pieces(entries, tmp_path, np.random.default_rng(0), "music"))
