"""Encode + decode a file with the published SemantiCodec weights, or prove the full-size graph
runs with random weights.

    # with the official checkpoints (folder laid out like the hub repo haoheliu/SemantiCodec)
    python examples/official_checkpoints.py --checkpoints DIR --token-rate 100 --vocab 32768 \
        --input speech.wav --output decoded.wav

    # the same, fetching them first into the Hugging Face cache (needs `pip install
    # huggingface_hub` and the network)
    python examples/official_checkpoints.py --download --token-rate 100 --vocab 32768 \
        --input speech.wav --output decoded.wav

    # no weights needed: full-size model, random weights, a 12 s synthetic signal
    python examples/official_checkpoints.py --random-weights --token-rate 100 --seconds 12

Random weights produce noise, not audio: that mode only checks shapes and times every stage.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semanticodec_rt.codec import SemantiCodec  # noqa: E402
from semanticodec_rt.config import SAMPLE_RATE, official_config  # noqa: E402
from semanticodec_rt.weights.official import download_official, load_official  # noqa: E402
from semanticodec_rt.windowing import official_lengths as lengths  # noqa: E402


def test_signal(seconds: float, sr: int = SAMPLE_RATE) -> torch.Tensor:
    """A chirp plus an amplitude-modulated tone plus light noise, ``[1, N]`` float32."""
    t = torch.arange(int(seconds * sr), dtype=torch.float64) / sr
    chirp = torch.sin(2 * math.pi * (100 * t + 300 * t**2 / max(seconds, 1e-9)))
    am = 0.5 * (1 + torch.sin(2 * math.pi * 3 * t)) * torch.sin(2 * math.pi * 440 * t)
    noise = 0.01 * torch.randn(t.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return (0.3 * chirp + 0.3 * am + noise).float()[None]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoints", type=Path, help="folder with the official checkpoints")
    src.add_argument("--download", action="store_true",
                     help="fetch the checkpoints of --token-rate/--vocab from the hub first "
                          "(needs huggingface_hub and the network)")
    src.add_argument("--random-weights", action="store_true", help="full-size model with random weights")
    p.add_argument("--token-rate", type=int, default=100, choices=(100, 50, 25))
    p.add_argument("--vocab", type=int, default=32768, help="semantic vocab size (4096..32768)")
    p.add_argument("--input", type=Path, help="audio file to encode (default: a synthetic signal)")
    p.add_argument("--seconds", type=float, default=12.0, help="length of the synthetic signal (s)")
    p.add_argument("--output", type=Path, help="write the decoded audio here (wav)")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps (reference: 50)")
    p.add_argument("--cfg-scale", type=float, default=2.0, help="classifier-free guidance (reference: 2)")
    p.add_argument("--seed", type=int, default=0, help="diffusion noise seed")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--device", default="cpu")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = official_config(args.token_rate, args.vocab)
    t0 = time.perf_counter()
    if args.random_weights:
        print(f"[random weights] building full-size {cfg.name}: the output is noise, not audio")
        codec = SemantiCodec.random(cfg, seed=args.seed, device=args.device)
    else:
        folder = args.checkpoints
        if args.download:
            if importlib.util.find_spec("huggingface_hub") is None:
                print("official_checkpoints: --download needs huggingface_hub: pip install huggingface_hub",
                      file=sys.stderr)
                return 1
            try:
                folder = download_official(cfg)
            except Exception as e:  # no network, hub refused: one line
                msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
                print(f"official_checkpoints: cannot fetch the checkpoints from the hub (network?): "
                      f"{type(e).__name__} {msg}", file=sys.stderr)
                return 1
            print(f"checkpoints: {folder}")
        try:
            codec = load_official(folder, args.token_rate, args.vocab, device=args.device)
        except (OSError, ValueError) as e:  # missing files, mismatched keys: one line naming them
            print(f"official_checkpoints: {e}", file=sys.stderr)
            return 1
    n_enc = sum(p.numel() for p in codec.encoder.parameters())
    n_dec = sum(p.numel() for p in codec.decoder.parameters())
    print(f"built in {time.perf_counter() - t0:.1f} s: encoder {n_enc / 1e6:.1f} M params, decoder {n_dec / 1e6:.1f} M")

    if args.input is not None:
        audio, sr = args.input, None
        print(f"input: {args.input}")
    else:
        audio, sr = test_signal(args.seconds), SAMPLE_RATE
        print(f"input: synthetic {args.seconds:g} s signal {list(audio.shape)} at {sr} Hz")

    times: dict[str, float] = {}
    t = time.perf_counter()
    tokens = codec.encode(audio, sr)
    times["encode (total)"] = time.perf_counter() - t
    times.update({f"  {k}": v for k, v in codec.last_timings.items()})
    n_win = len(lengths.decoder_windows(tokens.shape[1], args.token_rate))
    print(f"tokens: {list(tokens.shape)} int64 (semantic, acoustic) -> {n_win} decoder windows")

    t = time.perf_counter()
    wave = codec.decode(tokens, steps=args.steps, cfg_scale=args.cfg_scale, seed=args.seed, progress=True)
    times["decode (total)"] = time.perf_counter() - t
    n_steps = len(codec.decoder.ddim(args.steps, codec.cfg.sampler.eta))
    for k, v in codec.last_timings.items():
        label = f"{k} ({n_win} x {n_steps} UNet calls, CFG batch 2)" if k == "diffusion" else k
        times[f"  {label}"] = v
    print(f"waveform: {list(wave.shape)} float32, {wave.shape[-1] / SAMPLE_RATE:.2f} s, "
          f"finite={bool(torch.isfinite(wave).all())}, peak={wave.abs().max().item():.3f}")
    print(f"\nper-stage CPU times ({torch.get_num_threads()} threads, device {args.device}):")
    for k, v in times.items():
        print(f"  {k:<44s} {v:8.2f} s")
    audio_s = wave.shape[-1] / SAMPLE_RATE
    print(f"  real-time factor: encode {times['encode (total)'] / audio_s:.2f}, "
          f"decode {times['decode (total)'] / audio_s:.2f}")
    if args.output:
        import soundfile as sf

        args.output.parent.mkdir(parents=True, exist_ok=True)
        sf.write(args.output, wave[0, 0].numpy(), SAMPLE_RATE)
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
