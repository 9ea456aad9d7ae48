"""``semanticodec_rt.lab.eval``: metrics, alignment, baselines and ``semanticodec-rt eval``, on real speech.

The reference is a real recording (Debian asterisk-core-sounds-en-wav, CC-BY-SA-3.0, installed by
.ci/run): 8 kHz, resampled to 16 kHz with the project's resampler.  The tests check that the
metrics order things the way they must (identity > 3.5 kHz low-pass > white noise; codec2 700C <
codec2 3200 < opus 12k), that alignment finds known delays, that bitrates come from the
bitstream bytes, and that the command writes every report file, in both coding and
``--decoded`` modes.  The model is rt-tiny with random weights (its audio is noise): the end-to-
end test checks the plumbing, not our quality.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import require_file, require_program
from scipy.signal import butter, sosfiltfilt

from semanticodec_rt import cli
from semanticodec_rt.audio.resample import resample
from semanticodec_rt.lab.eval import EvalError
from semanticodec_rt.lab.eval import align as A
from semanticodec_rt.lab.eval import baselines as B
from semanticodec_rt.lab.eval import metrics as M
from semanticodec_rt.lab.eval.run import find_clips

pytestmark = pytest.mark.eval

SR = 16000
REAL_CLIP = Path("/usr/share/asterisk/sounds/en_US_f_Allison/demo-congrats.wav")
# The clip's first sentence (0-7.5 s), as spoken.
FIRST_SENTENCE = "Congratulations. You have successfully installed and executed the Asterisk open source P B X."
SANITY_S = 16.4  # first two sentences; ends in a pause
# The programs each baseline codec runs, and the Debian packages that install them.
BASELINE_PROGRAMS = {"codec2": [("sox", "sox"), ("c2enc", "codec2"), ("c2dec", "codec2")],
                     "opus": [("opusenc", "opus-tools"), ("opusdec", "opus-tools")]}


def need_baselines(*specs: str) -> None:
    """Skip (fail in CI) unless the programs of the baselines ``specs`` are installed."""
    for spec in specs:
        for prog, package in BASELINE_PROGRAMS[spec.split(":")[0]]:
            require_program(prog, package)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """The real recording at 16 kHz (float64)."""
    require_file(REAL_CLIP, "asterisk-core-sounds-en-wav")
    x, sr = sf.read(str(REAL_CLIP), dtype="float32")
    assert sr == 8000
    return resample(torch.from_numpy(x)[None], sr, SR)[0].numpy().astype(np.float64)


@pytest.fixture(scope="module")
def sanity(speech):
    """Identity / 3.5 kHz low-pass / white noise of equal RMS, scored by every signal metric."""
    ref = speech[: int(SANITY_S * SR)]
    lowpass = sosfiltfilt(butter(8, 3500, fs=SR, output="sos"), ref)  # zero phase: no delay
    noise = np.random.default_rng(0).standard_normal(len(ref)) * np.sqrt(np.mean(ref**2))
    names = ["stoi", "estoi", "pesq_wb", "visqol", "visqol_audio", "logmel", "si_sdr"]
    scores = {}
    for label, deg in (("identity", ref), ("lowpass", lowpass), ("noise", noise)):
        values, notes = M.score(ref, deg, SR, names)
        assert not notes, f"{label}: NaN scores {notes} (unavailable: {M.unavailable()})"
        scores[label] = values
    return scores


@pytest.mark.heavy
def test_identity_scores_perfect(sanity):
    s = sanity["identity"]
    assert s["stoi"] > 0.999 and s["estoi"] > 0.999
    assert s["pesq_wb"] > 4.5  # the scale tops out at 4.64
    assert s["visqol"] > 4.5
    assert s["visqol_audio"] > 4.5  # the audio mode's top is ~4.73
    assert s["logmel"] == pytest.approx(0.0, abs=1e-9)
    assert s["si_sdr"] > 100


@pytest.mark.heavy
@pytest.mark.parametrize("metric", ["stoi", "estoi", "pesq_wb", "visqol", "visqol_audio", "logmel", "si_sdr"])
def test_lowpass_lower_noise_lowest(sanity, metric):
    sign = 1 if M.INFO[metric].higher_is_better else -1
    ident, low, noise = (sign * sanity[k][metric] for k in ("identity", "lowpass", "noise"))
    assert ident > low > noise, f"{metric}: identity {ident}, low-pass {low}, noise {noise}"


def test_visqol_audio_is_opt_in():
    """The slow audio mode runs only when named (or with "all"); its settings say 48 kHz."""
    assert "visqol_audio" not in M.parse_metric_names(None)
    assert "visqol_audio" in M.parse_metric_names("all")
    assert M.parse_metric_names("visqol_audio,stoi") == ["stoi", "visqol_audio"]
    assert M.settings()["visqol_audio"]["sample_rate"] == 48000


@pytest.mark.heavy
def test_visqol_audio_scores_short_clips(speech):
    """A 0.4 s effect still gets a score (padded to 1 s): identity near the top, noise lower."""
    ref = speech[: int(0.4 * SR)]
    noise = np.random.default_rng(1).standard_normal(len(ref)) * np.sqrt(np.mean(ref**2))
    M.clear_failures()
    same, noisy = M.visqol_audio(ref, ref), M.visqol_audio(ref, noise)
    assert not M.last_failures()
    assert same > 4.5 and noisy < same - 0.3


def test_visqol_mapping_is_pinned():
    assert M.VISQOL_SPEECH_MAPPING == "lattice"
    assert M.settings()["visqol"] == {"mode": "speech", "mapping": "lattice", "sample_rate": 16000}


def test_missing_package_gives_nan_with_reason(monkeypatch, speech):
    monkeypatch.setitem(M._unavailable, "pesq_wb", "pesq is not usable (simulated)")
    x = speech[: 2 * SR]
    values, notes = M.score(x, x, SR, ["pesq_wb", "logmel"])
    assert math.isnan(values["pesq_wb"]) and values["logmel"] == 0.0
    assert notes == {"pesq_wb": "pesq is not usable (simulated)"}


@pytest.mark.heavy
def test_wer(speech):
    sentence = speech[: int(7.5 * SR)]
    assert M.word_error_rate("the cat sat", "the cat sat") == 0.0
    assert M.word_error_rate("The cat, sat!", "the bat sat down") == pytest.approx(2 / 3)
    clean = M.wer(sentence, sentence, SR, transcript=FIRST_SENTENCE)
    noise = np.random.default_rng(1).standard_normal(len(sentence)) * sentence.std()
    noisy = M.wer(sentence, noise, SR, transcript=FIRST_SENTENCE)
    assert 0.0 <= clean < 0.9 and noisy >= 0.9, (clean, noisy)
    values, notes = M.score(sentence, sentence, SR, ["wer"])  # no transcript
    assert math.isnan(values["wer"]) and "no transcript" in notes["wer"]


def test_alignment_recovers_known_delay(speech):
    ref = speech[: 8 * SR]
    lowpass = sosfiltfilt(butter(8, 3000, fs=SR, output="sos"), ref)
    for delay in (123, -57, 1000, 0):
        late = A.shift(ref, -delay)  # positive delay: zeros in front
        assert A.estimate_delay(ref, late, SR) == delay
        assert A.estimate_delay(ref, A.shift(lowpass, -delay), SR) == delay
    r, d, lag = A.align(ref, np.concatenate([np.zeros(400), ref * 0.5]), SR)
    assert lag == 400 and len(d) == len(r) == len(ref)
    np.testing.assert_allclose(d, 0.5 * ref, atol=1e-12)
    assert len(A.match_length(ref, 10)) == 10
    assert np.all(A.match_length(ref[:10], 20)[10:] == 0)


@pytest.fixture(scope="module")
def coded(speech):
    """codec2 700C / 3200 / 1400 and opus 12k decodes of the first sentences, with bitrates."""
    ref = speech[: int(SANITY_S * SR)]
    specs = ("codec2:700C", "codec2:3200", "codec2:1400", "opus:12")
    need_baselines(*specs)
    return ref, {spec: B.run_baseline(spec, ref, SR) for spec in specs}


def test_baseline_stoi_order(coded):
    ref, out = coded
    stoi = {}
    for spec in ("codec2:700C", "codec2:3200", "opus:12"):
        y, _ = out[spec]
        r, d, _ = A.align(ref, y, SR)
        stoi[spec] = M.stoi(r, d, SR)
    assert stoi["codec2:700C"] < stoi["codec2:3200"] < stoi["opus:12"], stoi


def test_baseline_bitrates(coded):
    ref, out = coded
    for spec, (y, _) in out.items():
        assert y.dtype == np.float32 and abs(len(y) - len(ref)) < 0.05 * SR
    assert out["codec2:1400"][1] == pytest.approx(1.4, abs=0.01)
    assert out["codec2:3200"][1] == pytest.approx(3.2, abs=0.01)
    assert out["codec2:700C"][1] == pytest.approx(0.8, abs=0.01)  # 28 bits/40 ms padded to 4 bytes
    assert 12.0 < out["opus:12"][1] < 14.0  # Ogg overhead included


def test_baseline_specs(monkeypatch):
    assert B.parse_spec("codec2:700c").name == "codec2:700C"
    assert B.parse_spec("opus:6").name == "opus:6"
    assert [b.name for b in B.parse_specs("codec2:1400, opus:6,codec2:1400")] == ["codec2:1400", "opus:6"]
    assert B.parse_specs("none") == []
    for bad in ("codec2:999", "opus:2", "opus:x", "mp3:8", "codec2"):
        with pytest.raises(EvalError):
            B.parse_spec(bad)
    monkeypatch.setattr(B.shutil, "which", lambda prog: None)
    with pytest.raises(EvalError, match=r"program 'sox' not found \(apt-get install sox\)"):
        B.run_baseline("codec2:1400", np.zeros(SR), SR)
    with pytest.raises(EvalError, match="'opusenc' not found"):
        B.run_baseline("opus:6", np.zeros(SR), SR)


def test_manifest_clips(tmp_path):
    rows = []
    for split, cls, name in [("test", "speech", "a"), ("test", "speech", "b"), ("test", "music", "m"),
                             ("train", "sfx", "s"), ("test", "sfx", "t")]:
        rel = f"{split}/{cls}/pkg/{name}.flac"
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(tmp_path / rel), np.zeros(SR, np.float32), SR, subtype="PCM_16")
        rows.append({"path": rel, "cls": cls, "pkg": "pkg", "split": split, "dur": 1.0,
                     **({"text": "hello world"} if name == "a" else {})})
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    root, clips, kind = find_clips(tmp_path)
    assert kind == "manifest" and root == tmp_path
    assert [c.rel.split("/")[-1] for c in clips] == ["m.flac", "t.flac", "a.flac", "b.flac"]  # path order
    assert clips[2].transcript == "hello world" and clips[3].transcript is None
    _, clips, _ = find_clips(tmp_path / "manifest.jsonl", split="all", classes=["sfx"])
    assert [c.split for c in clips] == ["test", "train"]
    _, clips, _ = find_clips(tmp_path, max_clips=3)  # one per class
    assert sorted(c.cls for c in clips) == ["music", "sfx", "speech"]
    with pytest.raises(EvalError, match="no clips in split"):
        find_clips(tmp_path, split="valid")


# -- the command ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(speech, tmp_path_factory) -> Path:
    """speech/ (2 cuts of the real recording, one with a transcript), music/ and sfx/ (generated)."""
    root = tmp_path_factory.mktemp("eval_ref")
    for d in ("speech", "music", "sfx"):
        (root / d).mkdir()
    sf.write(str(root / "speech" / "congrats.wav"), speech[: int(7.5 * SR)], SR, subtype="PCM_16")
    (root / "speech" / "congrats.txt").write_text(FIRST_SENTENCE + "\n")
    sf.write(str(root / "speech" / "features.flac"), speech[int(7.6 * SR) : int(11 * SR)], SR, subtype="PCM_16")
    t = np.arange(3 * SR) / SR
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.18, 329.63, 440.0))
    music = 0.15 * chord * np.exp(-3 * ((t * 2) % 1))  # plucked chord, twice a second
    sf.write(str(root / "music" / "chords.wav"), music, SR, subtype="PCM_16")
    rng = np.random.default_rng(0)
    sfx = 0.3 * rng.standard_normal(len(t)) * np.exp(-6 * ((t * 1.5) % 1))  # noise bursts
    sfx += 0.2 * np.sin(2 * np.pi * (400 + 1500 * t) * t) * (t > 2)  # a chirp
    sf.write(str(root / "sfx" / "bursts.wav"), sfx, SR, subtype="PCM_16")
    return root


@pytest.fixture(scope="module")
def report(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval_out") / "report"
    need_baselines("codec2:1400")
    code = cli.main(["eval", "--ref", str(tiny), "--baselines", "codec2:1400", "--model", "preset:rt-tiny-r100",
                     "--random-weights-ok", "--steps", "1", "--out", str(out), "--save-audio", "-q"])
    assert code == 0
    return out


@pytest.mark.heavy
def test_eval_end_to_end(report):
    for name in ("clips.csv", "summary.md", "summary.json", "bitrate_quality.png", "spectrogram_1_speech.png",
                 "spectrogram_2_music.png", "spectrogram_3_sfx.png"):
        path = report / name
        assert path.is_file() and path.stat().st_size > 0, name
        if name.endswith(".png"):
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader(open(report / "clips.csv")))
    assert len(rows) == 8 and {r["codec"] for r in rows} == {"semanticodec", "codec2:1400"}
    assert {r["cls"] for r in rows} == {"speech", "music", "sfx"}
    for r in rows:
        assert float(r["logmel"]) >= 0 and r["stoi"] != "" and float(r["kbps"]) > 0
        has_text = r["clip"] == "speech/congrats.wav"
        assert (r["wer"] != "") == has_text and (r["wer_ref"] != "") == has_text
    c2 = [r for r in rows if r["codec"] == "codec2:1400"]
    assert all(float(r["kbps"]) == pytest.approx(1.4, abs=0.01) for r in c2)
    ours = [r for r in rows if r["codec"] == "semanticodec"]
    assert all(float(r["payload_kbps"]) == pytest.approx(1.3) for r in ours)  # rt-tiny-r100 payload

    summary = json.loads((report / "summary.json").read_text())
    meta = summary["meta"]
    assert meta["visqol_mapping"] == "lattice" and meta["metric_settings"]["logmel"]["n_mels"] == 80
    assert meta["model"] == "preset:rt-tiny-r100" and meta["n_clips"] == 4
    assert [c["name"] for c in meta["codecs"]] == ["semanticodec", "codec2:1400"]
    entries = {(e["codec"], e["cls"]): e for e in summary["summary"]}
    assert set(entries) == {(c, k) for c in ("semanticodec", "codec2:1400") for k in ("speech", "music", "sfx", "all")}
    all_c2 = entries[("codec2:1400", "all")]
    assert all_c2["n_clips"] == 4 and all_c2["hours"] == pytest.approx((7.5 + 3.4 + 3 + 3) / 3600, rel=1e-3)
    assert all_c2["metrics"]["stoi"]["n"] == 4 and all_c2["metrics"]["wer"]["n"] == 1
    # codec2 keeps speech intelligible; random weights do not
    assert entries[("codec2:1400", "speech")]["metrics"]["stoi"]["mean"] > \
        entries[("semanticodec", "speech")]["metrics"]["stoi"]["mean"]
    md = (report / "summary.md").read_text()
    assert "lattice" in md and "## speech" in md and "| codec2:1400 |" in md and "![bitrate_quality]" in md
    # the listening page: all 4 clips (up to 3 per class), reference + 2 codecs each, in one file
    assert meta["listening_page"] == "listen.html" and "](listen.html)" in md
    page = (report / "listen.html").read_text()
    assert page.count("<audio ") == 4 * 3 and page.count("<img ") == 1 + 4
    assert "speech/congrats.wav" in page and "music/chords.wav" in page


@pytest.mark.heavy
def test_eval_listening_page_loads_in_chromium(report, tmp_path):
    chromium = require_program("chromium", "chromium")
    dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
                          f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", (report / "listen.html").as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert 'data-check="images 5/5 audio 12/12 failed 0"' in dom.stdout, dom.stderr[-2000:]


@pytest.mark.heavy
def test_eval_decoded_folder(report, tiny, tmp_path):
    saved = report / "audio" / "codec2_1400"
    assert (saved / "speech" / "features.wav").is_file()  # .flac reference, .wav decode: matched by stem
    (saved / "sfx" / "bursts.wav").unlink()  # a missing decode is skipped with a warning
    out = tmp_path / "rescored"
    code = cli.main(["eval", "--ref", str(tiny), "--decoded", str(saved), "--label", "c2-again", "--kbps", "1.4",
                     "--metrics", "stoi,logmel,si_sdr", "--out", str(out), "-q"])
    assert code == 0
    rows = {r["clip"]: r for r in csv.DictReader(open(out / "clips.csv"))}
    assert set(rows) == {"speech/congrats.wav", "speech/features.flac", "music/chords.wav"}
    first = {r["clip"]: r for r in csv.DictReader(open(report / "clips.csv")) if r["codec"] == "codec2:1400"}
    for clip, r in rows.items():
        assert r["codec"] == "c2-again" and float(r["kbps"]) == 1.4
        # the saved decode is the aligned one, stored as 16-bit PCM: same scores
        assert float(r["stoi"]) == pytest.approx(float(first[clip]["stoi"]), abs=0.01)
        assert float(r["logmel"]) == pytest.approx(float(first[clip]["logmel"]), abs=0.05)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["meta"]["codecs"][0]["kind"] == "decoded" and summary["meta"]["model"] is None
    for name in ("summary.md", "bitrate_quality.png", "spectrogram_1_speech.png"):
        assert (out / name).is_file()


def test_eval_errors_are_one_line(tiny, tmp_path, capsys):
    cases = [
        (["--ref", str(tmp_path / "nope"), "--model", "none"], 2, "no such file or folder"),
        (["--ref", str(tiny), "--model", "none", "--baselines", "codec2:999"], 2, "codec2 modes are"),
        (["--ref", str(tiny), "--model", "none", "--baselines", "none"], 2, "nothing to evaluate"),
        (["--ref", str(tiny), "--model", "none", "--metrics", "mos"], 2, "unknown metric"),
        (["--ref", str(tiny), "--model", "none", "--classes", "noise"], 2, "no clips of class noise"),
        (["--ref", str(tiny), "--decoded", str(tmp_path)], 2, "has a decoded file"),
    ]
    for args, code, text in cases:
        capsys.readouterr()
        assert cli.main(["eval", "--out", str(tmp_path / "out"), *args]) == code, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("semanticodec-rt: error:") and text in err[0], (args, err)
    assert cli.main(["eval", "--help"]) == 0
    assert "--decoded" in capsys.readouterr().out


def test_baselines_are_repeatable():
    """Same input, same decode: sox's random dither is off (-D), so scores and alignments repeat."""
    from semanticodec_rt.lab.eval.baselines import run_baseline

    need_baselines("codec2:1400")
    x = 0.3 * np.sin(2 * np.pi * 220 * np.arange(2 * SR) / SR) + 0.01 * np.random.default_rng(0).standard_normal(2 * SR)
    (a, kbps_a), (b, kbps_b) = run_baseline("codec2:1400", x, SR), run_baseline("codec2:1400", x, SR)
    assert isinstance(a, np.ndarray) and a.dtype == np.float32 and isinstance(kbps_a, float)
    assert np.array_equal(a, b) and kbps_a == kbps_b


