"""ops.nearest_centroid on every available backend, judged against float64 ground truth (how,
and why by distances: tests/nearest_centroid_checks.py). The C++ backend's code paths (AVX-512
screen, AVX2, portable) are compared with each other in test_ops_nearest_centroid_paths.py.

``SCRT_REQUIRE_EXT=1`` turns a missing compiled module into a failure instead of a skip.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from kernel_backends import REQUIRE_EXT, case, runnable  # noqa: F401 (case: fixture)
from nearest_centroid_checks import check_against_f64, random_problem, tied_codebook

from semanticodec_rt import ops
from semanticodec_rt.ops import _backend

pytestmark = pytest.mark.kernel


def run(backend, device, x, codebook, sqnorm=None):
    dev = torch.device(device)
    sq = None if sqnorm is None else sqnorm.to(dev)
    return ops.nearest_centroid(
        x.to(dev), codebook.to(dev), sq, backend=backend, return_distance=True
    )


# ------------------------------------------------------------------ correctness


def test_compiled_module_present():
    err = _backend.import_error("cpp")
    if err is not None:
        if REQUIRE_EXT:
            pytest.fail(f"semanticodec_rt._C is missing (SCRT_REQUIRE_EXT=1): {err}")
        pytest.skip(f"semanticodec_rt._C not built: {err}")
    assert "cpp" in ops.available_backends()


@pytest.mark.parametrize("d", [17, 768])
@pytest.mark.parametrize("k", [3, 4097])
@pytest.mark.parametrize("n", [1, 7, 513])
def test_matches_float64(case, n, k, d):
    backend, device = case
    x, codebook = random_problem(n, k, d)
    index, sqdist = run(backend, device, x, codebook)
    assert index.shape == (n,) and index.device.type == device.type
    check_against_f64(x, codebook, index, sqdist)


@pytest.mark.parametrize("d", [17, 768])
@pytest.mark.parametrize("threads", [1, 2])
def test_exact_ties_resolve_to_lowest_index(case, d, threads):
    backend, device = case
    torch.set_num_threads(threads)  # the autouse fixture in conftest restores it
    codebook, groups = tied_codebook(d)
    leaders = torch.tensor(list(groups))
    g = torch.Generator().manual_seed(3)
    exact = codebook[leaders]
    noisy = exact + 0.01 * torch.randn(exact.shape, generator=g)
    # N = 1 makes the C++ kernel split the codebook across threads and merge the parts.
    cases = [(exact, leaders), (noisy, leaders), (exact[:1], leaders[:1])]
    cases.append((noisy[-1:], leaders[-1:]))
    for x, expected in cases:
        index, _ = run(backend, device, x, codebook)
        assert index.cpu().tolist() == expected.tolist()


def test_exact_ties_rows_are_independent(case):
    """Every query equal to a duplicated centroid, many rows (several row blocks and tiles)."""
    backend, device = case
    codebook, groups = tied_codebook(33)
    leaders = torch.tensor(list(groups)).repeat(50)  # 200 rows
    index, sqdist = run(backend, device, codebook[leaders], codebook)
    assert torch.equal(index.cpu(), leaders)
    check_against_f64(codebook[leaders], codebook, index, sqdist)


@pytest.mark.parametrize("d", [17, 768])
def test_near_ties(case, d):
    """Centroids whose distances differ by less than float32 resolution: judge by distance."""
    backend, device = case
    g = torch.Generator().manual_seed(11)
    center = torch.randn(d, generator=g)
    codebook = center + 1e-6 * torch.randn(257, d, generator=g)
    x = center + torch.randn(64, d, generator=g)
    index, sqdist = run(backend, device, x, codebook)
    check_against_f64(x, codebook, index, sqdist)


def test_non_contiguous_inputs(case):
    backend, device = case
    n, k, d = 37, 301, 45
    g = torch.Generator().manual_seed(5)
    # Views are taken on the target device (Tensor.to would return a contiguous copy).
    x = torch.randn(n, 2 * d, generator=g).to(device)[:, ::2]
    codebook = torch.randn(d, k, generator=g).to(device).t()
    sq_storage = torch.zeros(2 * k, device=device)
    sq_storage[::2] = (codebook.double() ** 2).sum(-1).float()
    sqnorm = sq_storage[::2]
    assert not (x.is_contiguous() or codebook.is_contiguous() or sqnorm.is_contiguous())
    for sq in (None, sqnorm):
        index, sqdist = run(backend, device, x, codebook, sq)
        check_against_f64(x, codebook, index, sqdist)
        if backend != "ref":  # compiled backends copy to contiguous: bit-identical results
            sq_c = None if sq is None else sq.contiguous()
            index_c, sqdist_c = run(backend, device, x.contiguous(), codebook.contiguous(), sq_c)
            assert torch.equal(index, index_c) and torch.equal(sqdist, sqdist_c)


def test_leading_dims(case):
    backend, device = case
    x, codebook = random_problem(30, 64, 24)
    xb = x.reshape(2, 3, 5, 24)
    index, sqdist = run(backend, device, xb, codebook)
    flat_index, flat_sqdist = run(backend, device, x, codebook)
    assert index.shape == (2, 3, 5) and sqdist.shape == (2, 3, 5)
    assert torch.equal(index.reshape(-1), flat_index)
    assert torch.equal(sqdist.reshape(-1), flat_sqdist)
    one_index, one_sqdist = run(backend, device, x[4], codebook)  # a single [D] vector -> 0-dim
    assert one_index.shape == () and one_sqdist.shape == ()
    assert int(one_index) == int(flat_index[4])


@pytest.mark.parametrize("shape", [(0, 16), (3, 0, 16)])
def test_empty_queries(case, shape):
    backend, device = case
    codebook = torch.randn(10, 16)
    index, sqdist = run(backend, device, torch.randn(shape), codebook)
    assert index.shape == shape[:-1] and sqdist.shape == shape[:-1]
    assert index.dtype == torch.int64 and index.device.type == device.type
    assert sqdist.dtype == torch.float32


def test_nan_query_row(case):
    """A NaN distance wins, as in torch.min: first index, NaN distance; other rows unaffected."""
    backend, device = case
    x, codebook = random_problem(7, 4097, 17)
    x = x.clone()
    x[3, 5] = float("nan")
    index, sqdist = run(backend, device, x, codebook)
    assert bool(torch.isnan(sqdist[3]))
    if not (backend == "ref" and device.type == "cuda"):  # torch's GPU argmin may pick any NaN
        assert int(index[3]) == 0
    keep = torch.tensor([0, 1, 2, 4, 5, 6])
    check_against_f64(x[keep], codebook, index.cpu()[keep], sqdist.cpu()[keep])


# ------------------------------------------------------------------ C++ backend specifics


def cpp_module():
    runnable("cpp", "cpu")
    return _backend.load("cpp")


@pytest.mark.parametrize("n,k,d", [(1, 4097, 768), (513, 4097, 17), (200, 3, 768)])
def test_cpp_result_independent_of_thread_count(n, k, d):
    mod = cpp_module()
    x, codebook = (t.numpy() for t in random_problem(n, k, d))
    results = [mod.nearest_centroid(x, codebook, None, threads) for threads in (1, 2, 3)]
    for index, sqdist in results[1:]:
        np.testing.assert_array_equal(index, results[0][0])
        np.testing.assert_array_equal(sqdist.view(np.int32), results[0][1].view(np.int32))


def test_cpp_given_sqnorm_matches_computed():
    mod = cpp_module()
    x, codebook = (t.numpy() for t in random_problem(7, 4097, 768))
    sqnorm = mod.codebook_sqnorm(codebook)
    a = mod.nearest_centroid(x, codebook, None)
    b = mod.nearest_centroid(x, codebook, sqnorm)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_cpp_converts_other_float_dtypes_to_float32(dtype):
    runnable("cpp", "cpu")
    x, codebook = random_problem(7, 300, 40)
    x, codebook = x.to(dtype), codebook.to(dtype)
    index, sqdist = ops.nearest_centroid(x, codebook, backend="cpp", return_distance=True)
    index32, sqdist32 = ops.nearest_centroid(
        x.float(), codebook.float(), backend="cpp", return_distance=True
    )
    assert sqdist.dtype == torch.float32
    assert torch.equal(index, index32) and torch.equal(sqdist, sqdist32)


def f32(*shape):
    return np.zeros(shape, np.float32)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: (np.zeros((4, 8)), f32(3, 8)), "x must be native float32"),
        (lambda: (f32(4, 16)[:, ::2], f32(3, 8)), "C-contiguous"),
        (lambda: (f32(4, 8), f32(3, 9)), "dimension mismatch"),
        (lambda: (f32(4, 8), f32(0, 8)), "empty"),
        (lambda: (f32(8), f32(3, 8)), "2 dimension"),
    ],
)
def test_cpp_binding_rejects_bad_arrays(make, match):
    mod = cpp_module()
    x, codebook = make()
    with pytest.raises(ValueError, match=match):
        mod.nearest_centroid(x, codebook, None)


# ------------------------------------------------------------------ validation and dispatch


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: (torch.randn(4, 8), torch.randn(3, 9), None), "dimension mismatch"),
        (lambda: (torch.randn(4, 8), torch.randn(0, 8), None), "empty"),
        (lambda: (torch.randint(0, 5, (4, 8)), torch.randn(3, 8), None), "floating dtype"),
        (lambda: (torch.randn(4, 8), torch.randint(0, 5, (3, 8)), None), "floating dtype"),
        (lambda: (torch.randn(4, 8), torch.randn(24), None), r"\[K, D\]"),
        (lambda: (torch.tensor(1.0), torch.randn(3, 1), None), "0-dim"),
        (lambda: (torch.randn(4, 8), torch.randn(3, 8), torch.randn(4)), "sqnorm must have shape"),
        (lambda: (torch.randn(4, 8), torch.randn(3, 8), torch.ones(3).int()), "floating dtype"),
        (lambda: (torch.randn(4, 8), torch.randn(3, 8, device="meta"), None), "is on meta"),
    ],
)
@pytest.mark.parametrize("backend", [None, "ref"])
def test_bad_inputs_raise_value_error(make, match, backend):
    x, codebook, sqnorm = make()
    with pytest.raises(ValueError, match=match):
        ops.nearest_centroid(x, codebook, sqnorm, backend=backend)


def test_unknown_backend_name():
    x, codebook = random_problem(1, 3, 17)
    with pytest.raises(ValueError, match="unknown backend"):
        ops.nearest_centroid(x, codebook, backend="fortran")
    with pytest.raises(ValueError, match="unknown backend"):
        with ops.use_backend("fortran"):
            pass


def test_selection_precedence(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.delenv("SCRT_BACKEND", raising=False)
    auto = "cpp" if "cpp" in ops.available_backends() else "ref"
    assert _backend.resolve(None, cpu) == auto
    assert _backend.resolve(None, torch.device("meta")) == "ref"
    monkeypatch.setenv("SCRT_BACKEND", "ref")
    assert _backend.resolve(None, cpu) == "ref"
    with ops.use_backend("auto"):  # the context manager beats the environment
        assert _backend.resolve(None, cpu) == auto
        assert _backend.resolve("ref", cpu) == "ref"  # and the argument beats both


def test_compiled_backend_on_wrong_device_raises():
    for name in ("cpp", "cuda"):
        if _backend.module(name) is None:
            continue
        wrong = torch.device("cuda" if name == "cpp" else "cpu")
        with pytest.raises(ValueError, match="runs on"):
            _backend.resolve(name, wrong)


@pytest.mark.parametrize("name", ["cpp", "cuda"])
def test_forcing_unavailable_backend_raises(monkeypatch, name):
    monkeypatch.setitem(_backend._MODULE_NAMES, name, "semanticodec_rt._no_such_module")
    monkeypatch.setattr(_backend, "_loaded", {})
    x, codebook = random_problem(7, 3, 17)
    assert name not in ops.available_backends()
    with pytest.raises(RuntimeError, match="_no_such_module"):
        ops.nearest_centroid(x, codebook, backend=name)
    with pytest.raises(RuntimeError, match="_no_such_module"):
        with ops.use_backend(name):
            ops.nearest_centroid(x, codebook)
    monkeypatch.setenv("SCRT_BACKEND", name)
    with pytest.raises(RuntimeError, match="_no_such_module"):
        ops.nearest_centroid(x[:0], codebook)  # even with nothing to compute
    monkeypatch.setenv("SCRT_BACKEND", "auto")  # auto is allowed to use what exists
    check_against_f64(x, codebook, *ops.nearest_centroid(x, codebook, return_distance=True))


# ------------------------------------------------------------------ CUDA specifics


@pytest.fixture
def cuda_device() -> torch.device:
    return runnable("cuda", "cuda")


@pytest.mark.gpu
def test_cuda_matches_ref_on_gpu(cuda_device):
    x, codebook = random_problem(513, 4097, 768)
    xg, cg = x.to(cuda_device), codebook.to(cuda_device)
    index, sqdist = ops.nearest_centroid(xg, cg, backend="cuda", return_distance=True)
    ref_index, ref_sqdist = ops.nearest_centroid(xg, cg, backend="ref", return_distance=True)
    check_against_f64(x, codebook, index, sqdist)
    check_against_f64(x, codebook, ref_index, ref_sqdist)
    same = index == ref_index
    assert float(same.float().mean()) > 0.99  # indices differ only on float32 near-ties


@pytest.mark.gpu
def test_cuda_on_side_stream(cuda_device):
    """Launches follow torch's current stream: inputs written on a side stream are seen."""
    x, codebook = random_problem(64, 4097, 768)
    cg = codebook.to(cuda_device)
    side = torch.cuda.Stream(cuda_device)
    side.wait_stream(torch.cuda.current_stream(cuda_device))
    with torch.cuda.stream(side):
        xg = x.to(cuda_device, non_blocking=True) * 1.0
        index, sqdist = ops.nearest_centroid(xg, cg, backend="cuda", return_distance=True)
    torch.cuda.current_stream(cuda_device).wait_stream(side)
    torch.cuda.synchronize(cuda_device)
    check_against_f64(x, codebook, index, sqdist)


