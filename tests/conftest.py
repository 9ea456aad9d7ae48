"""Shared pytest fixtures: golden-vector access, the reduced configs the golden files use, missing
system programs, trained fixtures cached on disk, and the summary of skips."""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable, NoReturn

import numpy as np
import pytest
import torch

from semanticodec_rt.config import (
    CodecConfig, UNetConfig, VAEConfig, ViTConfig, VocoderConfig, official_config,
)

REPO = Path(__file__).resolve().parents[1]


def _find_golden_dir() -> Path | None:
    env = os.environ.get("SCRT_GOLDEN_DIR")
    candidates = [Path(env)] if env else []
    candidates += [REPO.parent / "shared" / "reference" / "golden", REPO / "shared" / "reference" / "golden"]
    for c in candidates:
        if (c / "README.md").exists():
            return c
    return None


GOLDEN_DIR = _find_golden_dir()
OFFICIAL_MANIFEST_DIR = None if GOLDEN_DIR is None else GOLDEN_DIR.parent / "official_manifest"


def require_golden() -> Path:
    if GOLDEN_DIR is None:
        pytest.skip("golden vectors not found: set SCRT_GOLDEN_DIR or place ../shared/reference/golden")
    return GOLDEN_DIR


@functools.lru_cache(maxsize=None)
def golden(name: str) -> tuple[dict[str, np.ndarray], dict]:
    """Load ``<name>.npz`` and ``<name>.json`` from the golden folder (cached per process)."""
    d = require_golden()
    with np.load(d / f"{name}.npz") as z:
        arrays = {k: z[k] for k in z.files}
    meta_path = d / f"{name}.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    return arrays, meta


def state_dict_from(arrays: dict[str, np.ndarray], prefix: str = "sd/") -> dict[str, torch.Tensor]:
    """Tensors stored under ``prefix`` with the prefix removed (official key names)."""
    return {k[len(prefix):]: torch.from_numpy(np.array(v)) for k, v in arrays.items() if k.startswith(prefix)}


def atol(meta: dict, key: str) -> float:
    """The golden file's suggested absolute tolerance for ``key``."""
    t = meta["suggested_tolerance"][key]
    if not isinstance(t, dict):
        raise KeyError(f"{key} has a non-numeric tolerance: {t!r}")
    return float(t["atol"])


def assert_close(ours, ref, tol: float, what: str = "") -> None:
    ours = ours.detach().cpu().numpy() if isinstance(ours, torch.Tensor) else np.asarray(ours)
    ref = np.asarray(ref)
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} != {ref.shape}"
    err = float(np.abs(ours.astype(np.float64) - ref.astype(np.float64)).max()) if ref.size else 0.0
    assert err <= tol, f"{what}: max abs err {err:.3e} > atol {tol:.1e}"


def golden_config(token_rate: int) -> CodecConfig:
    """The reduced configuration of the golden files (official structure, smaller widths)."""
    base = official_config(token_rate, 4096)
    return dataclasses.replace(
        base,
        name=f"golden-r{token_rate}",
        semantic_vocab_size=512,
        vit=ViTConfig(dim=48, heads=3, decoder_dim=16, decoder_depth=8, decoder_heads=16),
        acoustic=dataclasses.replace(base.acoustic, codebook_size=256),
        unet=UNetConfig(model_channels=32, num_head_channels=16),
        vae=VAEConfig(ch=32),
        vocoder=VocoderConfig(upsample_initial_channel=64),
    )


@pytest.fixture(autouse=True)
def _deterministic_threads():
    """Golden files were made with 1 thread; keep runs reproducible and light on a 2-core box."""
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


# -- system programs and files ---------------------------------------------------------------------
# CI (CI set) and `make test` (SCRT_REQUIRE_TOOLS=1) install every system package first
# (.ci/system-packages), so there a missing program is a broken set-up and fails the test; on any
# other machine the test skips and its reason names what to install.
REQUIRE_TOOLS = bool(os.environ.get("CI")) or os.environ.get("SCRT_REQUIRE_TOOLS") == "1"


def unavailable(reason: str) -> NoReturn:
    """Skip for ``reason`` (something this machine lacks); fail instead in CI / SCRT_REQUIRE_TOOLS=1."""
    if REQUIRE_TOOLS:
        pytest.fail(f"{reason} (a failure, not a skip: CI or SCRT_REQUIRE_TOOLS=1 is set)", pytrace=False)
    pytest.skip(reason)


