"""Distillation (``train distill``): the progressive-distillation math against the sampler, the
stage on a smoke teacher (overfit, exact resume across a round boundary, students as codecs),
and the published-checkpoint teacher path."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from conftest import cached_build, tree_hash
from test_train import _log, _run, checkpoint_tensors, smoke

from semanticodec_rt.cli import main as cli_main
from semanticodec_rt.config import SamplerConfig, rt_config
from semanticodec_rt.decoder.diffusion.ddim import ddim_schedule, sample, trailing_timesteps
from semanticodec_rt.decoder.diffusion.schedule import make_schedule
from semanticodec_rt.lab.train.loop import Trainer, checkpoints
from semanticodec_rt.lab.train.progressive import ddim_v_step, grid_alphas, target_v, teacher_walk
from semanticodec_rt.weights import checkpoint

pytestmark = pytest.mark.train


# -- grid and math -----------------------------------------------------------------------------------
@pytest.mark.parametrize("fine,ratio", [(64, 4), (16, 4), (4, 2), (2, 2), (9, 3), (1000, 8)])
def test_trailing_grids_nest(fine, ratio):
    coarse = fine // ratio
    assert torch.equal(trailing_timesteps(fine)[ratio - 1 :: ratio], trailing_timesteps(coarse))
    assert int(trailing_timesteps(fine)[-1]) == 999


def test_trailing_schedule_ends_clean():
    ac = make_schedule(rt_config("rt-tiny").diffusion)["alphas_cumprod"]
    s = ddim_schedule(ac, 4, 0.0, "trailing")
    assert s.timesteps.tolist() == [249, 499, 749, 999]
    assert float(s.alphas_prev[0]) == 1.0 and float(s.sigmas.abs().max()) == 0.0
    assert torch.equal(s.alphas_prev[1:].float(), ac[s.timesteps[:-1]])
    with pytest.raises(ValueError, match="spacing"):
        ddim_schedule(ac, 4, 0.0, "leading")
    with pytest.raises(ValueError, match="spacing"):
        SamplerConfig(spacing="leading")


def test_sampler_config_sha_unchanged_by_default_spacing():
    """Adding ``spacing`` must not rename earlier models (their sha is in bitstreams)."""
    cfg = rt_config("rt-small")
    assert "spacing" not in cfg.to_dict()["sampler"]
    trailing = dataclasses.replace(cfg, sampler=dataclasses.replace(cfg.sampler, spacing="trailing"))
    assert trailing.sha() != cfg.sha()
    assert type(cfg).from_dict(trailing.to_dict()) == trailing and type(cfg).from_dict(cfg.to_dict()) == cfg


def test_target_inverts_the_step_float64():
    g = torch.Generator().manual_seed(0)
    z_t, z_s = torch.randn(5, 2, 3, 4, generator=g, dtype=torch.float64), torch.randn(5, 2, 3, 4, generator=g, dtype=torch.float64)
    a_t = torch.tensor([0.005, 0.1, 0.3, 0.6, 0.9], dtype=torch.float64)
    a_s = torch.tensor([0.2, 0.3, 0.9, 0.99, 1.0], dtype=torch.float64)
    v = target_v(z_t, z_s, a_t, a_s)
    torch.testing.assert_close(ddim_v_step(z_t, v, a_t, a_s), z_s, rtol=0, atol=1e-12)
    # to alpha-bar 1 the step returns x0 = sqrt(a) z - sqrt(1 - a) v
    x0 = a_t.sqrt().view(-1, 1, 1, 1) * z_t - (1 - a_t).sqrt().view(-1, 1, 1, 1) * v
    torch.testing.assert_close(ddim_v_step(z_t, v, a_t, torch.ones(5, dtype=torch.float64)), x0, rtol=0, atol=1e-12)


def test_teacher_walk_and_student_step_match_the_sampler():
    """From the top of a 4-step trailing grid, the guided teacher's walk equals ``sample`` with that
    schedule, and one student step of the target v equals the walk's end (1-step schedule)."""
    ac = make_schedule(rt_config("rt-tiny").diffusion)["alphas_cumprod"].double()
    sac, s1m = ac.sqrt(), (1 - ac).sqrt()
    g = torch.Generator().manual_seed(1)
    w_c, w_u = torch.randn(3, 3, generator=g, dtype=torch.float64), torch.randn(3, 3, generator=g, dtype=torch.float64)

    def net(x, t, ctx):  # a t-dependent non-linear "UNet"; the context (1 or 0) picks the branch
        c = ctx[:, 0, 0].view(-1, 1, 1)
        return torch.tanh(torch.einsum("bctf,bfg->bctg", x, c * w_c + (1 - c) * w_u)) \
            * (1 + t.double().view(-1, 1, 1, 1) / 1000)

    def guided(z, t):  # what DistillStage._teacher_v does in round 0
        v_u, v_c = net(torch.cat([z, z]), torch.cat([t, t]), torch.cat([uncond, cond])).chunk(2)
        return v_u + 2.0 * (v_c - v_u)

    cond, uncond = torch.ones(2, 1, 1, dtype=torch.float64), torch.zeros(2, 1, 1, dtype=torch.float64)
    z = torch.randn(2, 2, 3, 3, generator=g, dtype=torch.float64)

    ref = sample(net, cond, uncond, z, ddim_schedule(ac.float(), 4, 0.0, "trailing"), sac, s1m, cfg_scale=2.0)
    t_grid, a_grid = grid_alphas(ac, 4)
    walked = teacher_walk(guided, z, torch.tensor([4, 4]), 4, t_grid, a_grid)
    torch.testing.assert_close(walked, ref, rtol=1e-6, atol=1e-6)  # sample() runs float32 scalars
    v = target_v(z, walked, a_grid[torch.tensor([4, 4])], a_grid[torch.tensor([0, 0])])
    one = sample(lambda x, t, c: v, cond, None, z, ddim_schedule(ac.float(), 1, 0.0, "trailing"), sac, s1m, cfg_scale=1.0)
    torch.testing.assert_close(one, walked, rtol=1e-5, atol=1e-5)


