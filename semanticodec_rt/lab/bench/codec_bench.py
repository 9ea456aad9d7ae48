"""Speed, memory and latency of a model: the reference formulation and ours, side by side.

Both run in one process on the same weights and the same input:

* **reference** -- what the published inference code does: 50 DDIM steps at eta 1, guidance as
  two separate batch-1 UNet calls per step, the semantic / acoustic lookups as a full distance
  matrix (``norms + mm + min`` in torch: ``ops`` backend ``ref``);
* **ours** -- the fused nearest-centroid kernel (``ops`` auto dispatch), guidance as one batch
  of 2, and each requested step count.

Real-time factor = compute seconds / audio seconds (below 1 is faster than real time).  Peak
memory is the process's resident high-water mark (``VmHWM``, reset before each measurement via
``/proc/self/clear_refs`` on Linux; "n/a" elsewhere), or ``torch.cuda.max_memory_allocated`` on
CUDA.  Random weights are fine: speed does not depend on the weight values (denormals aside,
which are flushed).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ... import ops

#: guidance scale of the published inference code (the reference formulation)
REFERENCE_GUIDANCE = 2.0


@dataclass
class BenchRow:
    config: str
    mode: str  # "reference" or "ours"
    steps: int
    guidance: str  # "2 calls" or "batch 2"
    encode_rtf: float
    decode_rtf: float
    peak_mb: float
    latency_ms: float


def bench_audio(seconds: float, sr: int = 16000) -> torch.Tensor:
    """``[1, N]`` float32: a chirp, an amplitude-modulated tone and light noise."""
    t = torch.arange(int(seconds * sr), dtype=torch.float64) / sr
    chirp = torch.sin(2 * math.pi * (150 * t + 200 * t**2 / max(seconds, 1e-9)))
    am = 0.5 * (1 + torch.sin(2 * math.pi * 3 * t)) * torch.sin(2 * math.pi * 440 * t)
    noise = 0.01 * torch.randn(t.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return (0.3 * chirp + 0.3 * am + noise).float()[None]


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    clear = Path("/proc/self/clear_refs")
    if clear.exists():
        try:
            clear.write_text("5")  # resets the VmHWM high-water mark
        except OSError:
            pass


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _timed(fn, device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - start


def measure(codec, audio: torch.Tensor, *, reference: bool, steps: int, seed: int = 0) -> BenchRow:
    """Encode + decode ``audio`` once in one formulation and report its row."""
    device = codec.device
    seconds = audio.shape[-1] / codec.sample_rate
    _reset_peak(device)
    with ops.use_backend("ref" if reference else "auto"):
        tokens, t_enc = _timed(lambda: codec.encode(audio, codec.sample_rate), device)
    sampler = codec.cfg.sampler
    eta = 1.0 if reference else sampler.eta
    # The reference always guides (scale 2, two calls), also on a distilled student whose own
    # sampler has guidance folded in (scale 1, one call): that is the formulation it replaces.
    cfg_scale = REFERENCE_GUIDANCE if reference else sampler.cfg_scale
    _, t_dec = _timed(
        lambda: codec.decode(
            tokens, steps=steps, eta=eta, cfg_scale=cfg_scale, seed=seed, separate_guidance=reference,
            # reference: the windowing's own batching (1 window per UNet batch for the published
            # windows, as the reference code; whole unit groups on the rt grid); ours: 8 windows
            windows_per_batch=None if reference else 8,
        ),
        device,
    )
    return BenchRow(
        config=codec.cfg.name,
        mode="reference" if reference else "ours",
        # the DDIM grid can hold fewer points than asked; the speech route's flow runs as asked
        steps=len(codec.decoder.ddim(steps, eta)) if hasattr(codec.decoder, "ddim") else steps,
        guidance=("none (flow)" if not hasattr(codec.decoder, "ddim")
                  else "2 calls" if reference else ("batch 2" if cfg_scale != 1.0 else "folded (1 call)")),
        encode_rtf=t_enc / seconds,
        decode_rtf=t_dec / seconds,
        peak_mb=_peak_mb(device),
        latency_ms=codec.windowing.algorithmic_latency_ms,
    )


def run(codec, *, seconds: float, steps: list[int], reference_steps: int = 50, warmup: bool = True,
        progress=None) -> list[BenchRow]:
    """The reference row first, then one row of ours per step count."""
    audio = bench_audio(seconds, codec.sample_rate)
    if warmup:  # first calls pay for allocator growth and kernel selection
        measure(codec, bench_audio(min(seconds, 1.0), codec.sample_rate), reference=False, steps=1)
    rows = [measure(codec, audio, reference=True, steps=reference_steps)]
    if progress:
        progress(rows[-1])
    for s in steps:
        rows.append(measure(codec, audio, reference=False, steps=s))
        if progress:
            progress(rows[-1])
    return rows


def format_table(rows: list[BenchRow]) -> str:
    """Markdown table with each row's speed-up over the reference row."""
    ref = rows[0]
    lines = [
        "| config | formulation | steps | guidance | encode RTF | decode RTF | peak MB | latency ms | decode speed-up | encode speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.config} | {r.mode} | {r.steps} | {r.guidance} | {r.encode_rtf:.3f} | {r.decode_rtf:.3f} | "
            f"{r.peak_mb:.0f} | {r.latency_ms:.0f} | {ref.decode_rtf / r.decode_rtf:.2f}x | "
            f"{ref.encode_rtf / r.encode_rtf:.2f}x |"
        )
    return "\n".join(lines)