def require_program(name: str, package: str) -> str:
    """The path of program ``name``, which the Debian package ``package`` installs."""
    path = shutil.which(name)
    if path is None:
        unavailable(f"program '{name}' not found: apt-get install {package}")
    return path


def require_file(path: Path, package: str) -> Path:
    """``path``, a file the Debian package ``package`` installs."""
    if not Path(path).exists():
        unavailable(f"{path} not found: apt-get install {package}")
    return Path(path)


# -- trained fixtures, cached on disk --------------------------------------------------------------
FIXTURE_CACHE = "scrt-fixtures"  # under .pytest_cache/d/ (git-ignored; `pytest --cache-clear` empties it)
_STALE_S = 3600  # older entries of a fixture are pruned when a new one is built


@functools.lru_cache(maxsize=None)
def code_version() -> str:
    """Hash of every file of the imported package (sources, compiled extension, assets) and of torch's
    version: a cached result is reused only by the code that made it."""
    import semanticodec_rt

    pkg = Path(semanticodec_rt.__file__).parent
    h = hashlib.sha256(torch.__version__.encode())
    for p in sorted(pkg.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(pkg)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def tree_hash(root: Path) -> str:
    """Hash of the names and contents of the files under ``root``."""
    h = hashlib.sha256()
    for p in sorted(Path(root).rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def cached_build(request, name: str, inputs: list[str], build: Callable[[Path], None]) -> Path:
    """A folder made by ``build(folder)``, once per key = (``inputs``, :func:`code_version`).

    The folder lives under pytest's cache, so a later session (or another test module) with the same
    key reuses it; tests must only read it.  Built in a temporary folder and renamed into place, so
    two sessions building the same key at once both end with one complete folder.
    """
    cache = getattr(request.config, "cache", None)
    if cache is None:  # -p no:cacheprovider: build per session
        out = request.getfixturevalue("tmp_path_factory").mktemp(name)
        build(out)
        return out
    root = Path(cache.mkdir(FIXTURE_CACHE))
    key = hashlib.sha256("\0".join([*inputs, code_version()]).encode()).hexdigest()[:16]
    out = root / f"{name}-{key}"
    if out.is_dir():
        os.utime(out)  # in use: not stale
        return out
    tmp = root / f".{out.name}.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    build(tmp)
    try:
        tmp.rename(out)
    except OSError:  # another session finished the same key first
        shutil.rmtree(tmp, ignore_errors=True)
    for old in [*root.glob(f"{name}-*"), *root.glob(f".{name}-*")]:  # older code, interrupted builds
        try:
            stale = old != out and time.time() - old.stat().st_mtime > _STALE_S
        except OSError:  # removed meanwhile by another session
            continue
        if stale:
            shutil.rmtree(old, ignore_errors=True)
    return out


# A tiny training corpus for the train and distill tests, written once per session: real speech from
# the asterisk package where installed, generated harmonic "music" and noise-burst "sfx".
SPEECH_DIR = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
CORPUS_SR = 16000


def _tone_clip(rng: np.random.Generator, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * CORPUS_SR)) / CORPUS_SR
    f0 = rng.uniform(110, 440)
    x = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in range(1, 6))
    return 0.2 * x * (0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t))


def _burst_clip(rng: np.random.Generator, seconds: float) -> np.ndarray:
    n = int(seconds * CORPUS_SR)
    env = np.exp(-np.arange(n) / (CORPUS_SR * rng.uniform(0.05, 0.3)))
    return 0.3 * rng.standard_normal(n) * env


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    """A manifest with train/valid clips of all three classes."""
    import soundfile as sf

    from semanticodec_rt.audio.resample import resample

    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    speech = sorted(SPEECH_DIR.glob("*.wav"))[:12] if SPEECH_DIR.exists() else []
    entries = []

    def add(split, cls, name, x):
        rel = f"{split}/{cls}/pkg-{cls}/{name}.flac"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(root / rel), x.astype(np.float32), CORPUS_SR, subtype="PCM_16")
        entries.append({"path": rel, "cls": cls, "pkg": f"pkg-{cls}", "licence": "test", "src": name,
                        "orig_sr": CORPUS_SR, "dur": round(len(x) / CORPUS_SR, 6), "split": split,
                        "group": f"{cls}:{name}"})

    for i in range(6):
        split = "valid" if i == 5 else "train"
        if speech:
            y, sr = sf.read(str(speech[i]), dtype="float32")
            x = resample(torch.from_numpy(y)[None], sr, CORPUS_SR)[0].numpy()
        else:
            x = _tone_clip(rng, 2.0) * _burst_clip(rng, 2.0) * 3
        add(split, "speech", f"s{i}", x)
        add(split, "music", f"m{i}", _tone_clip(rng, 3.0))
        add(split, "sfx", f"x{i}", _burst_clip(rng, 1.5))
    with open(root / "manifest.jsonl", "w") as f:
        for e in entries:
            f.write(json.dumps(e) + "\n")
    return root