# -- the stage on a smoke teacher ----------------------------------------------------------------------
@pytest.fixture(scope="session")
def teacher_run(corpus, request) -> Path:
    """A smoke teacher (all five stages, 4 steps each); read-only, cached on disk (conftest.cached_build)."""
    stages = ("mae", "kmeans", "vae", "vocoder", "ldm")
    overrides = {stage: [f"{stage}.steps=4", f"{stage}.ckpt_every=100"] for stage in stages}

    def build(run: Path) -> None:
        torch.manual_seed(0)
        for stage in stages:
            _run(stage, smoke(*overrides[stage]), corpus, run)

    return cached_build(request, "teacher", [json.dumps(overrides), tree_hash(corpus)], build)


def distill_cfg(run: Path, *more: str):
    return smoke(f"distill.teacher={run}", "distill.ckpt_every=100", "distill.batch=2", *more)


def test_distill_overfits_a_fixed_batch(teacher_run, corpus, tmp_path):
    tcfg = distill_cfg(teacher_run, "distill.steps=30", "distill.rounds=2,1", "distill.log_every=1",
                       "distill.warmup=2")
    tr = Trainer("distill", tcfg, corpus, tmp_path, progress=False)
    draw = tr.stage.global_batch
    fixed = draw(0)
    tr.stage.global_batch = lambda step: fixed
    tr.run()
    losses = [line["loss"] for line in _log(tmp_path, "distill")]
    assert sum(losses[-3:]) < 0.7 * sum(losses[:3]), losses


def test_distill_resume_across_a_round_equals_uninterrupted(teacher_run, corpus, tmp_path):
    tcfg = distill_cfg(teacher_run, "distill.steps=6")  # rounds 4 -> 2 -> 1, 3 steps each
    straight = _run("distill", tcfg, corpus, tmp_path / "a")
    first = _run("distill", tcfg, corpus, tmp_path / "b", steps=4)  # stops inside round 1
    assert first.stage.round == 1 and (tmp_path / "b" / "distill" / "model-s2.safetensors").exists()
    _run("distill", tcfg, corpus, tmp_path / "b", resume=True)
    a = checkpoint_tensors(checkpoints(tmp_path / "a" / "distill")[-1][1])
    b = checkpoint_tensors(checkpoints(tmp_path / "b" / "distill")[-1][1])
    for k in a:
        assert torch.equal(a[k], b[k]), k
    for n in (2, 1):
        fa, fb = (checkpoint_tensors(r / "distill" / f"model-s{n}.safetensors") for r in (tmp_path / "a", tmp_path / "b"))
        assert fa.keys() == fb.keys() and all(torch.equal(fa[k], fb[k]) for k in fa)
    assert straight.stage.round == 1


