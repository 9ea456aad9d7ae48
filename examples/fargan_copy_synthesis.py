"""FARGAN copy synthesis of an eval set: the ceiling of any codec that decodes through FARGAN.

    python examples/fargan_copy_synthesis.py --ref /work/data/core --out runs/fargan-copy \
        [--split test] [--classes speech] [--max-clips N]
    semanticodec-rt eval --ref /work/data/core --decoded runs/fargan-copy --label fargan-copy \
        --classes speech --baselines codec2:1400,codec2:700C,opus:6,nolace:6

Each reference clip goes through opus's feature analysis (``fargan_demo -features`` of the
Debian opus 1.5.2 build, fetched and built on first use) and back through our C++ FARGAN kernel
with the shipped weights, unquantised: no token, no bit is involved.  The decoded files keep the
clips' relative paths (``OUT/<rel>.wav``), which is what ``eval --decoded`` matches; the first
5 frames (50 ms) only prime the vocoder and are written as silence, so every file has the
reference's length and a constant delay that eval's alignment removes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ref", type=Path, required=True, help="corpus folder or manifest (as eval --ref)")
    ap.add_argument("--out", type=Path, required=True, help="folder for the decoded files")
    ap.add_argument("--split", default=None, help="manifest split (default test, as eval)")
    ap.add_argument("--classes", default="speech", help="comma-separated classes (default speech)")
    ap.add_argument("--max-clips", type=int, help="at most N clips, balanced over classes (as eval)")
    args = ap.parse_args()

    import soundfile as sf
    import torch

    from semanticodec_rt.decoder.synthesis.fargan import FRAME, PRIME_FRAMES
    from semanticodec_rt.lab.data import DataError, opus_source
    from semanticodec_rt.lab.eval import EvalError
    from semanticodec_rt.lab.eval.run import find_clips
    from semanticodec_rt.weights.fargan import load_fargan

    try:
        root, clips, _ = find_clips(args.ref, args.split, [c for c in args.classes.split(",") if c],
                                    args.max_clips)
        opus_source.tools()
    except (EvalError, DataError) as e:
        print(f"fargan_copy_synthesis: {e}", file=sys.stderr)
        return 1
    kernel = load_fargan().kernel()
    t0, audio_s = time.perf_counter(), 0.0
    for clip in clips:
        x, sr = sf.read(str(root / clip.rel), dtype="int16")
        if x.ndim != 1 or sr != 16000:
            print(f"fargan_copy_synthesis: {clip.rel}: expected 16 kHz mono, skipped", file=sys.stderr)
            continue
        feats = torch.from_numpy(opus_source.fargan_features(x))
        y = np.zeros(len(x), np.float32)
        if len(feats) > PRIME_FRAMES:
            kernel.prime(feats[:PRIME_FRAMES, :20].contiguous())
            pcm = kernel.synthesize(feats[PRIME_FRAMES:]).numpy()
            start = PRIME_FRAMES * FRAME
            y[start : start + len(pcm)] = pcm[: len(x) - start]
        dst = (args.out / clip.rel).with_suffix(".wav")
        dst.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(dst), np.clip(y, -1.0, 1.0), 16000, subtype="PCM_16")
        audio_s += len(x) / 16000
    dt = time.perf_counter() - t0
    print(f"{len(clips)} clips, {audio_s:.1f} s of audio in {dt:.1f} s (analysis + synthesis RTF "
          f"{dt / max(audio_s, 1e-9):.3f}) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