# -- tiers ------------------------------------------------------------------------------------------
@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(items):
    """Tests on the private JACK server play seconds of audio in real time: marker ``heavy`` (not in
    the unit tier), whichever test file they are in."""
    for item in items:
        if "jack_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.heavy)


# -- end of run: skips by reason -------------------------------------------------------------------
def pytest_terminal_summary(terminalreporter):
    """One line per skip reason with its count, most frequent first ("155 skipped: no CUDA device ..."):
    what this machine lacks, at a glance."""
    reasons = collections.Counter()
    for rep in terminalreporter.stats.get("skipped", []):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        reasons[reason.removeprefix("Skipped: ")] += 1
    if reasons:
        terminalreporter.write_sep("=", "skips by reason")
        for reason, n in reasons.most_common():
            terminalreporter.write_line(f"{n:5d} skipped: {reason}")


def private_jack_server(rate: int, period: int):
    """Body of a module fixture: a private ``jackd -d dummy -r RATE -p PERIOD`` with PortAudio
    rescanned to see it, stopped (PortAudio's client dropped first) at the end.  Skips -- fails in
    CI -- when PortAudio, JACK-Client or jackd is missing."""
    from semanticodec_rt.live import devices
    from semanticodec_rt.live.jack_server import JackServer, JackUnavailable

    # each reason names what to install; a skip, or a failure in CI / under SCRT_REQUIRE_TOOLS=1
    try:
        sd = devices.sounddevice()
    except devices.AudioUnavailable as e:  # OSError (no libportaudio2) included
        unavailable(f"no PortAudio: {e}")
    try:
        import jack  # noqa: F401
    except ImportError:
        unavailable("JACK-Client not installed (pip install JACK-Client)")
    server = JackServer(rate=rate, period=period)
    try:
        server.start()  # sets JACK_DEFAULT_SERVER, JACK_NO_START_SERVER, JACK_NO_AUDIO_RESERVATION
    except JackUnavailable as e:  # "jackd not installed (apt-get install jackd2)", or did not start
        unavailable(str(e))
    devices.rescan()  # PortAudio lists JACK's "system" device only if the server ran at init
    try:
        yield server
    finally:
        sd._terminate()  # drop PortAudio's JACK client before its server goes
        server.stop()
        sd._initialize()


# -- speech-route helpers ------------------------------------------------------------------------
def write_tiny_streams(folder: Path, pcm: np.ndarray) -> None:
    """A train and a valid feature stream (as ``data features`` writes) of ``pcm`` int16 with
    random features (pitch term in range): enough for a few training steps of any stage."""
    rng = np.random.default_rng(0)
    feat = rng.standard_normal((-(-len(pcm) // 160), 20)).astype(np.float32)
    feat[:, 18] = rng.uniform(-1.4, 1.4, len(feat))
    for split in ("train", "valid"):
        np.save(folder / f"{split}.pcm.npy", pcm)
        np.save(folder / f"{split}.feat.npy", feat)
    stats = {"mean": feat.mean(0).tolist(), "std": feat.std(0).tolist(), "silence": feat[0].tolist()}
    (folder / "stats.json").write_text(json.dumps(stats))


def decode_in_pieces(codec, tokens: torch.Tensor, pieces_seed: int = 0, **kw) -> torch.Tensor:
    """Stream ``tokens`` ``[B, U, 2]`` through ``codec.stream_decoder(**kw)`` in random pieces of
    1 to 3 positions (``pieces_seed`` picks them), flushed: the streamed decode to compare with
    the offline one."""
    import random

    rng = random.Random(pieces_seed)
    dec = codec.stream_decoder(batch_size=tokens.shape[0], **kw)
    out, i = [], 0
    while i < tokens.shape[1]:
        k = rng.randint(1, 3)
        out.append(dec.push(tokens[:, i : i + k]))
        i += k
    out.append(dec.flush())
    return torch.cat(out, -1)
