"""Kernel microbenchmarks: our backends vs the torch formulations the reference code uses.

Shared by ``examples/kernel_bench.py`` (tables) and ``benchmarks/`` (pytest-benchmark).  Every
number is measured in the calling process: a time is the median of ``repeat`` runs after one
warm-up (the table also gives their min-max spread), throughput is computed from the work of the
call, and the "ceilings" of the machine are measured here too, so percentages compare with what
this machine actually delivers, not with a datasheet:

* ``gflops``: the best float32 matmul of torch's BLAS (a few shapes), ``gbps``: a large copy;
* on the CPU with the C++ backend, ``fp32_peak`` / ``bf16_peak``: register-only loops of fp32
  FMAs (widest vectors) and of AVX-512 bf16 dot products (``vdpbf16ps``; 0 without AVX-512 BF16),
  from ``semanticodec_rt._C.peak_gflops`` on the benchmark's threads.

Work per call:

* nearest centroid ``[N, D]`` x ``[K, D]``: ``2 N K D`` FLOP (the dot products; norms and argmin
  are O(NK + (N + K) D), negligible). On the ``avx512`` path most of it runs as bf16 dot products
  (the screen), so its "% of bf16 peak" is the meaningful one; the other paths run fp32 FMAs;
* sampler step on ``E`` elements: bytes moved = ``4 E`` x (inputs + outputs) -- it is
  memory-bound, so GB/s is the figure of merit.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch

from ...ops import available_backends, nearest_centroid


def compiled_backends(device: torch.device) -> list[str]:
    """The compiled backends that run on ``device``: ``cpp`` on the CPU, ``cuda`` on a GPU."""
    want = "cuda" if device.type == "cuda" else "cpp"
    return [want] if want in available_backends() else []


def timed_runs(fn: Callable[[], object], repeat: int = 5, sync: Callable[[], None] | None = None) -> list[float]:
    """Seconds of each of ``repeat`` runs of ``fn()``, after one warm-up run."""
    fn()
    if sync:
        sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    return times


def median_time(fn: Callable[[], object], repeat: int = 5, sync: Callable[[], None] | None = None) -> float:
    """Median seconds of ``fn()`` over ``repeat`` runs after one warm-up run."""
    return statistics.median(timed_runs(fn, repeat, sync))


def _sync(device: torch.device):
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else None


def measured_ceilings(device: torch.device, repeat: int = 3, threads: int | None = None) -> dict[str, float]:
    """``{"gflops": best float32 matmul GFLOP/s, "gbps": copy GB/s}`` measured on ``device``, and on
    the CPU with the C++ backend built also ``"fp32_peak"`` and ``"bf16_peak"`` (GFLOP/s of
    register-only FMA / vdpbf16ps loops on ``threads`` threads, default torch's; bf16 is 0.0 on a
    CPU without AVX-512 BF16).

    The matmul ceiling is the best of a few shapes (square and the tall-skinny shapes of the
    lookups), i.e. what the vendor BLAS reaches here at its best.
    """
    shapes = [(2048, 2048, 2048), (512, 768, 16384), (4096, 768, 4096)]
    if device.type == "cuda":
        shapes += [(8192, 8192, 8192), (4096, 768, 32768)]
    best = 0.0
    for m, kk, n in shapes:
        a = torch.randn(m, kk, device=device)
        b = torch.randn(kk, n, device=device)
        t = median_time(lambda: a @ b, repeat, _sync(device))
        best = max(best, 2 * m * kk * n / t / 1e9)
    big = torch.empty(64 * 2**20 // 4 if device.type == "cpu" else 512 * 2**20 // 4, device=device)
    dst = torch.empty_like(big)
    tc = median_time(lambda: dst.copy_(big), repeat, _sync(device))
    out = {"gflops": best, "gbps": 2 * big.numel() * 4 / tc / 1e9}
    if device.type == "cpu" and "cpp" in available_backends():
        from ...ops import _backend

        mod = _backend.load("cpp")
        nt = threads if threads is not None else torch.get_num_threads()
        # best of a few short probes: a probe that lost its core for a moment reads low
        out["fp32_peak"] = max(mod.peak_gflops("fp32", nt, 0.2) for _ in range(repeat))
        out["bf16_peak"] = max(mod.peak_gflops("bf16", nt, 0.2) for _ in range(repeat))
    return out


def nearest_centroid_path(n: int = 512, k: int = 16384, d: int = 768) -> str | None:
    """The C++ backend's code path for a lookup of this size (``avx512``, ``avx2``, ``portable``;
    ``SCRT_NC_PATH`` forces one), or None when the backend is not built."""
    if "cpp" not in available_backends():
        return None
    from ...ops import _backend

    return _backend.load("cpp").nearest_centroid_path("auto", n, k, d)


# -- the torch formulations of the reference -----------------------------------------------------------
def torch_norms_mm_min(x: torch.Tensor, c: torch.Tensor, cn: torch.Tensor) -> torch.Tensor:
    """The published k-means lookup: materialise ``[N, K]`` distances, then argmin."""
    d = (x * x).sum(1, keepdim=True) + cn[None, :] - 2.0 * (x @ c.t())
    return d.min(1).indices


def torch_cdist_argmin(x: torch.Tensor, c: torch.Tensor, cn: torch.Tensor) -> torch.Tensor:
    return torch.cdist(x, c).argmin(1)


@dataclass
class Row:
    """One table row: an implementation at one size."""

    op: str
    size: str
    impl: str
    seconds: float
    rate: float  # GFLOP/s or GB/s
    unit: str
    ceiling_pct: float
    speedup: float | None  # vs the reference formulation of the op (None for itself)
    peak_mb: float | None = None
    spread: tuple[float, float] | None = None  # (fastest, slowest) seconds of the timed runs
    fp32_peak_pct: float | None = None  # % of the measured fp32 / bf16 arithmetic peaks (CPU)
    bf16_peak_pct: float | None = None
    note: str = ""  # e.g. the C++ code path


def cpu_peak_mb(impl: str, n: int, k: int, d: int, threads: int) -> float:
    """Peak extra resident memory (MiB) of one nearest-centroid call, measured in a fresh process
    (Linux ``/proc``; forking this one after OpenMP started can hang).  ``impl``: ``torch`` (norms+mm+min), ``cdist`` or a backend name.
    """
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", __name__, "peak", impl, str(n), str(k), str(d), str(threads)],
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _peak_child(impl: str, n: int, k: int, d: int, threads: int) -> None:
    torch.set_num_threads(threads)
    x, c = torch.randn(n, d), torch.randn(k, d)
    # No [K, D] temporary here: the peak counter must only see the call's own allocations.
    cn = torch.linalg.vector_norm(c, dim=1).square()

    def call(x, c, cn):
        if impl == "torch":
            return torch_norms_mm_min(x, c, cn)
        if impl == "cdist":
            return torch_cdist_argmin(x, c, cn)
        return nearest_centroid(x, c, cn, backend=impl)

    call(x[:4], c[:64], cn[:64])  # load lazily imported code and thread pools before measuring
    # VmHWM is the peak resident size of this address space (fresh at exec, unlike ru_maxrss,
    # which Linux carries over from the parent); writing 5 to clear_refs resets it to now.
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _status_kb("VmRSS")
    call(x, c, cn)
    print(max(0, _status_kb("VmHWM") - before) / 1024)


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _peak_mb(fn, device: torch.device) -> float | None:
    """Peak extra memory of one call on CUDA (allocator statistics); None on the CPU (see
    :func:`cpu_peak_mb`, which needs a fresh process)."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - base) / 2**20


