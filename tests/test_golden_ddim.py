"""DDIM schedule, parameters and single v-steps vs the published sampler (golden ddim.npz)."""

import numpy as np
import pytest
import torch
from conftest import assert_close, atol, golden

from semanticodec_rt.config import DiffusionConfig
from semanticodec_rt.decoder.diffusion.ddim import cfg_combine, ddim_schedule, ddim_step_v
from semanticodec_rt.decoder.diffusion.schedule import SCHEDULE_BUFFER_NAMES, make_schedule

pytestmark = pytest.mark.golden

STEP_COUNTS = (50, 25, 10, 4, 1, 30, 200)


def test_schedule_buffers_bitwise():
    z, meta = golden("ddim")
    ours = make_schedule(DiffusionConfig())
    for name in SCHEDULE_BUFFER_NAMES:
        ref = z[f"out/schedule/{name}"]
        assert ours[name].dtype == torch.float32
        assert_close(ours[name], ref, atol(meta, f"out/schedule/{name}"), name)
    # Most are bitwise equal; the recipe in errata E3 makes them all so.
    for name in SCHEDULE_BUFFER_NAMES:
        assert np.array_equal(ours[name].numpy(), z[f"out/schedule/{name}"]), name


@pytest.mark.parametrize("steps", STEP_COUNTS)
def test_ddim_parameters(steps):
    z, meta = golden("ddim")
    ac = torch.from_numpy(z["out/schedule/alphas_cumprod"])
    s = ddim_schedule(ac, steps, eta=1.0)
    p = f"out/ddim_S{steps}/"
    assert np.array_equal(s.timesteps.numpy(), z[p + "ddim_timesteps"])
    for name in ("alphas", "alphas_prev", "sigmas", "sqrt_one_minus_alphas"):
        ref = z[p + "ddim_" + name]
        got = getattr(s, name)
        assert got.numpy().dtype == ref.dtype, f"{name}: dtype {got.dtype} vs {ref.dtype}"
        assert_close(got, ref, atol(meta, p + "ddim_" + name), f"S{steps} {name}")


def test_reference_values_s50():
    """The spec's quoted numbers for S = 50, eta = 1."""
    s = ddim_schedule(make_schedule(DiffusionConfig())["alphas_cumprod"], 50, 1.0)
    assert int(s.timesteps[-1]) == 981 and int(s.timesteps[0]) == 1
    assert abs(float(s.sigmas[-1]) - 0.56114) < 1e-5
    assert abs(float(s.sigmas[0]) - 0.027432) < 1e-6
    assert abs(float(s.alphas_prev[0]) - 0.998500) < 1e-6


@pytest.mark.parametrize("steps,index", [(50, 49), (50, 25), (50, 0), (10, 9), (10, 0)])
def test_single_v_step(steps, index):
    z, meta = golden("ddim")
    sched = make_schedule(DiffusionConfig())
    s = ddim_schedule(sched["alphas_cumprod"], steps, eta=1.0)
    t = int(s.timesteps[index])
    x_t = torch.from_numpy(z["in/step/x_t"])
    v = cfg_combine(torch.from_numpy(z["in/step/v_cond"]), torch.from_numpy(z["in/step/v_uncond"]), 2.0)
    x_prev, pred_x0 = ddim_step_v(
        x_t,
        v,
        float(sched["sqrt_alphas_cumprod"][t]),
        float(sched["sqrt_one_minus_alphas_cumprod"][t]),
        float(np.float32(s.alphas_prev[index].item())),
        float(np.float32(s.sigmas[index].item())),
        torch.from_numpy(z["in/step/noise"]),
    )
    p = f"out/step/S{steps}_index{index}/"
    assert_close(x_prev, z[p + "x_prev"], atol(meta, p + "x_prev"), p + "x_prev")
    assert_close(pred_x0, z[p + "pred_x0"], atol(meta, p + "pred_x0"), p + "pred_x0")


def test_step_requires_noise_when_stochastic():
    x = torch.zeros(1, 2, 3, 4)
    with pytest.raises(ValueError, match="noise"):
        ddim_step_v(x, x, 0.5, 0.5, 0.9, 0.1, None)
    # eta = 0 (sigma 0) is deterministic and needs no noise
    ddim_step_v(x, x, 0.5, 0.5, 0.9, 0.0, None)


@pytest.mark.parametrize("steps", [3, 9, 1000])
def test_unusable_step_counts_raise_clearly(steps):
    """Where c = 1000 // S divides 999 the last timestep would be 1000 (the reference crashes)."""
    from semanticodec_rt.decoder.diffusion.ddim import ddim_timesteps

    with pytest.raises(ValueError, match="not usable"):
        ddim_timesteps(steps)
