"""The embedded default model: shipped, small, the speech route with its general-audio route,
and what every command loads without --model.

The model is the one of MODEL_CARD.md (``sp-small-r50-g``: tokens -> FARGAN features -> FARGAN
for speech, tokens -> log-mel -> iSTFT vocoder for music and effects, a router between them;
trained weights, float16 storage; FARGAN is the package's asset).  The
round-trip test asks for intelligible speech, not just a signal: the decode of the shipped
English clip must keep STOI >= 0.75 against it (codec2 at 1.4 kbps scores about 0.77 on the
test split) and must beat the decode of the same tokens in shuffled order by far.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import semanticodec_rt as sc
from semanticodec_rt import cli
from semanticodec_rt.audio.load import load_waveform
from semanticodec_rt.bitstream import read_scrt
from semanticodec_rt.cli.common import load_codec
from semanticodec_rt.lab.eval.align import align
from semanticodec_rt.lab.eval.metrics import logmel_distance, stoi
from semanticodec_rt.weights import checkpoint

pytestmark = pytest.mark.cli

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "semanticodec_rt" / "assets" / "default.safetensors"
CLIP = REPO / "examples" / "audio" / "speech_en_dir-instr.flac"
LIMIT_BYTES = 25_000_000  # the shipped default is at most 25 MB, FARGAN included


@pytest.fixture(scope="module")
def default_codec():
    return checkpoint.load(DEFAULT)  # verify=True: the stored sha must match the tensors


def test_default_is_the_shipped_speech_route(default_codec):
    assert Path(sc.DEFAULT_MODEL) == DEFAULT and DEFAULT.exists()
    fargan = REPO / "semanticodec_rt" / "assets" / "fargan.safetensors"
    assert DEFAULT.stat().st_size + fargan.stat().st_size <= LIMIT_BYTES
    meta = checkpoint.read_metadata(DEFAULT)
    assert meta["storage"] == "float16"
    cfg = default_codec.cfg
    assert cfg.name.startswith("sp-small") and cfg.speech is not None and cfg.speech.general_route
    assert default_codec.windowing.name == "speech-units"
    assert cfg.sampler.steps <= 4  # at most 4 flow calls per position
    assert default_codec.windowing.algorithmic_latency_ms <= 200
    # written by examples/make_default_model.py from a `train export` of a speech run
    assert meta["user.source"].endswith(".safetensors") and len(meta["user.source_sha"]) == 16
    # the recipe, its CPU time per stage and the vocoder's provenance travel with the weights
    assert set(json.loads(meta["user.cpu_s"])) >= {"semantic", "kmeans", "codec", "general", "mel_vocoder", "router"}
    assert "opus" in json.loads(meta["user.fargan"])["source_tarball"]
    assert default_codec.decoder.vocoder is not None


def test_commands_without_model_use_the_default(default_codec):
    for command in (["live"], ["link", "recv", "--port", "5004", "--file", "x.wav"]):
        args = cli.build_parser().parse_args(command)
        assert args.model is None
        assert load_codec(args).model_sha == default_codec.model_sha, command


def test_default_round_trip_is_intelligible(default_codec, tmp_path):
    scrt, wav = tmp_path / "clip.scrt", tmp_path / "clip.wav"
    assert cli.main(["encode", str(CLIP), str(scrt), "-q"]) == 0
    assert cli.main(["decode", str(scrt), str(wav), "-q"]) == 0
    header, tokens = read_scrt(scrt)[:2]
    assert header.model == default_codec.model_sha and header.config == default_codec.cfg.name
    ref = load_waveform(CLIP)[0][0].numpy()
    out, sr = sf.read(wav, dtype="float32")
    assert sr == 16000 and len(out) == len(ref) and np.isfinite(out).all()
    assert len(scrt.read_bytes()) * 8 / (len(ref) / 16000) <= 1500  # file rate, bit/s
    r, d, _ = align(ref, out)
    own = stoi(r, d)
    toks = torch.as_tensor(np.asarray(tokens)).reshape(1, -1, 2)
    perm = torch.randperm(toks.shape[1], generator=torch.Generator().manual_seed(0))
    shuffled = default_codec.decode(toks[:, perm], seed=0, n_samples=len(ref))[0, 0].numpy()
    r2, d2, _ = align(ref, shuffled)
    print(f"STOI own {own:.3f}, shuffled {stoi(r2, d2):.3f}; log-mel L1 own {logmel_distance(r, d):.3f}")
    assert own >= 0.75
    assert stoi(r2, d2) < own - 0.2


def test_default_decoder_is_deterministic_per_seed(default_codec):
    audio = load_waveform(CLIP)[0][:, : 16000 * 2]
    toks = default_codec.encode(audio)
    a, b = default_codec.decode(toks, seed=3), default_codec.decode(toks, seed=3)
    assert torch.equal(a, b)


def test_every_stream_writer_names_the_weights(default_codec, tmp_path):
    """Files, live and link describe a stream with one builder (StreamInfo.for_codec): the model is
    named by its weights' sha, never its config's."""
    import io

    from semanticodec_rt.link import link_info
    from semanticodec_rt.live import CodecProcessor

    sha = default_codec.model_sha
    assert sha != default_codec.cfg.sha()
    assert CodecProcessor(default_codec).info.model == sha
    assert link_info(default_codec).model == sha
    data = sc.compress(torch.zeros(1, 4000), default_codec)
    assert read_scrt(io.BytesIO(data))[0].model == sha


MUSIC = REPO / "examples" / "audio" / "music_0ad_sunrise.flac"


def test_default_routes_speech_music_speech(default_codec):
    """The routing test of a speech -> music -> speech file (the shipped clips, 3 + 4 + 3 s): the
    router puts the music on the general route and the speech on the speech route (a settling
    margin of 20 positions, 800 ms, after each content boundary: the router's GRU needs that
    much of a soft music entry to leave speech), switches only near the boundaries, and no switch clicks: the largest sample step within one position of a switch
    stays below the 99.9th percentile of the steps of the whole decode."""
    speech = load_waveform(CLIP)[0][0]
    music = load_waveform(MUSIC)[0][0]
    parts = [speech[: 3 * 16000], music[: 4 * 16000], speech[3 * 16000 : 6 * 16000]]
    x = torch.cat(parts)[None]
    tokens = default_codec.encode(x)
    routes = default_codec.decoder.routes(default_codec.decoder_feature(tokens))[0].numpy()
    b1, b2 = 3 * 25, 7 * 25  # content boundaries in positions
    settle = 20
    assert routes[b1 + settle : b2].mean() >= 0.9  # music -> general
    assert not routes[:b1].any() and routes[b2 + settle :].mean() <= 0.05  # speech -> speech
    switches = np.flatnonzero(routes[1:] != routes[:-1]) + 1
    assert 2 <= len(switches) <= 4
    assert all(min(abs(u - b1), abs(u - b2)) <= settle for u in switches)
    y = default_codec.decode(tokens, seed=0, n_samples=x.shape[1])[0, 0].numpy()
    step = np.abs(np.diff(y))
    ref = np.percentile(step, 99.9)
    for u in switches:
        near = step[(u - 1) * 640 : (u + 1) * 640]
        assert near.max() < ref, (u, near.max() / ref)