def test_nolace_spec_parses_and_names_its_build():
    b = B.parse_spec("NoLACE:6")
    assert (b.name, b.nominal_kbps, b.programs) == ("nolace:6", 6.0, ())
    with pytest.raises(EvalError, match="6 to 256"):
        B.parse_spec("nolace:3")


@pytest.mark.heavy
def test_nolace_baseline_runs_the_opus_build_on_speech():
    """Opus 1.5.2 at 6 kbit/s wideband through NoLACE (decoder complexity 7): real decoded speech
    at the stated packet rate, aligned with the input (the 6.5 ms look-ahead removed)."""
    from conftest import unavailable

    from semanticodec_rt.lab.data import DataError, opus_source

    try:
        opus_source.tools()
    except DataError as e:
        unavailable(f"the opus 1.5.2 source build is unavailable (Debian mirror, dpkg-dev, make): {e}")
    clip = Path(__file__).resolve().parents[1] / "examples" / "audio" / "speech_en_dir-instr.flac"
    x, _ = sf.read(str(clip), dtype="float32")
    x = x[16000 : 16000 + 3 * SR]
    y, kbps = B.run_baseline("nolace:6", x)
    assert y.shape == x.shape and y.dtype == np.float32
    assert 5.0 < kbps < 7.0
    assert abs(A.estimate_delay(x, y)) <= 4  # samples (0.25 ms): the 104-sample look-ahead is gone
    from pystoi import stoi

    assert stoi(x, y, SR) > 0.75  # intelligible speech, not noise (the probe measured 0.87)