@pytest.mark.gpu
def test_cuda_given_sqnorm_matches_computed(cuda_device):
    x, codebook = random_problem(7, 4097, 768)
    xg, cg = x.to(cuda_device), codebook.to(cuda_device)
    sqnorm = torch.empty(cg.shape[0], device=cuda_device)
    mod = _backend.load("cuda")
    stream = torch.cuda.current_stream(cuda_device).cuda_stream
    k, d = cg.shape
    mod.codebook_sqnorm(cg.data_ptr(), k, d, sqnorm.data_ptr(), stream, cuda_device.index)
    a = ops.nearest_centroid(xg, cg, backend="cuda", return_distance=True)
    b = ops.nearest_centroid(xg, cg, sqnorm, backend="cuda", return_distance=True)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.gpu
def test_cuda_keeps_current_device(cuda_device):
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two CUDA devices")
    x, codebook = random_problem(7, 300, 40)
    torch.cuda.set_device(0)
    index, sqdist = run("cuda", "cuda:1", x, codebook)
    assert torch.cuda.current_device() == 0 and index.device == torch.device("cuda:1")
    check_against_f64(x, codebook, index, sqdist)


def test_cuda_module_imports_without_gpu():
    """The CUDA module loads on a machine without a driver and reports it instead of crashing."""
    mod = _backend.module("cuda")
    if mod is None:
        pytest.skip(f"semanticodec_rt._cuda not built: {_backend.import_error('cuda')}")
    count, code, message = mod.device_status()
    assert mod.device_count() == count >= 0
    if code != 0:  # e.g. 35, cudaErrorInsufficientDriver, on a machine without a GPU driver
        assert count == 0 and message
    assert mod.runtime_version() > 0


def test_build_info_reports_what_each_built_backend_says():
    """ops.build_info() carries the compiled modules' own reports (OpenMP threads, CUDA versions)."""
    from semanticodec_rt import ops

    info = ops.build_info()
    cpp, cuda = _backend.module("cpp"), _backend.module("cuda")
    assert ("cpp" in info) == (cpp is not None) and ("cuda" in info) == (cuda is not None)
    if cpp is not None:
        assert info["cpp"]["openmp_max_threads"] == cpp.openmp_max_threads() >= 1
        assert info["cpp"]["nearest_centroid_path"] == cpp.nearest_centroid_path()
    if cuda is not None:
        c = info["cuda"]
        assert c["runtime_version"] == cuda.runtime_version() > 0
        assert c["device_count"] == cuda.device_count() >= 0
        assert (c["device_error"] == 0) or (c["device_count"] == 0 and c["device_message"])
