"""pytest-benchmark microbenchmarks of the kernels (timings, never asserts on speed).

    python -m pytest benchmarks/ --benchmark-only            # not part of `make test`
    python -m pytest benchmarks/ --benchmark-compare         # against a saved run

Each kernel is timed next to the torch formulation the reference code uses, in one run.
"""

from __future__ import annotations

import pytest
import torch

from semanticodec_rt import ops
from semanticodec_rt.decoder.diffusion.ddim import cfg_combine, ddim_step_v
from semanticodec_rt.lab.bench.kernel_bench import torch_cdist_argmin, torch_norms_mm_min

NC_SIZES = [(512, 4096, 768), (512, 16384, 768), (64, 8192, 1536)]


@pytest.fixture(scope="module", params=NC_SIZES, ids=lambda s: "N%d-K%d-D%d" % s)
def nc_inputs(request):
    n, k, d = request.param
    g = torch.Generator().manual_seed(0)
    x, c = torch.randn(n, d, generator=g), torch.randn(k, d, generator=g)
    return x, c, (c * c).sum(1)


@pytest.mark.parametrize("impl", ["torch_norms_mm_min", "torch_cdist_argmin", "cpp"])
def test_nearest_centroid(benchmark, nc_inputs, impl):
    x, c, cn = nc_inputs
    if impl == "cpp":
        if "cpp" not in ops.available_backends():
            pytest.skip("C++ backend not built")
        fn = lambda: ops.nearest_centroid(x, c, cn, backend="cpp")  # noqa: E731
    else:
        fn = {"torch_norms_mm_min": torch_norms_mm_min, "torch_cdist_argmin": torch_cdist_argmin}[impl]
        fn = (lambda f=fn: f(x, c, cn))
    benchmark.group = f"nearest_centroid {tuple(x.shape)} x {tuple(c.shape)}"
    benchmark(fn)


@pytest.mark.parametrize("shape", [(2, 8, 8, 16), (2, 8, 256, 16)], ids=["rt", "official"])
@pytest.mark.parametrize("impl", ["torch_chain", "cpp"])
def test_sampler_step(benchmark, shape, impl):
    g = torch.Generator().manual_seed(0)
    x, vc, vu, z = (torch.randn(shape, generator=g) for _ in range(4))
    coeffs = dict(sqrt_ac_t=0.7, sqrt_1m_ac_t=0.71414284, a_prev=0.6, sigma=0.3)
    if impl == "cpp":
        if "cpp" not in ops.available_backends():
            pytest.skip("C++ backend not built")
        fn = lambda: ops.sampler_step(x, vc, vu, z, cfg_scale=2.0, backend="cpp", **coeffs)  # noqa: E731
    else:
        fn = lambda: ddim_step_v(x, cfg_combine(vc, vu, 2.0), coeffs["sqrt_ac_t"], coeffs["sqrt_1m_ac_t"],  # noqa: E731
                                 coeffs["a_prev"], coeffs["sigma"], z)
    benchmark.group = f"sampler_step {shape}"
    benchmark(fn)


@pytest.mark.parametrize("impl", ["torch_twin", "cpp"])
def test_fargan_one_second(benchmark, impl):
    """FARGAN synthesis of 1 s (100 frames), one stream, after priming: C++ kernel vs torch twin."""
    from semanticodec_rt.weights.fargan import load_fargan

    model = load_fargan()
    feats = torch.randn(105, 20, generator=torch.Generator().manual_seed(0)) * 0.5
    if impl == "cpp":
        if "cpp" not in ops.available_backends():
            pytest.skip("C++ backend not built")
        k = model.kernel()

        def fn():
            k.prime(feats[:5])
            return k.synthesize(feats[5:])
    else:
        fn = lambda: model.synthesize(feats[None])  # noqa: E731
    benchmark.group = "fargan 1 s of audio"
    benchmark(fn)