# -- several rows in one run: step lists, several decoded folders, decoded + model ------------------
ROW_METRICS = "logmel,si_sdr"  # cheap metrics: these tests check rows and labels, not quality


@pytest.fixture
def fake_decode(monkeypatch):
    """The model's real encode (counted) and a stand-in decode that records the ``steps`` it was
    called with and returns seeded noise (random weights decode noise anyway; this is faster)."""
    from semanticodec_rt.codec import SemantiCodec

    calls = {"encode": 0, "steps": []}
    real_encode = SemantiCodec.encode

    def encode(self, *args, **kwargs):
        calls["encode"] += 1
        return real_encode(self, *args, **kwargs)

    def decode(self, tokens, steps=None, cfg_scale=None, *, seed=0, n_samples=None, **kwargs):
        calls["steps"].append(steps)
        g = torch.Generator().manual_seed(1000 + (-1 if steps is None else steps))
        return 0.05 * torch.randn(tokens.shape[0], 1, n_samples, generator=g)

    monkeypatch.setattr(SemantiCodec, "encode", encode)
    monkeypatch.setattr(SemantiCodec, "decode", decode)
    return calls


def _rows(out: Path) -> list[dict]:
    return list(csv.DictReader(open(out / "clips.csv")))


def _meta_codecs(out: Path) -> list[dict]:
    return json.loads((out / "summary.json").read_text())["meta"]["codecs"]