def test_students_are_codecs_with_one_unet_call_per_step(teacher_run, corpus, tmp_path):
    tcfg = distill_cfg(teacher_run, "distill.steps=2", "distill.rounds=4,2,1")
    _run("distill", tcfg, corpus, tmp_path)
    for n in (2, 1):
        codec = checkpoint.load(tmp_path / "distill" / f"model-s{n}.safetensors")
        s = codec.cfg.sampler
        assert (s.steps, s.eta, s.cfg_scale, s.spacing) == (n, 0.0, 1.0, "trailing")
        calls = []
        h = codec.decoder.unet.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
        audio = torch.randn(1, 16000) * 0.1
        tokens = codec.encode(audio)
        wave = codec.decode(tokens)
        h.remove()
        units = tokens.shape[1] // codec.cfg.tokens_per_unit
        assert len(calls) == n * -(-units // 8) and sum(calls) == n * units  # one branch, n calls per window
        assert torch.isfinite(wave).all() and wave.shape[-1] == units * codec.cfg.unit_columns * codec.cfg.column_samples
    # bench times the formulation a student replaces: guidance as two calls per step, not folded
    from semanticodec_rt.lab.bench import codec_bench as bench

    calls.clear()
    h = codec.decoder.unet.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    row = bench.measure(codec, audio, reference=True, steps=2)
    h.remove()
    assert row.guidance == "2 calls" and sum(calls) == 2 * 2 * units and len(calls) == 2 * 2 * -(-units // 8)
    assert bench.measure(codec, audio, reference=False, steps=1).guidance == "folded (1 call)"
    # the last student is also the stage's final weights
    final = checkpoint_tensors(tmp_path / "distill" / "final.safetensors")
    s1 = checkpoint_tensors(tmp_path / "distill" / "model-s1.safetensors")
    assert all(torch.equal(v, s1[k]) for k, v in final.items())


def test_cli_distill_needs_a_teacher(corpus, tmp_path, capsys):
    assert cli_main(["train", "distill", "--config", "smoke", "--data", str(corpus), "--out", str(tmp_path), "-q"]) == 2
    assert "teacher" in capsys.readouterr().err
    assert cli_main(["train", "distill", "--config", "smoke", "--data", str(corpus), "--out", str(tmp_path),
                     "--teacher", str(tmp_path / "nope"), "-q"]) == 2
    assert cli_main(["train", "mae", "--config", "smoke", "--data", str(corpus), "--out", str(tmp_path),
                     "--teacher", "x", "-q"]) == 2


# -- the published-checkpoint teacher path ------------------------------------------------------------
@pytest.mark.golden
def test_distill_runs_on_an_official_layout_teacher(corpus, tmp_path, monkeypatch):
    """``--teacher official:DIR`` goes through the same stage: 10.24 s windows, one per crop.  The
    folder is the golden one (reduced widths) with a random VAE encoder added to decoder.ckpt, as
    the published decoder.ckpt carries one."""
    from conftest import golden_config
    from golden_checkpoints import write_official_folder

    from semanticodec_rt.decoder.synthesis.vae import AutoencoderKL
    from semanticodec_rt.lab.train import teacher as teacher_mod
    from semanticodec_rt.lab.train.stages import distill as distill_mod
    from semanticodec_rt.weights.official import checkpoint_subdir

    cfg = golden_config(100)
    folder = write_official_folder(tmp_path / "official", 100)
    dec_path = folder / checkpoint_subdir(100) / "decoder.ckpt"
    sd = torch.load(dec_path, weights_only=True)
    torch.manual_seed(0)
    vae = AutoencoderKL(cfg.vae, vocoder=None, with_encoder=True)
    sd.update({f"first_stage_model.{k}": v for k, v in vae.state_dict().items() if k.startswith(("encoder.", "quant_conv."))})
    torch.save(sd, dec_path)
    monkeypatch.setattr(distill_mod, "load_teacher",
                        lambda spec, device, vae: teacher_mod.load_teacher(spec, device, vae, official_config=cfg))
    tcfg = smoke(f"distill.teacher=official:{folder}:100", "distill.batch=1", "distill.steps=2",
                 "distill.rounds=4,2,1", "distill.ckpt_every=100", "distill.log_every=1")
    tr = _run("distill", tcfg, corpus, tmp_path / "run")
    assert tr.stage.per_crop == 1 and tr.stage.samples == cfg.window_samples
    losses = [line["loss"] for line in _log(tmp_path / "run", "distill")]
    assert len(losses) == 2 and all(0 < x < float("inf") for x in losses)
    student = checkpoint.load(tmp_path / "run" / "distill" / "model-s1.safetensors")
    assert student.cfg.sampler.spacing == "trailing" and student.cfg.stream is None
    assert student.cfg.name == "golden-r100-distilled-s1"