def bench_nearest_centroid(n: int, k: int, d: int, device: torch.device, ceilings: dict,
                           repeat: int = 5, check: bool = True) -> list[Row]:
    """Our backends on ``device`` vs norms+mm+min and cdist+argmin, one size."""
    g = torch.Generator().manual_seed(n * 31 + k * 7 + d)
    x = torch.randn(n, d, generator=g).to(device)
    c = torch.randn(k, d, generator=g).to(device)
    cn = (c * c).sum(1)
    flop = 2.0 * n * k * d
    impls: dict[str, Callable[[], torch.Tensor]] = {
        "torch norms+mm+min": lambda: torch_norms_mm_min(x, c, cn),
        "torch cdist+argmin": lambda: torch_cdist_argmin(x, c, cn),
    }
    for b in compiled_backends(device):
        impls[f"ours ({b})"] = lambda b=b: nearest_centroid(x, c, cn, backend=b)
    sync = _sync(device)
    runs = {name: timed_runs(fn, repeat, sync) for name, fn in impls.items()}
    times = {name: statistics.median(r) for name, r in runs.items()}
    if check:
        want = torch_norms_mm_min(x.double(), c.double(), cn.double())
        for name, fn in impls.items():
            if name.startswith("ours"):
                got = fn()
                # Random Gaussian data has no near-ties at float32 resolution in practice.
                agree = float((got.cpu() == want.cpu()).double().mean())
                if agree < 0.999:
                    raise AssertionError(f"{name} disagrees with float64 on {1 - agree:.2%} of rows")
    base = times["torch norms+mm+min"]
    path = nearest_centroid_path(n, k, d) if device.type == "cpu" else None
    rows = []
    for name, t in times.items():
        rate = flop / t / 1e9
        rows.append(Row("nearest_centroid", f"N={n} K={k} D={d}", name, t, rate, "GFLOP/s",
                        100 * rate / ceilings["gflops"],
                        None if name == "torch norms+mm+min" else base / t,
                        _peak_mb(impls[name], device), (min(runs[name]), max(runs[name])),
                        *_peak_pcts(rate, ceilings),
                        note=f"path {path}" if name == "ours (cpp)" and path else ""))
    return rows