def _model_run(tiny: Path, out: Path, *extra: str) -> int:
    """The speech clips (2 s each) through rt-tiny with random weights; no baselines."""
    return cli.main(["eval", "--ref", str(tiny), "--classes", "speech", "--max-seconds", "2",
                     "--model", "preset:rt-tiny-r100", "--random-weights-ok", "--baselines", "none",
                     "--metrics", ROW_METRICS, "--out", str(out), "-q", *extra])


@pytest.mark.parametrize("steps, labels, counts", [
    ("0,2", ["semanticodec@0steps", "semanticodec@2steps"], [0, 2]),
    ("0", ["semanticodec"], [0]),  # one value: today's label; 0 reaches decode as 0, not "default"
    ("3", ["semanticodec"], [3]),
])
def test_eval_step_list_gives_one_model_row_per_count(tiny, tmp_path, fake_decode, steps, labels, counts):
    out = tmp_path / "report"
    assert _model_run(tiny, out, "--steps", steps) == 0
    assert fake_decode["encode"] == 2  # once per clip, shared by every step count
    assert fake_decode["steps"] == counts * 2  # clip by clip, each count in order
    rows = _rows(out)
    assert len(rows) == 2 * len(labels) and sorted({r["codec"] for r in rows}) == labels
    for clip in ("speech/congrats.wav", "speech/features.flac"):
        mine = [r for r in rows if r["clip"] == clip]
        assert [r["codec"] for r in mine] == labels
        assert len({r["kbps"] for r in mine}) == 1 and float(mine[0]["kbps"]) > 0  # one bitstream
        assert all(float(r["code_s"]) > 0 and r["si_sdr"] != "" for r in mine)
    codecs = _meta_codecs(out)
    assert [(c["name"], c["kind"], c["steps"]) for c in codecs] == [
        (n, "model", k) for n, k in zip(labels, counts)]
    summary = json.loads((out / "summary.json").read_text())["summary"]
    assert {(e["codec"], e["n_clips"]) for e in summary if e["cls"] == "all"} == {(n, 2) for n in labels}
    if len(labels) > 1:  # different noise per step count: the rows are scored separately
        a, b = ([float(r["si_sdr"]) for r in rows if r["codec"] == n] for n in labels)
        assert a != b


