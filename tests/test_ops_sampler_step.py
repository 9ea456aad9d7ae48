"""ops.sampler_step (fused guidance + DDIM / Euler step) on every available backend.

Judged three ways: against float64 ground truth within a float32 error bound; bit for bit against
the float32 torch twin (every backend rounds the same operations in the same order); and against
the unfused sampler chain ``cfg_combine`` + ``ddim_step_v``, which it equals bit for bit except
where ``torch.sqrt`` rounds a step coefficient differently (see ``ops.ref.sampler_step_ref``).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from kernel_backends import U32, case, runnable  # noqa: F401 (case: fixture)

from semanticodec_rt import ops
from semanticodec_rt.config import DiffusionConfig
from semanticodec_rt.decoder.diffusion.ddim import cfg_combine, ddim_schedule, ddim_step_v, sample
from semanticodec_rt.decoder.diffusion.schedule import make_schedule
from semanticodec_rt.ops import _backend

pytestmark = pytest.mark.kernel

# A mid-schedule step (alpha-bar 0.3 -> 0.6); eta 1 gives sigma^2 = 0.286 of 1 - a_prev = 0.4.
A_T, A_PREV = 0.3, 0.6


def scalars(eta: float = 1.0, mode: str = "ddim", cfg_scale: float = 3.7) -> dict:
    sigma = eta * math.sqrt((1 - A_PREV) / (1 - A_T) * (1 - A_T / A_PREV))
    return dict(
        cfg_scale=cfg_scale,
        sqrt_ac_t=math.sqrt(A_T),
        sqrt_1m_ac_t=math.sqrt(1 - A_T),
        a_prev=A_PREV,
        sigma=sigma,
        mode=mode,
    )


# id -> (guided, eta, mode)
VARIANTS = {
    "guided-eta0": (True, 0.0, "ddim"),
    "guided-eta1": (True, 1.0, "ddim"),
    "unguided-eta0": (False, 0.0, "ddim"),
    "unguided-eta1": (False, 1.0, "ddim"),
    "guided-euler": (True, 1.0, "euler"),
    "unguided-euler": (False, 1.0, "euler"),
}
# Empty, tiny, odd (float4 groups plus a tail on the GPU), large odd (several OpenMP chunks),
# the rt latent and the official latent.
SHAPES = [(0,), (2, 0, 3, 4), (1,), (7,), (1_000_003,), (2, 8, 8, 16), (2, 8, 256, 16)]


@functools.lru_cache(maxsize=None)
def inputs(shape: tuple[int, ...], seed: int = 0) -> tuple[torch.Tensor, ...]:
    """(x_t, v_cond, v_uncond, noise): float32 standard normal, CPU."""
    g = torch.Generator().manual_seed(seed + sum(shape) * 7919 + len(shape))
    return tuple(torch.randn(shape, generator=g) for _ in range(4))


def problem(shape, variant: str):
    guided, eta, mode = VARIANTS[variant]
    x, vc, vu, nz = inputs(tuple(shape))
    return (x, vc, vu if guided else None, nz), scalars(eta, mode)


def run(backend, device, tensors, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    moved = [None if t is None else t.to(device) for t in tensors]
    return ops.sampler_step(*moved, backend=backend, **kw)


def truth_and_bound(tensors, kw, units: float = 32 * U32):
    """float64 (x_prev, x0) and elementwise bounds ``units * M`` on a float32 result's error.

    ``M`` is the chain evaluated on absolute values: every rounding (about 20 along the longest
    path, the float32 scalars and square roots included) errs by at most U32 relative to it.
    """
    t64 = [None if t is None else t.double() for t in tensors]
    x_prev, x0 = ops.sampler_step(*t64, backend="ref", **kw)
    x, vc, vu, nz = (None if t is None else t.abs() for t in t64)
    s = abs(kw["cfg_scale"])
    m_v = vc if vu is None else vu + s * (vc + vu)
    sa, s1 = kw["sqrt_ac_t"], kw["sqrt_1m_ac_t"]
    m_x0 = sa * x + s1 * m_v
    sigma = kw["sigma"] if kw["mode"] == "ddim" else 0.0
    m_prev = math.sqrt(kw["a_prev"]) * m_x0 + (1 - kw["a_prev"] + sigma**2) ** 0.5 * (
        sa * m_v + s1 * x
    )
    if sigma != 0.0:
        m_prev = m_prev + abs(sigma) * nz
    return (x_prev, x0), (units * m_prev, units * m_x0)


def assert_within(got, want, bound, what: str) -> None:
    err = (got.detach().cpu().double() - want).abs()
    if err.numel():
        worst = int((err - bound).argmax())
        e, b = err.reshape(-1)[worst], bound.reshape(-1)[worst]
        assert bool((err <= bound).all()), f"{what}: error {e:.3g} > bound {b:.3g}"


def assert_bitwise(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    a, b = a.detach().cpu(), b.detach().cpu()
    assert a.shape == b.shape and a.dtype == b.dtype, what
    diff = int((a.view(torch.int32) != b.view(torch.int32)).sum()) if a.numel() else 0
    assert diff == 0, f"{what}: {diff} elements differ"


# ------------------------------------------------------------------ correctness


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matches_float64_and_ref_bitwise(case, shape, variant):
    backend, device = case
    tensors, kw = problem(shape, variant)
    x_prev, x0 = run(backend, device, tensors, **kw)
    for out in (x_prev, x0):
        assert out.shape == shape and out.dtype == torch.float32
        assert out.device.type == device.type and out.is_contiguous()
    (t_prev, t_x0), (b_prev, b_x0) = truth_and_bound(tensors, kw)
    assert_within(x_prev, t_prev, b_prev, "x_prev")
    assert_within(x0, t_x0, b_x0, "x0")
    if not (backend == "ref" and device.type == "cuda"):  # torch's GPU kernels: bound only
        ref_prev, ref_x0 = ops.sampler_step(*tensors, backend="ref", **kw)
        assert_bitwise(x_prev, ref_prev, "x_prev vs float32 ref")
        assert_bitwise(x0, ref_x0, "x0 vs float32 ref")


def test_unfused_chain_differs_only_through_sqrt():
    """Every backend vs ``cfg_combine`` + ``ddim_step_v`` over many random steps.

    ``x0`` never involves a square root and must match bit for bit. ``x_prev`` must too whenever
    torch's float32 sqrt of the two coefficients is correctly rounded; otherwise it may differ by
    the effect of one ulp in a coefficient (and the rounding of the sum after it).
    """
    backends = [b for b in ("ref", "cpp") if b in ops.available_backends()]
    tensors = inputs((3, 4, 5, 7), seed=11)
    x, vc, vu, nz = tensors
    g = np.random.default_rng(3)
    exact_steps = 0
    for trial in range(60):
        a_t, a_prev = sorted(g.uniform(0.01, 0.999, size=2))
        eta = float(g.choice([0.0, 0.5, 1.0]))
        kw = dict(scalars(eta), cfg_scale=float(g.uniform(1, 5)))
        kw.update(sqrt_ac_t=math.sqrt(a_t), sqrt_1m_ac_t=math.sqrt(1 - a_t), a_prev=a_prev)
        kw["sigma"] = eta * math.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
        guided = trial % 3 != 0
        v = cfg_combine(vc, vu, kw["cfg_scale"]) if guided else vc
        args = (kw["sqrt_ac_t"], kw["sqrt_1m_ac_t"], kw["a_prev"], kw["sigma"])
        chain_prev, chain_x0 = ddim_step_v(x, v, *args, nz)
        ap, sg = (torch.tensor(a, dtype=torch.float32) for a in (a_prev, kw["sigma"]))
        coeffs = (ap, (1.0 - ap) - sg * sg)
        torch_sqrt_exact = all(
            c.sqrt().item() == float(np.float32(math.sqrt(c.item()))) for c in coeffs
        )
        exact_steps += torch_sqrt_exact
        c_x0, c_eps = (math.sqrt(c.item()) for c in coeffs)
        eps = kw["sqrt_ac_t"] * v.double() + kw["sqrt_1m_ac_t"] * x.double()
        bound = 4 * U32 * (c_x0 * chain_x0.double().abs() + c_eps * eps.abs())
        bound = bound + 4 * U32 * chain_prev.double().abs()  # the sum and the noise addition
        for backend in backends:
            x_prev, x0 = ops.sampler_step(x, vc, vu if guided else None, nz, backend=backend, **kw)
            assert_bitwise(x0, chain_x0, f"{backend} x0, trial {trial}")
            if torch_sqrt_exact:
                assert_bitwise(x_prev, chain_prev, f"{backend} x_prev, trial {trial}")
            else:
                assert_within(x_prev, chain_prev.double(), bound, f"{backend} x_prev {trial}")
    assert exact_steps > 0  # the bitwise branch was exercised


def test_euler_is_ddim_with_zero_sigma(case):
    backend, device = case
    tensors, kw = problem((2, 8, 8, 16), "guided-eta1")
    euler = run(backend, device, tensors, **dict(kw, mode="euler"))
    no_noise = (*tensors[:3], None)
    ddim0 = run(backend, device, no_noise, **dict(kw, sigma=0.0))
    euler_no_noise = run(backend, device, no_noise, **dict(kw, mode="euler"))  # noise not needed
    for a, b, c in zip(euler, ddim0, euler_no_noise):
        assert_bitwise(a, b, "euler vs ddim sigma 0")
        assert_bitwise(a, c, "euler ignores noise")


def test_non_contiguous_inputs(case):
    """Strided views give the bits of their contiguous copies."""
    backend, device = case
    g = torch.Generator().manual_seed(5)
    shape = (2, 8, 33, 16)
    # Views are taken on the target device (Tensor.to would return a contiguous copy).
    base = [torch.randn(2, 8, 16, 66, generator=g).to(device) for _ in range(4)]
    views = [b.transpose(2, 3)[..., ::2, :] for b in base]  # [2, 8, 33, 16], transposed + strided
    assert all(v.shape == shape and not v.is_contiguous() for v in views)
    kw = scalars(1.0)
    got = ops.sampler_step(*views, backend=backend, **kw)
    want = ops.sampler_step(*(v.contiguous() for v in views), backend=backend, **kw)
    for a, b in zip(got, want):
        assert a.shape == shape
        assert_bitwise(a, b, "strided vs contiguous")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_float_dtypes(case, dtype):
    """Outputs come back in the input dtype; compiled backends compute in float32."""
    backend, device = case
    tensors, kw = problem((2, 8, 8, 16), "guided-eta1")
    cast = [t.to(dtype) for t in tensors]
    x_prev, x0 = run(backend, device, cast, **kw)
    assert x_prev.dtype == dtype and x0.dtype == dtype
    if backend != "ref":  # float32 arithmetic on the converted inputs, then one rounding back
        f32 = run(backend, device, [t.float() for t in cast], **kw)
        assert_bitwise(x_prev.float(), f32[0].to(dtype).float(), "x_prev")
        assert_bitwise(x0.float(), f32[1].to(dtype).float(), "x0")
    u = float(torch.finfo(dtype).eps) / 2  # unit roundoff of dtype
    # ref rounds each operation of the chain to dtype; the compiled backends run the float32
    # chain on the (exactly converted) inputs and round the result once to dtype.
    units = 64 * u if backend == "ref" else 32 * U32 + 2 * u
    (t_prev, t_x0), (b_prev, b_x0) = truth_and_bound(cast, kw, units)
    assert_within(x_prev, t_prev, b_prev, "x_prev")
    assert_within(x0, t_x0, b_x0, "x0")


def test_mixed_dtypes_promote():
    x, vc, vu, nz = inputs((7,))
    kw = scalars(1.0)
    for backend in ops.available_backends():
        if backend == "cuda":
            continue
        x_prev, x0 = ops.sampler_step(x, vc.double(), vu, nz, backend=backend, **kw)
        assert x_prev.dtype == x0.dtype == torch.float64
        # unused noise does not take part in the promotion
        out = ops.sampler_step(x, vc, vu, nz.double(), backend=backend, **dict(kw, sigma=0.0))
        assert out[0].dtype == torch.float32


# ------------------------------------------------------------------ C++ backend specifics


def cpp_module():
    runnable("cpp", "cpu")
    return _backend.load("cpp")


def cpp_args(euler=False, **over):
    kw = scalars(1.0)
    args = dict(
        cfg_scale=kw["cfg_scale"], sqrt_ac_t=kw["sqrt_ac_t"], sqrt_1m_ac_t=kw["sqrt_1m_ac_t"],
        a_prev=kw["a_prev"], sigma=kw["sigma"], euler=euler,
    )
    return {**args, **over}


@pytest.mark.parametrize("n", [1_000_003, 40_000])
def test_cpp_result_independent_of_thread_count(n):
    mod = cpp_module()
    x, vc, vu, nz = (t.numpy() for t in inputs((n,)))
    results = [mod.sampler_step(x, vc, vu, nz, **cpp_args(), num_threads=k) for k in (1, 2, 3)]
    for x_prev, x0 in results[1:]:
        np.testing.assert_array_equal(x_prev.view(np.int32), results[0][0].view(np.int32))
        np.testing.assert_array_equal(x0.view(np.int32), results[0][1].view(np.int32))


def test_cpp_binding_keeps_shape():
    mod = cpp_module()
    x, vc, vu, nz = (t.numpy() for t in inputs((2, 8, 8, 16)))
    x_prev, x0 = mod.sampler_step(x, vc, None, None, **cpp_args(sigma=0.0))
    assert x_prev.shape == x0.shape == (2, 8, 8, 16) and x_prev.dtype == np.float32
    scalar = np.array(0.5, dtype=np.float32)  # 0-d
    x_prev, x0 = mod.sampler_step(scalar, scalar, None, None, **cpp_args(sigma=0.0))
    assert x_prev.shape == ()


def f32(*shape):
    return np.zeros(shape, np.float32)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: (np.zeros((4, 8)), f32(4, 8), None, None, {}), "x_t must be native float32"),
        (lambda: (f32(4, 16)[:, ::2], f32(4, 8), None, None, {}), "C-contiguous"),
        (lambda: (f32(4, 8), f32(4, 9), None, None, {}), "v_cond has shape"),
        (lambda: (f32(4, 8), f32(4, 8), f32(8, 4), None, {}), "v_uncond has shape"),
        (lambda: (f32(4, 8), f32(4, 8), None, f32(32), {}), "noise must have 2"),
        (lambda: (f32(4, 8), f32(4, 8), None, None, {}), "noise is required"),
    ],
)
def test_cpp_binding_rejects_bad_arrays(make, match):
    mod = cpp_module()
    x, vc, vu, nz, over = make()
    with pytest.raises(ValueError, match=match):
        mod.sampler_step(x, vc, vu, nz, **cpp_args(**over))


def test_cpp_binding_ignores_unused_noise():
    mod = cpp_module()
    x = f32(4, 8)
    mod.sampler_step(x, x, None, None, **cpp_args(euler=True))
    mod.sampler_step(x, x, None, f32(3), **cpp_args(sigma=0.0))  # not read, so not checked


# ------------------------------------------------------------------ validation and dispatch


def _t(*shape):
    return torch.zeros(shape)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: ((_t(4, 8), _t(4, 8), None, None), {}), "noise is required"),
        (lambda: ((_t(0, 8), _t(0, 8), None, None), {}), "noise is required"),
        (lambda: ((_t(4, 8), _t(4, 9), None, _t(4, 8)), {}), r"v_cond has shape \[4, 9\]"),
        (lambda: ((_t(4, 8), _t(4, 8), _t(8, 4), _t(4, 8)), {}), "v_uncond has shape"),
        (lambda: ((_t(4, 8), _t(4, 8), None, _t(4, 1)), {}), "noise has shape"),
        (lambda: ((_t(4, 8), _t(4, 8).int(), None, _t(4, 8)), {}), "floating dtype"),
        (lambda: ((_t(4, 8).long(), _t(4, 8), None, _t(4, 8)), {}), "floating dtype"),
        (lambda: ((_t(4, 8), torch.zeros(4, 8, device="meta"), None, _t(4, 8)), {}), "is on meta"),
        (lambda: ((_t(4, 8), _t(4, 8), None, None), {"mode": "heun"}), "mode must be"),
    ],
)
@pytest.mark.parametrize("backend", [None, "ref"])
def test_bad_inputs_raise_value_error(make, match, backend):
    tensors, over = make()
    with pytest.raises(ValueError, match=match):
        ops.sampler_step(*tensors, backend=backend, **{**scalars(1.0), **over})


def test_not_a_tensor_raises_type_error():
    with pytest.raises(TypeError, match="v_cond must be a torch.Tensor"):
        ops.sampler_step(_t(3), [0.0, 0.0, 0.0], **scalars(0.0))


def test_ref_twin_checks_its_arguments():
    x = _t(3)
    with pytest.raises(ValueError, match="noise is required"):
        ops.sampler_step_ref(x, x, None, None, **scalars(1.0))
    with pytest.raises(ValueError, match="mode must be"):
        ops.sampler_step_ref(x, x, None, None, **dict(scalars(0.0), mode="rk4"))


@pytest.mark.gpu
def test_device_mismatch_raises():
    runnable("ref", "cuda")
    x = _t(4, 8)
    with pytest.raises(ValueError, match="is on cuda"):
        ops.sampler_step(x, x.cuda(), None, None, **scalars(0.0))


# ------------------------------------------------------------------ the sampler loop


def toy_denoiser(x: torch.Tensor, t: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
    """A deterministic stand-in for the UNet: depends on x, t and the context."""
    gain = ctx.mean(dim=(1, 2)).view(-1, 1, 1, 1)
    return torch.tanh(x) * gain + (t.view(-1, 1, 1, 1) / 1000.0) * x.flip(-1)


@pytest.mark.parametrize("guided", [True, False], ids=["guided", "unguided"])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_sample_fused_matches_unfused(eta, guided):
    sched = make_schedule(DiffusionConfig())
    s = ddim_schedule(sched["alphas_cumprod"], 4, eta)
    g = torch.Generator().manual_seed(21)
    cond = torch.randn(2, 5, 6, generator=g)
    uncond = torch.randn(2, 5, 6, generator=g) if guided else None
    x_T = torch.randn(2, 8, 8, 16, generator=g)
    noise = torch.randn(len(s), 2, 8, 8, 16, generator=g)

    def run_loop(fused: bool, backend: str):
        steps = []
        with ops.use_backend(backend):
            final = sample(
                toy_denoiser, cond, uncond, x_T, s, sched["sqrt_alphas_cumprod"],
                sched["sqrt_one_minus_alphas_cumprod"], cfg_scale=2.5,
                step_noise=lambda i: noise[i], callback=steps.append, fused=fused,
            )
        return final, steps

    final, steps = run_loop(False, "auto")
    for backend in [b for b in ("ref", "cpp") if b in ops.available_backends()]:
        f_final, f_steps = run_loop(True, backend)
        assert len(f_steps) == len(steps) == 4
        torch.testing.assert_close(f_final, final, rtol=1e-6, atol=1e-6)
        for a, b in zip(f_steps, steps):
            torch.testing.assert_close(a["x"], b["x"], rtol=1e-6, atol=1e-6)
            torch.testing.assert_close(a["pred_x0"], b["pred_x0"], rtol=1e-6, atol=1e-6)
            assert a["v"] is not None and a["v"].shape == b["v"].shape


def test_sample_fused_requires_noise_when_stochastic():
    sched = make_schedule(DiffusionConfig())
    s = ddim_schedule(sched["alphas_cumprod"], 4, 1.0)
    cond = torch.ones(1, 2, 3)
    with pytest.raises(ValueError, match="noise is required"):
        sample(
            toy_denoiser, cond, None, torch.zeros(1, 2, 3, 4), s, sched["sqrt_alphas_cumprod"],
            sched["sqrt_one_minus_alphas_cumprod"], fused=True,
        )


# ------------------------------------------------------------------ CUDA specifics


def cuda_module():
    mod = _backend.module("cuda")
    if mod is None:
        pytest.skip(f"semanticodec_rt._cuda not built: {_backend.import_error('cuda')}")
    return mod


def cuda_launch_args(**over):
    args = dict(
        x_t=0, v_cond=0, v_uncond=0, noise=0, n=0, **cpp_args(), out_x_prev=0, out_x0=0,
        stream=0, device=0,
    )
    return {**args, **over}


def test_cuda_launcher_checks_before_touching_the_device():
    """Argument errors and empty launches are settled on the host: these run without a GPU."""
    mod = cuda_module()
    mod.sampler_step(**cuda_launch_args(sigma=0.0))  # n = 0: nothing to launch
    with pytest.raises(ValueError, match="noise is required"):
        mod.sampler_step(**cuda_launch_args(n=8))
    with pytest.raises(ValueError, match="negative size"):
        mod.sampler_step(**cuda_launch_args(n=-1, sigma=0.0))
    with pytest.raises(ValueError, match="null pointer"):
        mod.sampler_step(**cuda_launch_args(n=8, sigma=0.0))


@pytest.fixture
def cuda_device() -> torch.device:
    return runnable("cuda", "cuda")


@pytest.mark.gpu
@pytest.mark.parametrize("offset", [1, 2, 3])
def test_cuda_unaligned_pointers(cuda_device, offset):
    """Views starting mid float4 take the scalar path and give the same bits."""
    n = 4099
    g = torch.Generator().manual_seed(offset)
    storage = [torch.randn(n + offset, generator=g).to(cuda_device) for _ in range(4)]
    views = [s[offset:] for s in storage]
    kw = scalars(1.0)
    got = ops.sampler_step(*views, backend="cuda", **kw)
    want = ops.sampler_step(*(v.cpu() for v in views), backend="ref", **kw)
    for a, b in zip(got, want):
        assert_bitwise(a, b, f"offset {offset}")


@pytest.mark.gpu
def test_cuda_on_side_stream(cuda_device):
    """Launches follow torch's current stream: inputs written on a side stream are seen."""
    tensors, kw = problem((2, 8, 256, 16), "guided-eta1")
    side = torch.cuda.Stream(cuda_device)
    side.wait_stream(torch.cuda.current_stream(cuda_device))
    with torch.cuda.stream(side):
        moved = [t.to(cuda_device, non_blocking=True) * 1.0 for t in tensors]
        x_prev, x0 = ops.sampler_step(*moved, backend="cuda", **kw)
    torch.cuda.current_stream(cuda_device).wait_stream(side)
    torch.cuda.synchronize(cuda_device)
    ref_prev, ref_x0 = ops.sampler_step(*tensors, backend="ref", **kw)
    assert_bitwise(x_prev, ref_prev, "x_prev")
    assert_bitwise(x0, ref_x0, "x0")


@pytest.mark.gpu
def test_cuda_keeps_current_device(cuda_device):
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two CUDA devices")
    tensors, kw = problem((7,), "guided-eta1")
    torch.cuda.set_device(0)
    x_prev, _ = run("cuda", "cuda:1", tensors, **kw)
    assert torch.cuda.current_device() == 0 and x_prev.device == torch.device("cuda:1")
    assert_bitwise(x_prev, ops.sampler_step(*tensors, backend="ref", **kw)[0], "x_prev")