def _peak_pcts(rate: float, ceilings: dict) -> tuple[float | None, float | None]:
    """``rate`` GFLOP/s as % of the measured fp32 and bf16 arithmetic peaks (None if unmeasured)."""
    return tuple(100 * rate / ceilings[key] if ceilings.get(key) else None for key in ("fp32_peak", "bf16_peak"))


def bench_sampler_step(shape: tuple[int, ...], device: torch.device, ceilings: dict,
                       repeat: int = 20) -> list[Row]:
    """Fused guidance + DDIM step vs the unfused torch chain (eta 1: with noise)."""
    from ...decoder.diffusion.ddim import cfg_combine, ddim_step_v
    from ...ops import sampler_step

    g = torch.Generator().manual_seed(1)
    x, vc, vu, z = (torch.randn(shape, generator=g).to(device) for _ in range(4))
    coeffs = dict(sqrt_ac_t=0.7, sqrt_1m_ac_t=0.71414284, a_prev=0.6, sigma=0.3)
    elems = x.numel()
    moved = 4.0 * elems * 6  # read x, v_c, v_u, noise; write x_prev, x0

    def chain():
        v = cfg_combine(vc, vu, 2.0)
        return ddim_step_v(x, v, coeffs["sqrt_ac_t"], coeffs["sqrt_1m_ac_t"], coeffs["a_prev"],
                           coeffs["sigma"], z)

    impls = {"torch unfused chain": chain}
    for b in compiled_backends(device):
        impls[f"ours ({b})"] = lambda b=b: sampler_step(x, vc, vu, z, cfg_scale=2.0, backend=b, **coeffs)
    sync = _sync(device)
    runs = {name: timed_runs(fn, repeat, sync) for name, fn in impls.items()}
    base = statistics.median(runs["torch unfused chain"])
    rows = []
    for name, r in runs.items():
        t = statistics.median(r)
        rate = moved / t / 1e9
        rows.append(Row("sampler_step", "x".join(map(str, shape)), name, t, rate, "GB/s",
                        100 * rate / ceilings["gbps"], None if name == "torch unfused chain" else base / t,
                        _peak_mb(impls[name], device), (min(r), max(r))))
    return rows


def markdown(rows: list[Row], device_name: str, ceilings: dict, threads: int, repeat: int | None = None,
             path: str | None = None) -> str:
    """The table: median of the timed runs, their min-max spread, throughput and its share of the
    measured ceilings (matmul or copy; fp32 and bf16 arithmetic peaks on the CPU). ``path``: the
    C++ nearest-centroid code path, for the header."""
    head = (f"device: {device_name}; torch threads: {threads}; measured ceilings: "
            f"{ceilings['gflops']:.1f} GFLOP/s (float32 matmul), {ceilings['gbps']:.1f} GB/s (copy)")
    if "fp32_peak" in ceilings:
        head += (f", {ceilings['fp32_peak']:.1f} GFLOP/s fp32 FMA peak, "
                 f"{ceilings['bf16_peak']:.1f} GFLOP/s bf16 dot peak")
    if repeat is not None:
        head += f"; times: median of {repeat} runs after a warm-up, (min-max)"
    if path:
        head += f"\nC++ nearest-centroid path (N=512 K=16384 D=768): {path}"
    lines = ["| op | size | implementation | median ms | spread ms | throughput | % of ceiling | "
             "% fp32 peak | % bf16 peak | speed-up vs torch | peak MB |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    pct = lambda v: "" if v is None else f"{v:.0f}%"  # noqa: E731
    for r in rows:
        sp = "1 (baseline)" if r.speedup is None else f"{r.speedup:.2f}x"
        pm = "" if r.peak_mb is None else f"{r.peak_mb:.1f}"
        spread = "" if r.spread is None else f"{1000 * r.spread[0]:.3f}-{1000 * r.spread[1]:.3f}"
        impl = r.impl + (f" [{r.note}]" if r.note else "")
        lines.append(f"| {r.op} | {r.size} | {impl} | {1000 * r.seconds:.3f} | {spread} | {r.rate:.1f} {r.unit} | "
                     f"{r.ceiling_pct:.0f}% | {pct(r.fp32_peak_pct)} | {pct(r.bf16_peak_pct)} | {sp} | {pm} |")
    return head + "\n\n" + "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys

    if len(sys.argv) == 7 and sys.argv[1] == "peak":
        _peak_child(sys.argv[2], *map(int, sys.argv[3:7]))
    else:
        sys.exit("usage: python -m semanticodec_rt.lab.bench.kernel_bench peak IMPL N K D THREADS")
