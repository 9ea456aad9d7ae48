"""Kernel microbenchmarks: a table per backend and size, with speed-ups over the torch
formulations the reference code uses (see semanticodec_rt/lab/bench/kernel_bench.py for the method).

    python examples/kernel_bench.py --quick            # CPU, headline + shipped-model sizes, ~1 minute
    python examples/kernel_bench.py --device cuda      # full grid on a GPU, + CUDA-graph window decode
    python examples/kernel_bench.py --out BENCHMARKS.md

Every time is the median of --repeat (>= 5) runs after a warm-up, with the min-max spread; on the
CPU the table also gives the share of the measured fp32 FMA and bf16 dot-product peaks, and the
header the C++ nearest-centroid code path (avx512 / avx2 / portable; SCRT_NC_PATH forces one).

Sizes (full grid): nearest centroid N in {64, 512, 4096} x K in {4096, 8192, 16384, 32768} x
D in {768, 1536, 3072} and the shipped model's sizes; the sampler step on the rt latent (8 x 8 x 16, batch 2 and 16) and the
official one (8 x 256 x 16, batch 2).  --quick: N=512, K in {4096, 16384}, D=768, plus
N=64/K=8192/D=1536, the shipped model's semantic codebook (K=4096, D=192: N=1, one streaming
step; N=250, 10 s of positions at 25 per second) and the step sizes.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from semanticodec_rt.lab.bench import kernel_bench as B

FULL_NC = [(n, k, d) for n in (64, 512, 4096) for k in (4096, 8192, 16384, 32768) for d in (768, 1536, 3072)]
# The shipped model (semanticodec_rt/assets/default.safetensors, sp-small-r50) looks up a
# [4096, 192] semantic codebook: one query per stream per 40 ms step (N=1); N=250 is 10 s of
# positions at once (what k-means training assigns per batch, or 250 streams stepped together).
SHIPPED_NC = [(1, 4096, 192), (250, 4096, 192)]
QUICK_NC = [(512, 4096, 768), (512, 16384, 768), (64, 8192, 1536), *SHIPPED_NC]
STEP_SHAPES = [(2, 8, 8, 16), (16, 8, 8, 16), (2, 8, 256, 16)]


def graph_window_rows(device: torch.device, repeat: int) -> list[B.Row]:
    """One rt-small decoder window, 4 steps with guidance: eager loop vs CUDA-graph replay."""
    from semanticodec_rt.codec import SemantiCodec
    from semanticodec_rt.config import rt_config
    from semanticodec_rt.decoder.diffusion.ddim import sample
    from semanticodec_rt.decoder.diffusion.graph import GraphedSampler

    codec = SemantiCodec.random(rt_config("rt-small", 100), device=device)
    dec = codec.decoder
    sched = dec.ddim(4, 0.0)
    x_shape, c_shape = (1, *dec.latent_shape), (1, codec.windowing.decoder_window_tokens, codec.cfg.context_dim)
    x, cond, uncond = torch.randn(x_shape, device=device), torch.randn(c_shape, device=device), torch.randn(c_shape, device=device)
    sac, s1m = dec.sqrt_alphas_cumprod.cpu(), dec.sqrt_one_minus_alphas_cumprod.cpu()
    graphed = GraphedSampler(dec._denoise, sched, sac, s1m, x_shape, c_shape, device=device)

    @torch.no_grad()
    def eager():
        return sample(dec._denoise, cond, uncond, x, sched, sac, s1m, fused=True)

    sync = lambda: torch.cuda.synchronize(device)  # noqa: E731
    te = B.median_time(eager, repeat, sync)
    tg = B.median_time(lambda: graphed(x, cond, uncond), repeat, sync)
    return [B.Row("rt window, 4 steps", "rt-small 1x8x8x16", "eager (fused steps)", te, 1 / te, "windows/s", 0.0, None),
            B.Row("rt window, 4 steps", "rt-small 1x8x8x16", "CUDA graph replay", tg, 1 / tg, "windows/s", 0.0, te / tg)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--quick", action="store_true", help="headline sizes only")
    ap.add_argument("--threads", type=int, default=2, help="torch / OpenMP threads on the CPU (default 2)")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per measurement (median; at least 5)")
    ap.add_argument("--no-peak", action="store_true", help="skip the CPU peak-memory subprocesses")
    ap.add_argument("--out", help="also write the table (Markdown) to this file")
    args = ap.parse_args()
    if args.repeat < 5:
        ap.error("--repeat must be at least 5 (the table reports a median and a spread)")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or platform.machine()} CPU"
    from semanticodec_rt import ops

    print(f"backends built: {', '.join(ops.available_backends())}; {ops.build_info()}", flush=True)
    path = B.nearest_centroid_path() if device.type == "cpu" else None
    if path:
        print(f"C++ nearest-centroid path: {path} (from N=16 up; smaller N: avx2 or portable)", flush=True)
    t0 = time.time()
    ceilings = B.measured_ceilings(device, threads=args.threads)
    rows: list[B.Row] = []
    for n, k, d in (QUICK_NC if args.quick else FULL_NC + SHIPPED_NC):
        rows += B.bench_nearest_centroid(n, k, d, device, ceilings, repeat=args.repeat)
        print(f"  nearest_centroid N={n} K={k} D={d} done", flush=True)
    for shape in STEP_SHAPES:
        rows += B.bench_sampler_step(shape, device, ceilings, repeat=max(20, args.repeat))
    if device.type == "cuda":
        rows += graph_window_rows(device, max(20, args.repeat))
    table = B.markdown(rows, name, ceilings, args.threads, args.repeat, path)
    extra = ""
    if device.type == "cpu" and not args.no_peak:
        n, k, d = 512, 16384, 768
        peaks = {impl: B.cpu_peak_mb(impl, n, k, d, args.threads) for impl in ("torch", "cdist", "cpp")}
        extra = (f"\npeak extra resident memory of one call at N={n} K={k} D={d} (fresh process each): "
                 + ", ".join(f"{i} {v:.1f} MB" for i, v in peaks.items()) + "\n")
    head = [r for r in rows if r.op == "nearest_centroid" and r.size == "N=512 K=16384 D=768" and r.impl.startswith("ours")]
    ratio = "".join(f"\nratio: {r.impl} is {r.speedup:.2f}x faster than torch norms+mm+min at N=512 K=16384 D=768"
                    for r in head)
    shipped = [r for r in rows if r.op == "nearest_centroid" and r.impl.startswith("ours")
               and r.size in {f"N={n} K={k} D={d}" for n, k, d in SHIPPED_NC}]
    ratio += "".join(f"\nratio at the shipped model's size {r.size}: {r.impl} is {r.speedup:.2f}x torch norms+mm+min"
                     for r in shipped)
    text = table + extra + ratio + f"\n\n({time.time() - t0:.0f} s)\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
