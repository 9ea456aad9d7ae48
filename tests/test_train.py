"""Training pipeline (semanticodec_rt.lab.train): every stage learns, resume is exact, DDP matches.

A tiny corpus is written to a temporary folder (real speech from the asterisk package where
installed, generated harmonic "music" and noise-burst "sfx"), so these tests need no download.
The ``smoke`` config (rt-tiny, small codebooks and batches) keeps each stage to seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import cached_build, tree_hash

from semanticodec_rt.cli import main as cli_main
from semanticodec_rt.lab.train import configs
from semanticodec_rt.lab.train.data import CropSource, shard
from semanticodec_rt.lab.train.loop import RunDirError, Trainer, checkpoints
from semanticodec_rt.weights import checkpoint

pytestmark = pytest.mark.train

SR = 16000


def smoke(*overrides: str) -> configs.TrainConfig:
    return configs.apply_overrides(configs.get_train_config("smoke"), list(overrides))


def _run(stage, tcfg, corpus, run_dir, steps=None, resume=False) -> Trainer:
    tr = Trainer(stage, tcfg, corpus, run_dir, resume=resume, progress=False)
    tr.run(steps)
    return tr


@pytest.fixture(scope="session")
def pipeline(corpus, request) -> Path:
    """A run folder with mae, kmeans and vae finished (inputs of kmeans/ldm tests); read-only, cached
    on disk (conftest.cached_build)."""
    stages = ("mae", "kmeans", "vae")

    def build(run: Path) -> None:
        torch.manual_seed(0)
        for stage in stages:
            _run(stage, smoke(), corpus, run)
            assert (run / stage / "final.safetensors").exists()

    return cached_build(request, "pipeline", [*stages, "smoke", tree_hash(corpus)], build)


def _log(run: Path, stage: str) -> list[dict]:
    return [json.loads(line) for line in (run / stage / "log.jsonl").read_text().splitlines() if '"final"' not in line]


# -- data ------------------------------------------------------------------------------------------
def test_crops_are_a_function_of_seed_and_step(corpus):
    a = CropSource(corpus, "train", seed=3).crops(7, 5, 4000)
    b = CropSource(corpus, "train", seed=3).crops(7, 5, 4000)
    c = CropSource(corpus, "train", seed=3).crops(8, 5, 4000)
    assert torch.equal(a["audio"], b["audio"]) and a["cls"] == b["cls"]
    assert not torch.equal(a["audio"], c["audio"])
    assert a["audio"].shape == (5, 4000) and a["audio"].abs().max() > 0
    parts = [shard(a, r, 5) for r in range(5)]
    assert torch.equal(torch.cat([p["audio"] for p in parts]), a["audio"])
    with pytest.raises(ValueError, match="does not split"):
        shard(a, 0, 2)


def test_missing_manifest_and_empty_split(tmp_path, corpus):
    from semanticodec_rt.lab.train.data import TrainDataError

    with pytest.raises(TrainDataError, match="manifest not found"):
        CropSource(tmp_path)
    with pytest.raises(TrainDataError, match="no clips"):
        CropSource(corpus, "test_unseen")


def test_overrides():
    cfg = smoke("ldm.lr=0.5", "seed=3", "kmeans.vocabs=8,4", "vocoder.adversarial_start=7")
    assert cfg.ldm.lr == 0.5 and cfg.seed == 3 and cfg.kmeans.vocabs == (8, 4)
    assert cfg.vocoder.adversarial_start == 7
    assert configs.from_dict(json.loads(cfg.to_json())) == cfg
    for bad in ("ldm.nope=1", "lr=1", "mae.lr=abc", "novalue"):
        with pytest.raises(ValueError, match="override"):
            smoke(bad)


# -- every stage learns (overfit one fixed batch) ----------------------------------------------------
def _overfit(stage, tcfg, corpus, run, key) -> tuple[float, float]:
    tr = Trainer(stage, tcfg, corpus, run, progress=False)
    draw = tr.stage.global_batch
    fixed = draw(0)
    tr.stage.global_batch = lambda step, salt=0: fixed if salt == 0 else draw(step, salt=salt)
    tr.run()
    values = [line[key] for line in _log(run, stage)]
    return float(np.mean(values[:3])), float(np.mean(values[-3:]))


@pytest.mark.parametrize("stage,key,factor", [
    ("mae", "loss", 0.9),
    ("vae", "l1", 0.85),
    ("vocoder", "mel_l1", 0.9),
])
def test_stage_overfits_a_fixed_batch(stage, key, factor, corpus, tmp_path):
    tcfg = smoke(f"{stage}.steps=40", f"{stage}.log_every=1", f"{stage}.ckpt_every=100", f"{stage}.warmup=3")
    first, last = _overfit(stage, tcfg, corpus, tmp_path, key)
    assert last < factor * first, (first, last)
    assert (tmp_path / stage / "final.safetensors").exists()


def test_vocoder_gan_phase_trains_both_groups(corpus, tmp_path):
    """With the discriminators active both groups step and the feature-matching term appears."""
    tcfg = smoke("vocoder.steps=6", "vocoder.log_every=1", "vocoder.adversarial_start=3")
    _run("vocoder", tcfg, corpus, tmp_path)
    log = _log(tmp_path, "vocoder")
    assert "loss_disc" not in log[0] and "fm" not in log[0]
    assert all("loss_disc" in line and "fm" in line and np.isfinite(line["loss"]) for line in log[3:])


def test_kmeans_lowers_quantisation_error(pipeline, corpus, tmp_path):
    for stage in ("mae",):
        (tmp_path / stage).mkdir()
        (tmp_path / stage / "final.safetensors").symlink_to(pipeline / stage / "final.safetensors")
    tcfg = smoke("kmeans.steps=30", "kmeans.log_every=1", "kmeans.dead_after=1000")
    first, last = _overfit("kmeans", tcfg, corpus, tmp_path, "loss_v32")
    assert last < 0.9 * first, (first, last)
    usage = json.loads((tmp_path / "kmeans" / "usage-v32.json").read_text())
    assert 0 < usage["used_fraction"] <= 1 and 1 <= usage["perplexity"] <= 32
    assert usage["mse"] < usage["feature_variance"]  # better than one centroid at the mean


def test_ldm_overfits_and_codebook_follows(pipeline, corpus, tmp_path):
    for stage in ("mae", "kmeans", "vae"):
        (tmp_path / stage).mkdir()
        (tmp_path / stage / "final.safetensors").symlink_to(pipeline / stage / "final.safetensors")
    tcfg = smoke("ldm.steps=40", "ldm.log_every=1", "ldm.cond_drop=0", "ldm.warmup=3")
    first, last = _overfit("ldm", tcfg, corpus, tmp_path, "loss_v")
    assert last < 0.8 * first, (first, last)
    final = checkpoint_tensors(tmp_path / "ldm" / "final.safetensors")
    assert float(final["decoder.scale_factor"]) != 1.0  # fixed from the latents' std
    embed = final["encoder.quantizer._codebook.embed"]
    assert torch.isfinite(embed).all() and bool(final["encoder.quantizer._codebook.initted"])


def checkpoint_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


# -- exact resume ----------------------------------------------------------------------------------
@pytest.mark.parametrize("stage", ["mae", "kmeans", "vocoder", "ldm"])
def test_resume_equals_uninterrupted(stage, pipeline, corpus, tmp_path):
    tcfg = smoke(f"{stage}.steps=6", f"{stage}.ckpt_every=100", "vocoder.adversarial_start=2")
    runs = []
    for name in ("straight", "resumed"):
        run = tmp_path / name
        for dep in ("mae", "kmeans", "vae"):
            if dep != stage:
                (run / dep).mkdir(parents=True, exist_ok=True)
                (run / dep / "final.safetensors").symlink_to(pipeline / dep / "final.safetensors")
        runs.append(run)
    _run(stage, tcfg, corpus, runs[0])
    first = _run(stage, tcfg, corpus, runs[1], steps=4)
    assert first.step == 4 and checkpoints(runs[1] / stage)[-1][0] == 4
    with pytest.raises(RunDirError, match="--resume"):
        Trainer(stage, tcfg, corpus, runs[1], progress=False)
    with pytest.raises(RunDirError, match="another config"):
        Trainer(stage, smoke(f"{stage}.lr=0.5"), corpus, runs[1], resume=True, progress=False)
    _run(stage, tcfg, corpus, runs[1], resume=True)
    a = checkpoint_tensors(checkpoints(runs[0] / stage)[-1][1])
    b = checkpoint_tensors(checkpoints(runs[1] / stage)[-1][1])
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    fa = checkpoint_tensors(runs[0] / stage / "final.safetensors")
    fb = checkpoint_tensors(runs[1] / stage / "final.safetensors")
    for k in fa:
        assert torch.equal(fa[k], fb[k]), k


# -- data parallel -----------------------------------------------------------------------------------
def test_torchrun_two_processes_match_one(corpus, tmp_path):
    """``torchrun --nproc_per_node 2`` (gloo, CPU) gives the weights of one process, same global batch."""
    args = ["train", "mae", "--config", "smoke", "--data", str(corpus), "--set", "mae.steps=5",
            "--set", "mae.batch=4", "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "semanticodec_rt", *args, "--out", str(tmp_path / "one")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_port", "29533", "-m", "semanticodec_rt", *args, "--out", str(tmp_path / "two")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    a = checkpoint_tensors(checkpoints(tmp_path / "one" / "mae")[-1][1])
    b = checkpoint_tensors(checkpoints(tmp_path / "two" / "mae")[-1][1])
    changed = 0
    for k in a:
        # atol 1e-4: the attention key biases have a gradient that is zero in exact arithmetic
        # (softmax ignores a constant shift), so it is rounding noise that Adam normalises into
        # steps of up to lr; everything else agrees to ~1e-6.
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-4)
    init = Trainer("mae", smoke("mae.steps=5", "mae.batch=4"), corpus, tmp_path / "init", progress=False)
    for k, v in init.stage.groups["model"].state_dict().items():
        changed += not torch.equal(v, a[f"live.model.{k}"])
    assert changed > 10  # the runs trained, so the equality is not trivial


# -- command line and export -----------------------------------------------------------------------------
def test_cli_train_export_and_codec_roundtrip(pipeline, corpus, tmp_path, capsys):
    run = tmp_path / "run"
    for dep in ("mae", "kmeans", "vae"):
        (run / dep).mkdir(parents=True)
        (run / dep / "final.safetensors").symlink_to(pipeline / dep / "final.safetensors")
        (run / dep / "config.json").symlink_to(pipeline / dep / "config.json")
    assert cli_main(["train", "export", "--out", str(run)]) == 2  # vocoder and ldm missing
    assert "has not finished" in capsys.readouterr().err
    for stage in ("vocoder", "ldm"):
        assert cli_main(["train", stage, "--config", "smoke", "--data", str(corpus), "--out", str(run),
                         "--set", f"{stage}.steps=3", "-q"]) == 0
    # a second start without --resume is refused with exit 2 and the reason
    assert cli_main(["train", "ldm", "--config", "smoke", "--data", str(corpus), "--out", str(run),
                     "--set", "ldm.steps=3", "-q"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert cli_main(["train", "mae", "--config", "smoke", "--data", str(corpus), "--out", str(run),
                     "--set", "mae.bogus=1"]) == 2
    assert cli_main(["train", "export", "--out", str(run), "--fp16", "-q"]) == 0
    codec = checkpoint.load(run / "model.safetensors")
    assert codec.cfg == configs.get_train_config("smoke").model_config()
    audio = torch.from_numpy(sf.read(str(next(corpus.glob("train/speech/*/*.flac"))), dtype="float32")[0])
    tokens = codec.encode(audio[None], SR)
    assert tokens.shape[-1] == 2 and int(tokens[..., 0].max()) < 32 and int(tokens[..., 1].max()) < 32
    wave = codec.decode(tokens, steps=2)
    assert wave.shape[-1] > 0.9 * audio.shape[-1] and torch.isfinite(wave).all()


# -- quality-check tools -----------------------------------------------------------------------------
def test_probe_separates_labels_carried_by_the_ids():
    """Synthetic ids: the class decides which ids occur in stream A, stream B is noise."""
    from semanticodec_rt.lab.train.probe import ClipIds, language_of, probe

    rng = np.random.default_rng(0)
    clips = []
    for i in range(120):
        cls = ("speech", "music", "sfx")[i % 3]
        a = rng.integers(0, 10, 50) + 10 * (i % 3)
        b = rng.integers(0, 30, 50)
        clips.append(ClipIds("train" if i < 90 else "test", cls, "pkg", a, b))
    good = probe(clips, "class", "semantic", 30)
    bad = probe(clips, "class", "acoustic", 30)
    assert good["accuracy"] == 1.0 and bad["accuracy"] < 0.6
    assert good["test_clips"] == 30 and good["classes"] == 3
    assert language_of("asterisk-core-sounds-ru-g722") == "ru" and language_of("fillets-ng-data-cs") == "cs"
    assert language_of("hedgewars-data") is None


def test_copy_synthesis_shapes(pipeline, corpus, tmp_path):
    from semanticodec_rt.lab.train.copysynth import CopySynthesis

    run = tmp_path / "run"
    (run / "vae").mkdir(parents=True)
    for name in ("final.safetensors", "config.json"):
        (run / "vae" / name).symlink_to(pipeline / "vae" / name)
    _run("vocoder", smoke("vocoder.steps=2"), corpus, run)
    synth = CopySynthesis(run)
    for n in (1000, 3200, 16000):
        x = torch.randn(2, n) * 0.1
        for mode in ("vae+vocoder", "vocoder"):
            y = synth(x, mode)
            assert y.shape == (2, n) and torch.isfinite(y).all()


def test_second_process_on_a_stage_is_refused(corpus, tmp_path):
    """Two trainers of one stage would interleave logs and overwrite checkpoints."""
    import fcntl

    tr = Trainer("mae", smoke("mae.steps=2"), corpus, tmp_path, progress=False)
    (tmp_path / "mae").mkdir(exist_ok=True)
    with open(tmp_path / "mae" / ".lock", "a+") as f:  # another holder (flock conflicts per open file)
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write("4242")
        f.flush()
        with pytest.raises(RunDirError, match="pid 4242"):
            tr.run()
        fcntl.flock(f, fcntl.LOCK_UN)
    tr.run()
    assert tr.step == 2
