"""Code an eval set with one model into a folder, for an ``eval --decoded`` row.

    python examples/decode_set.py --ref /work/data/core --model old.safetensors --out runs/old \
        [--split test] [--classes speech] [--steps N] [--threads 1] [--route auto|speech|general]
    semanticodec-rt eval --ref /work/data/core --classes speech --decoded runs/old=old-default@1.3 ...

For a model that one eval run cannot hold next to another (eval codes with one ``--model``):
e.g. the previous default beside the new one.  Each clip goes through ``encode`` + ``decode``
of the loaded model (loaded once) and is written as ``OUT/<rel>.wav`` at its own length, the
layout ``eval --decoded`` matches.  Prints the clips, the seconds and the real-time factor.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ref", type=Path, required=True, help="corpus folder or manifest (as eval --ref)")
    ap.add_argument("--model", required=True, help="model spec (a checkpoint path, as --model elsewhere)")
    ap.add_argument("--out", type=Path, required=True, help="folder for the decoded files")
    ap.add_argument("--split", default=None, help="manifest split (default test, as eval)")
    ap.add_argument("--classes", default="speech", help="comma-separated classes (default speech)")
    ap.add_argument("--max-clips", type=int, help="at most N clips, balanced over classes (as eval)")
    ap.add_argument("--steps", type=int, help="decoder steps (default: the model's)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--max-seconds", type=float, default=0.0,
                    help="code only each clip's first S seconds, as eval --max-seconds scores them (default 0: whole)")
    ap.add_argument("--route", choices=("auto", "speech", "general"),
                    help="force a route of a general-route model (default: its router, auto)")
    args = ap.parse_args()

    import numpy as np
    import soundfile as sf
    import torch
    from tqdm import tqdm

    import semanticodec_rt as sc
    from semanticodec_rt.lab.eval import EvalError
    from semanticodec_rt.lab.eval.run import find_clips

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    try:
        root, clips, _ = find_clips(args.ref, args.split, [c for c in args.classes.split(",") if c], args.max_clips)
    except EvalError as e:
        print(f"decode_set: {e}", file=sys.stderr)
        return 1
    codec = sc.load_model(args.model)
    if args.route is not None:
        codec.decoder.route = args.route
    t0, seconds = time.perf_counter(), 0.0
    for clip in tqdm(clips, desc="decode_set", unit="clip"):
        x, sr = sf.read(str(root / clip.rel), dtype="float32")
        if args.max_seconds:
            x = x[: int(args.max_seconds * sr)]
        wave = torch.from_numpy(np.atleast_2d(x if x.ndim == 1 else x[:, 0]))
        tokens = codec.encode(wave, sr)
        y = codec.decode(tokens, steps=args.steps, n_samples=wave.shape[-1])[0, 0].numpy()
        dst = (args.out / clip.rel).with_suffix(".wav")
        dst.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(dst), np.clip(y, -1.0, 1.0), 16000, subtype="PCM_16")
        seconds += len(x) / sr
    dt = time.perf_counter() - t0
    print(f"{len(clips)} clips, {seconds:.1f} s of audio in {dt:.1f} s (RTF {dt / max(seconds, 1e-9):.3f}) "
          f"with {codec.cfg.name} ({codec.model_sha}) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