def test_eval_default_steps_keep_model_default(tiny, tmp_path, fake_decode):
    assert _model_run(tiny, tmp_path / "report") == 0
    assert fake_decode["steps"] == [None, None]  # the model resolves its own default
    assert {r["codec"] for r in _rows(tmp_path / "report")} == {"semanticodec"}
    assert _meta_codecs(tmp_path / "report")[0]["steps"] == 4  # rt presets' default


def _decoded_folder(tiny: Path, folder: Path, noise: float, skip: tuple = ()) -> Path:
    """A fake codec's output: every reference clip (as .wav) plus white noise of RMS ``noise``."""
    rng = np.random.default_rng(int(noise * 1000))
    for ref in sorted(tiny.rglob("*")):
        rel = ref.relative_to(tiny)
        if ref.suffix not in (".wav", ".flac") or rel.as_posix() in skip:
            continue
        x, sr = sf.read(str(ref), dtype="float64")
        dest = (folder / rel).with_suffix(".wav")
        dest.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(dest), np.clip(x + noise * rng.standard_normal(len(x)), -1, 1), sr, subtype="PCM_16")
    return folder


def test_eval_several_decoded_folders(tiny, tmp_path, capsys):
    clean = _decoded_folder(tiny, tmp_path / "clean", 0.001)
    noisy = _decoded_folder(tiny, tmp_path / "noisy", 0.1, skip=("sfx/bursts.wav",))
    out = tmp_path / "report"
    code = cli.main(["eval", "--ref", str(tiny), "--decoded", f"{clean}=near-copy@256",
                     "--decoded", str(noisy), "--max-seconds", "2", "--metrics", ROW_METRICS,
                     "--out", str(out), "-q"])
    assert code == 0
    assert "noisy: 1 of 4 clips have no decoded file" in capsys.readouterr().err
    rows = _rows(out)
    clips = {"speech/congrats.wav", "speech/features.flac", "music/chords.wav"}  # those both folders have
    assert len(rows) == 6 and {(r["clip"], r["codec"]) for r in rows} == {(c, n) for c in clips
                                                                           for n in ("near-copy", "noisy")}
    by = {(r["clip"], r["codec"]): r for r in rows}
    for c in clips:
        assert float(by[(c, "near-copy")]["kbps"]) == 256 and by[(c, "noisy")]["kbps"] == ""
        assert float(by[(c, "near-copy")]["si_sdr"]) > float(by[(c, "noisy")]["si_sdr"]) + 10
    codecs = _meta_codecs(out)
    assert [(c["name"], c["kind"], c["kbps"]) for c in codecs] == [("near-copy", "decoded", 256.0),
                                                                   ("noisy", "decoded", None)]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["meta"]["model"] is None
    assert {e["codec"] for e in summary["summary"]} == {"near-copy", "noisy"}
    assert "| near-copy |" in (out / "summary.md").read_text()


