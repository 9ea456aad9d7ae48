"""Size, compute and speed of the real-time presets (random weights: speed, not quality).

    python examples/rt_presets_report.py                 # every rt preset, 8 s signal, 2 threads
    python examples/rt_presets_report.py --family rt-small --rates 100 --seconds 20

Per preset: parameters used at inference, FLOPs per second of audio (torch's FlopCounter for
the network ops plus the LSTM counted by hand, which FlopCounter misses), the algorithmic
latency, and the measured real-time factor of *streaming* encode + decode (10 ms input
blocks, one decoder window per unit, batch 1) on this machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semanticodec_rt import StreamingDecoder, StreamingEncoder  # noqa: E402
from semanticodec_rt.codec import SemantiCodec  # noqa: E402
from semanticodec_rt.config import RT_FAMILIES, TOKEN_RATES, rt_config  # noqa: E402


def lstm_flops_per_token(cfg) -> float:
    """2 * 4H * (input + H) multiply-adds per layer and token."""
    h, x, total = cfg.lstm_hidden, 2 * cfg.feature_dim, 0.0
    for _ in range(cfg.acoustic.lstm_layers):
        total += 2 * 4 * h * (x + h)
        x = h
    return total


def flops_per_second(codec, steps: int, cfg_scale: float) -> tuple[float, float]:
    """(encode, decode) GFLOP per second of audio, measured on 4 s of noise."""
    cfg = codec.cfg
    x = 0.1 * torch.randn(1, 4 * 16000)
    with FlopCounterMode(display=False) as fc:
        tokens = codec.encode(x, 16000)
    enc = fc.get_total_flops() + tokens.shape[1] * lstm_flops_per_token(cfg)
    with FlopCounterMode(display=False) as fc:
        codec.decode(tokens, steps=steps, cfg_scale=cfg_scale)
    return enc / 4 / 1e9, fc.get_total_flops() / 4 / 1e9


def streaming_rtf(codec, seconds: float, steps: int, cfg_scale: float) -> tuple[float, float]:
    """Real-time factors of streaming encode and decode, 10 ms blocks, batch 1."""
    x = 0.1 * torch.randn(1, int(seconds * 16000))
    enc, dec = StreamingEncoder(codec), StreamingDecoder(codec, steps=steps, cfg_scale=cfg_scale)
    t_enc = t_dec = 0.0
    for i in range(0, x.shape[1], 160):
        t = time.perf_counter()
        tok = enc.push(x[:, i : i + 160])
        t_enc += time.perf_counter() - t
        t = time.perf_counter()
        dec.push(tok)
        t_dec += time.perf_counter() - t
    t = time.perf_counter()
    tok = enc.flush()
    t_enc += time.perf_counter() - t
    t = time.perf_counter()
    dec.push(tok)
    dec.flush()
    t_dec += time.perf_counter() - t
    return t_enc / seconds, t_dec / seconds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--family", choices=RT_FAMILIES, action="append", help="default: all")
    p.add_argument("--rates", type=int, nargs="+", default=list(TOKEN_RATES))
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--seconds", type=float, default=8.0, help="length of the timed stream")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--cfg-scale", type=float, default=2.0, help="1 = guidance folded in (one branch)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    # Random weights drive some activations into denormal floats, which are ~20x slower on CPU.
    torch.set_flush_denormal(True)
    print(f"{args.threads} threads, {args.steps} steps, cfg_scale {args.cfg_scale} "
          f"({'batch 2' if args.cfg_scale != 1 else 'batch 1'} per UNet call), random weights\n")
    print("| preset | params enc / dec (M) | GFLOP per s audio enc / dec | latency ms | streaming RTF enc / dec / total |")
    print("|---|---|---|---|---|")
    for fam in args.family or RT_FAMILIES:
        for rate in args.rates:
            cfg = rt_config(fam, rate, args.vocab)
            codec = SemantiCodec.random(cfg, seed=0)
            n_enc = sum(p.numel() for p in codec.encoder.parameters()) / 1e6
            n_dec = sum(p.numel() for p in codec.decoder.parameters()) / 1e6
            f_enc, f_dec = flops_per_second(codec, args.steps, args.cfg_scale)
            streaming_rtf(codec, 1.0, args.steps, args.cfg_scale)  # warm-up
            r_enc, r_dec = streaming_rtf(codec, args.seconds, args.steps, args.cfg_scale)
            print(f"| {cfg.name} | {n_enc:.2f} / {n_dec:.2f} | {f_enc:.2f} / {f_dec:.2f} | "
                  f"{codec.windowing.algorithmic_latency_ms:.0f} | {r_enc:.3f} / {r_dec:.3f} / {r_enc + r_dec:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
