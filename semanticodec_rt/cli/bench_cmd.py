"""``bench``: speed of the reference formulation vs ours, on one model (:mod:`semanticodec_rt.lab.bench.codec_bench`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import FORMATTER, MODEL_HELP, CliError, load_codec, positive_int, say

_BENCH_DESCRIPTION = """\
Time encode + decode of one model in two formulations, in one process, on the same weights and
input: the reference (50 DDIM steps at eta 1, guidance as two UNet calls per step, lookups as a
full distance matrix) and ours (fused nearest-centroid kernel, guidance as one batch) at each
--steps count.  Prints real-time factors (compute s per audio s), peak memory, algorithmic
latency and the speed-up over the reference.  Random weights are fine for speed."""
_BENCH_EPILOG = """\
examples:
  semanticodec-rt bench --quick
  semanticodec-rt bench --model preset:official-r100-v32768 --random-weights-ok --steps 1,4,10 --seconds 12
  semanticodec-rt bench --model model.safetensors --steps 1,2,4 --threads 1"""


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="speed of the reference formulation vs ours",
                       description=_BENCH_DESCRIPTION, epilog=_BENCH_EPILOG, formatter_class=FORMATTER)
    p.set_defaults(func=cmd_bench)
    p.add_argument("--model", metavar="SPEC", help=MODEL_HELP)
    p.add_argument("--random-weights-ok", action="store_true",
                   help="allow --model preset:NAME (random weights are fine for timing)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the model runs")
    p.add_argument("--steps", default="1,2,4,10,50", metavar="LIST",
                   help="our step counts (default 1,2,4,10,50; 0 = the speech route's regression path alone)")
    p.add_argument("--reference-steps", type=positive_int, default=50, metavar="N",
                   help="DDIM steps of the reference formulation (default 50, as published)")
    p.add_argument("--seconds", type=float, default=12.0, metavar="S", help="length of the test signal")
    p.add_argument("--threads", type=positive_int, metavar="N", help="torch CPU threads")
    p.add_argument("--quick", action="store_true",
                   help="a few seconds: rt-tiny with random weights (unless --model), 2 s, steps 1, reference 4")
    p.add_argument("--out", metavar="FILE.md", help="also write the table here")
    p.add_argument("-q", "--quiet", action="store_true", help="only the table and the ratio line")


def cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from ..lab.bench import codec_bench as bench

    try:
        steps = [int(x) for x in args.steps.split(",") if x.strip()]
    except ValueError:
        raise CliError(f"--steps: expected comma-separated integers, got {args.steps!r}") from None
    if not steps or min(steps) < 0:
        raise CliError("--steps: give at least one step count >= 0 (0: the speech route's regression path)")
    seconds, ref_steps = args.seconds, args.reference_steps
    if args.quick:
        if args.model is None:
            args.model, args.random_weights_ok = "preset:rt-tiny-r100", True
        seconds, steps, ref_steps = min(seconds, 2.0), [1], min(ref_steps, 4)
    if seconds <= 0:
        raise CliError("--seconds must be > 0")
    codec = load_codec(args)  # sets --threads
    say(args, f"bench {codec.cfg.name} on {args.device}, {torch.get_num_threads()} threads, {seconds:g} s signal")
    rows = bench.run(codec, seconds=seconds, steps=steps, reference_steps=ref_steps,
                     progress=lambda r: say(args, f"  {r.mode} {r.steps} steps: decode RTF {r.decode_rtf:.3f}"))
    table = bench.format_table(rows)
    best = min(rows[1:], key=lambda r: r.decode_rtf)
    ratio = (f"ratio: decode {rows[0].decode_rtf / best.decode_rtf:.2f}x faster than the reference "
             f"({best.steps} steps vs {rows[0].steps}, guidance batched vs 2 calls); encode "
             f"{rows[0].encode_rtf / best.encode_rtf:.2f}x")
    print(table)
    print(ratio)
    if args.out:
        Path(args.out).write_text(table + "\n\n" + ratio + "\n")
    return 0