def test_eval_decoded_with_model_gives_both_kinds_of_rows(tiny, tmp_path, fake_decode):
    copy = _decoded_folder(tiny, tmp_path / "copy", 0.001)
    out = tmp_path / "report"
    assert _model_run(tiny, out, "--steps", "1,2", "--decoded", str(copy)) == 0
    labels = ["copy", "semanticodec@1steps", "semanticodec@2steps"]
    rows = _rows(out)
    assert len(rows) == 6 and [r["codec"] for r in rows[:3]] == labels
    assert {r["clip"] for r in rows} == {"speech/congrats.wav", "speech/features.flac"}
    assert fake_decode["steps"] == [1, 2, 1, 2] and fake_decode["encode"] == 2
    meta = json.loads((out / "summary.json").read_text())["meta"]
    kinds = ["decoded", "model", "model"]
    assert [(c["name"], c["kind"]) for c in meta["codecs"]] == list(zip(labels, kinds))
    assert meta["model"] == "preset:rt-tiny-r100"


def test_eval_row_option_errors(tiny, tmp_path, capsys):
    a = _decoded_folder(tiny, tmp_path / "a" / "out", 0.01)
    b = _decoded_folder(tiny, tmp_path / "b" / "out", 0.01)
    cases = [
        (["--decoded", str(a), "--decoded", str(b)], "two rows are named 'out'"),
        (["--decoded", str(a), "--decoded", f"{b}=b", "--label", "x"], "--label/--kbps describe a single"),
        (["--decoded", f"{a}=x", "--label", "y"], "names its label already"),
        (["--decoded", f"{a}=x@0"], "must be a positive number"),
        (["--model", "none", "--steps", "1,-2"], "step counts must be >= 0"),
        (["--model", "none", "--steps", "1,two"], "expected whole numbers"),
    ]
    for args, text in cases:
        capsys.readouterr()
        assert cli.main(["eval", "--ref", str(tiny), "--out", str(tmp_path / "out"), *args]) == 2, args
        assert text in capsys.readouterr().err, args
    assert not (tmp_path / "out").exists()
