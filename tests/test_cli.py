"""The ``semanticodec-rt`` command line: commands, suffix mode, ``info``, and one-line errors.

Most tests call :func:`semanticodec_rt.cli.main` in-process (fast); a few run
``python -m semanticodec_rt`` in a subprocess to check real exit codes and stderr.  The model is
an rt-tiny checkpoint with random weights, so the audio is noise: these tests check plumbing
(lengths, tokens, headers, errors), not quality.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import golden_config, unavailable

from semanticodec_rt import api, cli
from semanticodec_rt.audio.load import load_waveform
from semanticodec_rt.bitstream import read_scrt
from semanticodec_rt.codec import SemantiCodec
from semanticodec_rt.config import rt_config
from semanticodec_rt.weights import checkpoint

pytestmark = pytest.mark.cli

REPO = Path(__file__).resolve().parents[1]
PREFIX = "semanticodec-rt: error:"
CLIP_RATE = 22050  # espeak-ng's rate; not 16 kHz, so every encode also resamples


def _speech_like(seconds: float, sr: int) -> np.ndarray:
    """A deterministic voiced signal: gliding pitch, moving formants, syllables and pauses."""
    t = np.arange(int(seconds * sr)) / sr
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t) + 15 * np.sin(2 * np.pi * 3.1 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    syllable = np.floor(t * 4).astype(int)  # 4 syllables per second
    vowels = np.array([(730, 1090), (270, 2290), (300, 870), (530, 1840), (660, 1720)])
    f1, f2 = vowels[syllable % len(vowels)].T
    x = np.zeros_like(t)
    for k in range(1, 30):
        fk = k * f0
        amp = np.exp(-(((fk - f1) / 120.0) ** 2)) + 0.6 * np.exp(-(((fk - f2) / 180.0) ** 2)) + 0.02
        x += amp / k**0.5 * np.sin(k * phase)
    envelope = np.sin(np.pi * (t * 4 % 1)) ** 2 * (syllable % 7 != 6)  # every 7th syllable a pause
    noise = np.random.default_rng(0).standard_normal(len(t)) * 0.01
    x = x * envelope + noise
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


# A real recording (Debian asterisk-core-sounds-en-wav, CC-BY-SA-3.0, installed by .ci/run):
# 8 kHz, so every encode also resamples.
REAL_CLIP = Path("/usr/share/asterisk/sounds/en_US_f_Allison/hello-world.wav")


def _write_clip(path: Path) -> str:
    """A few seconds of speech: the real recording if installed, else espeak-ng, else the
    synthetic voice above."""
    if REAL_CLIP.exists():
        shutil.copyfile(REAL_CLIP, path)
        return "asterisk-core-sounds-en-wav"
    espeak = shutil.which("espeak-ng")
    if espeak:
        text = "The quick brown fox jumps over the lazy dog. Streaming codecs send tokens, not samples."
        r = subprocess.run([espeak, "-v", "en-us", "-w", str(path), text], capture_output=True)
        if r.returncode == 0 and path.exists() and sf.info(str(path)).frames > 0:
            return "espeak-ng"
    sf.write(str(path), _speech_like(3.0, CLIP_RATE), CLIP_RATE, subtype="PCM_16")
    return "synthetic"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    model = root / "model.safetensors"
    checkpoint.save(SemantiCodec.random(rt_config("rt-tiny", 100, 256), seed=0), model)
    clip = root / "clip.wav"
    source = _write_clip(clip)
    return {"root": root, "model": str(model), "clip": clip, "source": source}


@pytest.fixture(scope="module")
def codec(env):
    return checkpoint.load(env["model"])


@pytest.fixture(scope="module")
def encoded(env):
    """The clip encoded once with the CLI (shared by the decode-side tests)."""
    out = env["root"] / "clip.scrt"
    assert cli.main(["encode", str(env["clip"]), str(out), "--model", env["model"], "-q"]) == 0
    return out


def run(capsys, *args) -> tuple[int, str, str]:
    rc = cli.main([str(a) for a in args])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def assert_one_line_error(rc: int, err: str, *fragments: str) -> None:
    assert rc != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(PREFIX), err
    for frag in fragments:
        assert frag in lines[0], (frag, err)


# -- the happy paths -------------------------------------------------------------------------------
def test_encode_decode_info(env, codec, encoded, tmp_path, capsys):
    n = load_waveform(env["clip"])[0].shape[-1]  # input length at 16 kHz
    info, tokens, _ = read_scrt(encoded)
    assert np.array_equal(tokens, codec.encode(str(env["clip"]))[0].numpy())  # streamed == offline
    assert info.n_samples == n and info.n_frames == len(tokens)
    assert info.model == codec.model_sha and info.config == "rt-tiny-r100-v256"

    out = tmp_path / "dec.wav"
    rc, stdout, _ = run(capsys, "decode", encoded, out, "--model", env["model"], "--steps", "1")
    assert rc == 0 and str(out) in stdout
    meta = sf.info(str(out))
    assert (meta.samplerate, meta.channels, meta.frames, meta.subtype) == (16000, 1, n, "PCM_16")

    rc, stdout, _ = run(capsys, "info", encoded)
    assert rc == 0
    for text in (codec.model_sha, "rt-tiny-r100-v256", "1050 bps", f"{len(tokens)} (up to 8"):
        assert text in stdout
    print(f"clip: {env['source']}, {n / 16000:.2f} s, {len(tokens)} frames")


def test_roundtrip_equals_encode_then_decode(env, encoded, tmp_path, capsys):
    dec, rt = tmp_path / "dec.wav", tmp_path / "rt.wav"
    common = ["--model", env["model"], "--steps", "1", "--seed", "3"]
    assert run(capsys, "decode", encoded, dec, *common)[0] == 0
    rc, stdout, _ = run(capsys, "roundtrip", env["clip"], rt, *common)
    assert rc == 0
    n_frames = read_scrt(encoded)[0].n_frames
    assert f"{n_frames} token positions" in stdout and "payload 1050 bps" in stdout
    a, sr_a = sf.read(str(dec), dtype="int16")
    b, sr_b = sf.read(str(rt), dtype="int16")
    assert sr_a == sr_b == 16000 and np.array_equal(a, b)


def test_mode_by_suffix(env, encoded, tmp_path, capsys):
    scrt, dec, rt = tmp_path / "s.scrt", tmp_path / "d.wav", tmp_path / "r.wav"
    model = ["--model", env["model"], "-q"]
    assert run(capsys, env["clip"], scrt, *model) == (0, "", "")  # encode
    assert scrt.read_bytes() == encoded.read_bytes()
    assert run(capsys, scrt, dec, *model, "--steps", "1", "--float")[0] == 0  # decode
    assert sf.info(str(dec)).subtype == "FLOAT"
    assert run(capsys, "-q", env["clip"], rt, "--model", env["model"], "--steps", "1")[0] == 0  # roundtrip
    assert sf.info(str(rt)).frames == sf.info(str(dec)).frames
    rc, _, err = run(capsys, scrt, tmp_path / "again.scrt", *model)
    assert_one_line_error(rc, err, "both files are .scrt")
    rc, _, err = run(capsys, "-q", "encode", env["clip"], tmp_path / "x.scrt")
    assert_one_line_error(rc, err, "the command comes first")


def test_force_overwrites_and_mono_mean(env, codec, tmp_path, capsys):
    stereo = tmp_path / "stereo.flac"
    left = _speech_like(1.0, 24000)
    sf.write(str(stereo), np.stack([left, -0.5 * left[::-1]], axis=1), 24000)
    out = tmp_path / "m.scrt"
    out.write_bytes(b"old")
    args = ["encode", stereo, out, "--model", env["model"], "--mono", "mean", "-q"]
    rc, _, err = run(capsys, *args)
    assert_one_line_error(rc, err, "already exists", "-f/--force")
    assert out.read_bytes() == b"old"
    assert run(capsys, *args, "-f")[0] == 0
    expected = codec.encode(str(stereo), mono="mean")[0].numpy()
    assert np.array_equal(read_scrt(out)[1], expected)


def test_info_30s_file_payload_bitrate(env, tmp_path, capsys):
    sr = 16000
    t = np.arange(30 * sr) / sr
    x = np.where(t < 10, 0.0, 0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)  # silence + tone
    wav, scrt = tmp_path / "tone30.wav", tmp_path / "tone30.scrt"
    sf.write(str(wav), x, sr)
    assert run(capsys, "encode", wav, scrt, "--model", env["model"], "-q")[0] == 0

    rc, stdout, _ = run(capsys, "info", "--json", scrt)
    assert rc == 0
    r = json.loads(stdout)
    assert r["payload_bps"] == 50 * (8 + 13) == 1050
    assert (r["semantic_bits"], r["acoustic_bits"], r["token_rate"]) == (8, 13, 100)
    assert r["n_samples"] == 30 * sr and r["duration_s"] == 30.0
    assert r["n_frames"] == 1504  # 188 units of 160 ms (30.08 s) x 8 positions
    assert r["file_bytes"] == scrt.stat().st_size
    assert r["overhead_bytes"] == r["file_bytes"] - r["payload_bytes"]
    assert r["payload_bytes"] == sum(-(-min(8, 1504 - i) * 21 // 8) for i in range(0, 1504, 8))
    assert r["n_packets"] == 1504 // 8 + 1
    rc, text, _ = run(capsys, "info", scrt)
    assert rc == 0 and "1050 bps" in text
    with capsys.disabled():
        print(f"\n$ semanticodec-rt info {scrt.name}\n{text}", end="")


@pytest.mark.heavy
def test_official_windowing_model(env, tmp_path, capsys):
    """A model of the published structure (reduced widths): whole-file encode and decode."""
    path = tmp_path / "official_small.safetensors"
    checkpoint.save(SemantiCodec.random(golden_config(100), seed=0), path)
    codec = checkpoint.load(path)
    assert codec.cfg.stream is None
    scrt, dec, rt = tmp_path / "o.scrt", tmp_path / "o.wav", tmp_path / "o_rt.wav"
    common = ["--model", path, "-q"]
    assert run(capsys, "encode", env["clip"], scrt, *common) == (0, "", "")
    info, tokens, _ = read_scrt(scrt)
    assert np.array_equal(tokens, codec.encode(str(env["clip"]))[0].numpy())
    assert info.model == codec.model_sha
    assert run(capsys, "decode", scrt, dec, *common, "--steps", "1")[0] == 0
    assert run(capsys, "roundtrip", env["clip"], rt, *common, "--steps", "1")[0] == 0
    assert sf.info(str(dec)).frames == info.n_samples
    assert np.array_equal(sf.read(str(dec))[0], sf.read(str(rt))[0])


def test_help_of_every_command(capsys):
    for argv in (["--help"], *([c, "--help"] for c in cli.COMMANDS)):
        rc, stdout, _ = run(capsys, *argv)
        assert rc == 0 and "examples:" in stdout, argv
    assert run(capsys, "--version")[1].startswith("semanticodec-rt ")


def test_preset_needs_random_weights_ok(env, tmp_path, capsys):
    out = tmp_path / "p.scrt"
    rc, _, err = run(capsys, "encode", env["clip"], out, "--model", "preset:rt-tiny-r100")
    assert_one_line_error(rc, err, "--random-weights-ok")
    rc, _, err = run(capsys, "encode", env["clip"], out, "--model", "preset:rt-tiny-r100-v256",
                     "--random-weights-ok", "-q")
    assert rc == 0 and "RANDOM WEIGHTS" in err
    rc, _, err = run(capsys, "encode", env["clip"], tmp_path / "q.scrt", "--model", "preset:nope",
                     "--random-weights-ok")
    assert_one_line_error(rc, err, "unknown preset")


# -- every bad input: one line on stderr, non-zero exit, no output left behind ---------------------
def _bad_inputs(env, encoded, tmp: Path) -> dict[str, tuple[list, tuple[str, ...]]]:
    model = ["--model", env["model"]]
    txt = tmp / "notes.wav"
    txt.write_text("these are not samples\n" * 50)
    empty = tmp / "empty.wav"
    sf.write(str(empty), np.zeros(0, np.float32), 16000)
    nan = tmp / "nan.wav"
    x = _speech_like(0.5, 16000)
    x[100:110] = np.nan
    sf.write(str(nan), x, 16000, subtype="FLOAT")
    data = encoded.read_bytes()
    truncated = tmp / "truncated.scrt"
    truncated.write_bytes(data[:-30])
    corrupt = tmp / "corrupt.scrt"
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x5A  # inside a packet: its CRC no longer matches
    corrupt.write_bytes(bytes(flipped))
    junk = tmp / "junk.scrt"
    junk.write_bytes(b"RIFF....WAVEfmt " + bytes(64))
    existing = tmp / "exists.scrt"
    existing.write_bytes(b"keep me")
    out_wav, out_scrt = tmp / "out.wav", tmp / "out.scrt"
    return {
        "missing input": (["encode", tmp / "nothing.wav", out_scrt, *model], ("no such file",)),
        "text renamed .wav": (["encode", txt, out_scrt, *model], ("unsupported or corrupt",)),
        "empty audio": (["encode", empty, out_scrt, *model], ("empty audio",)),
        "NaN samples": (["encode", nan, out_scrt, *model], ("non-finite",)),
        "truncated .scrt": (["decode", truncated, out_wav, *model, "--steps", "1"], ("truncated",)),
        "corrupt .scrt": (["decode", corrupt, out_wav, *model, "--steps", "1"], ("CRC",)),
        "not a .scrt": (["decode", junk, out_wav, *model], ("not a .scrt",)),
        "info on corrupt": (["info", corrupt], ("CRC",)),
        "existing output": (["encode", env["clip"], existing, *model], ("already exists",)),
        "missing checkpoint": (["encode", env["clip"], out_scrt, "--model", tmp / "no.safetensors"],
                               ("not found",)),
        "bad checkpoint": (["encode", env["clip"], out_scrt, "--model", txt], ("not a safetensors",)),
        "unknown option": (["encode", env["clip"], out_scrt, *model, "--bogus"], ("--bogus",)),
        "bad --steps": (["decode", encoded, out_wav, *model, "--steps", "-1"], ("--steps",)),
        "0 steps of diffusion": (["decode", encoded, out_wav, *model, "--steps", "0"], ("at least 1 step",)),
        "decode to .mp3": (["decode", encoded, tmp / "out.mp3", *model], ("*.wav",)),
    }


def test_bad_inputs_give_one_line_errors(env, encoded, tmp_path, capsys):
    cases = _bad_inputs(env, encoded, tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    for name, (argv, fragments) in cases.items():
        rc, _, err = run(capsys, *argv)
        assert_one_line_error(rc, err, *fragments)
        expected_rc = 1 if name == "bad checkpoint" else 2
        assert rc == expected_rc, (name, rc, err)
    # nothing written: no outputs, no temporary files, the existing output untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (tmp_path / "exists.scrt").read_bytes() == b"keep me"


def test_scrt_from_another_model_names_both(env, codec, tmp_path, capsys):
    other = tmp_path / "other.scrt"
    rc, _, _ = run(capsys, "encode", env["clip"], other, "--model", "preset:rt-tiny-r100",
                   "--random-weights-ok", "-q")
    assert rc == 0
    other_sha = read_scrt(other)[0].model
    out = tmp_path / "out.wav"
    rc, _, err = run(capsys, "decode", other, out, "--model", env["model"], "--steps", "1")
    assert_one_line_error(rc, err, other_sha, codec.model_sha, "rt-tiny-r100-v8192", "rt-tiny-r100-v256")
    assert rc == 2 and not out.exists()


def test_no_model_and_no_default(env, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(api, "DEFAULT_MODEL", tmp_path / "assets" / "default.safetensors")
    rc, _, err = run(capsys, "encode", env["clip"], tmp_path / "x.scrt")
    assert_one_line_error(rc, err, "default model", "is missing", "pass --model PATH|official:DIR")
    assert rc == 2


# -- through a real process ----------------------------------------------------------------------------
def _python_m(*args, **kwargs) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "semanticodec_rt", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=120, **kwargs)


@pytest.mark.heavy
def test_subprocess_exit_codes_and_stderr(env, encoded, tmp_path):
    out = tmp_path / "p.wav"
    r = _python_m(encoded, out, "--model", env["model"], "--steps", "1", "-q")  # suffix mode: decode
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert sf.info(str(out)).frames == read_scrt(encoded)[0].n_samples

    r = _python_m("encode", tmp_path / "missing.flac", tmp_path / "x.scrt", "--model", env["model"])
    assert r.returncode == 2 and r.stdout == ""
    assert_one_line_error(r.returncode, r.stderr, "no such file")
    assert "Traceback" not in r.stderr


def test_info_runs_without_torch(encoded):
    code = (
        "import sys; from semanticodec_rt.cli import main; "
        f"rc = main(['info', '--json', {str(encoded)!r}]); "
        "assert 'torch' not in sys.modules, 'info imported torch'; sys.exit(rc)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["payload_bps"] == 1050


def test_console_script_is_installed():
    # pip puts it next to this interpreter, which need not be on PATH (make runs .venv/bin/python)
    exe = shutil.which("semanticodec-rt", path=sysconfig.get_path("scripts")) or shutil.which("semanticodec-rt")
    if exe is None:
        unavailable("semanticodec-rt not installed: pip install -e . declares it")
    r = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("semanticodec-rt ")


@pytest.mark.heavy
def test_sigterm_leaves_no_hidden_temporary_file(tmp_path):
    """SIGTERM during a roundtrip: exit 143, one line, and neither the output nor its hidden
    ``.OUT.<pid>.tmp`` is left behind."""
    import signal
    import subprocess
    import sys
    import time

    import soundfile as sf

    src, dst = tmp_path / "long.wav", tmp_path / "out.wav"
    t = np.arange(16000 * 120) / 16000
    sf.write(str(src), (0.3 * np.sin(2 * np.pi * 140 * t)).astype(np.float32), 16000)
    proc = subprocess.Popen([sys.executable, "-m", "semanticodec_rt", "roundtrip", str(src), str(dst),
                             "--model", "preset:rt-tiny-r100", "--random-weights-ok", "-q"],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not list(tmp_path.glob(".out.wav.*.tmp")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "terminated" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.wav"]


def test_disk_full_while_decoding_is_one_line_and_leaves_nothing(env, encoded, tmp_path, capsys, monkeypatch):
    """A write error (disk full) from libsndfile is an OSError: one line, exit 1, no temporary."""
    import soundfile

    from semanticodec_rt.audio.wav_writer import WavWriter

    with pytest.raises(OSError, match="cannot write"):
        WavWriter("/dev/full", False)

    def full(self, data):
        raise soundfile.LibsndfileError(28, "No space left on device")

    monkeypatch.setattr(soundfile.SoundFile, "write", full)
    out = tmp_path / "out" / "x.wav"
    out.parent.mkdir()
    rc, _, err = run(capsys, "decode", encoded, out, "--model", env["model"], "--steps", "1")
    assert_one_line_error(rc, err, "cannot write")
    assert rc == 1 and not list(out.parent.iterdir())


@pytest.mark.parametrize("n_samples", [1 << 50, 1 << 28, 1])
def test_decode_refuses_samples_that_the_frames_do_not_make(env, encoded, tmp_path, capsys, n_samples):
    """A header naming the right model with a sample count its frames cannot decode to (it would
    size the output: 2^50 samples of padding) is refused before anything is decoded."""
    import dataclasses

    from semanticodec_rt.bitstream import write_scrt

    info, ids, _ = read_scrt(encoded)
    forged = tmp_path / "forged.scrt"
    write_scrt(forged, dataclasses.replace(info, n_samples=n_samples), ids)
    rc, _, err = run(capsys, "decode", forged, tmp_path / "out.wav", "--model", env["model"], "--steps", "1")
    assert_one_line_error(rc, err, "damaged or forged header")
    assert rc == 2 and not (tmp_path / "out.wav").exists()
