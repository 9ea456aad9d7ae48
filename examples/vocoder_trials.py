"""Vocoder trials for the general-audio route: build the crop cache, train a candidate under a
CPU budget, copy-synthesise an eval set with it, count its GFLOP per second of audio.

    python examples/vocoder_trials.py cache --ref /work/data/core --out runs/vt
    python examples/vocoder_trials.py train istft --cache runs/vt --out runs/vt/istft --budget-h 1
    python examples/vocoder_trials.py copy istft --weights runs/vt/istft/final.safetensors \
        --ref /work/data/core --classes music,sfx --max-clips 30 --max-seconds 10 --out runs/vt/copy-istft
    python examples/vocoder_trials.py flops
    semanticodec-rt eval --ref /work/data/core --classes music,sfx --max-clips 30 --max-seconds 10 \
        --decoded runs/vt/copy-istft=istft-copy --metrics stoi,visqol,visqol_audio,logmel

Candidates (semanticodec_rt.lab.train.vocoder_trial): istft (Vocos-like iSTFT head), hnm
(harmonic-plus-noise source, learnt filter), hifigan-gan (the previous default's HiFi-GAN with
its GAN phase).  ``train`` resumes where a stopped run left off (same command).  ``copy`` feeds
the true log-mel (and opus's pitch features) of each clip to the generator: no token is
involved, so its scores bound any codec that decodes through that vocoder.  Decoded files keep
the clips' relative paths, which ``eval --decoded`` matches.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def _cache(args) -> int:
    from semanticodec_rt.lab.train.vocoder_trial import build_cache

    print(build_cache(args.ref, args.out, crops=args.crops, seconds=args.seconds))
    return 0


def _train(args) -> int:
    import torch

    from semanticodec_rt.lab.train.vocoder_trial import train

    torch.set_num_threads(args.threads)
    print(train(args.candidate, args.cache, args.out, args.budget_h * 3600))
    return 0


def _copy(args) -> int:
    import soundfile as sf
    import torch
    from tqdm import tqdm

    from semanticodec_rt.audio.mel import HOP, log_mel
    from semanticodec_rt.lab.data import opus_source
    from semanticodec_rt.lab.eval.run import find_clips
    from semanticodec_rt.lab.train.vocoder_trial import load_generator

    torch.set_num_threads(args.threads)
    root, clips, _ = find_clips(args.ref, args.split, [c for c in args.classes.split(",") if c], args.max_clips)
    cand = load_generator(args.candidate, args.weights)
    gen = torch.Generator().manual_seed(0)
    t0, audio_s = time.perf_counter(), 0.0
    for clip in tqdm(clips, desc=f"copy {args.candidate}"):
        x, sr = sf.read(str(root / clip.rel), dtype="float32", always_2d=True)
        x = x[:, 0]
        if sr != 16000:
            print(f"{clip.rel}: expected 16 kHz, skipped", file=sys.stderr)
            continue
        if args.max_seconds:
            x = x[: int(args.max_seconds * sr)]
        n = len(x)
        xp = np.pad(x, (0, (-n) % HOP))
        wave = torch.from_numpy(xp)[None]
        pcm = np.clip(np.round(xp * 32767), -32768, 32767).astype(np.int16)
        frames = len(xp) // HOP
        pitch = np.zeros((frames, 2), np.float32)
        f = opus_source.fargan_features(pcm)[:, 18:20]
        pitch[: len(f)] = f[:frames]
        with torch.no_grad():
            mel = log_mel(wave)
            noise = torch.randn(wave.shape, generator=gen)
            y = cand.synthesize(mel, torch.from_numpy(pitch)[None], noise)[0, :n].numpy()
        dst = (args.out / clip.rel).with_suffix(".wav")
        dst.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(dst), np.clip(y, -1.0, 1.0), 16000, subtype="PCM_16")
        audio_s += n / 16000
    dt = time.perf_counter() - t0
    print(f"{len(clips)} clips, {audio_s:.1f} s of audio in {dt:.1f} s (RTF {dt / max(audio_s, 1e-9):.3f}, "
          f"mel + pitch analysis included) -> {args.out}")
    return 0


def _flops(args) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from semanticodec_rt.lab.train.vocoder_trial import CANDIDATES, HiFiGANCandidate, make_candidate

    torch.set_num_threads(1)
    mel, pitch, noise = torch.randn(1, 100, 64) - 4, torch.zeros(1, 100, 2), torch.randn(1, 16000)
    for name in CANDIDATES:
        if name == "hifigan-gan" and not HiFiGANCandidate.start_from.exists():
            print(f"{name}: {HiFiGANCandidate.start_from} missing, skipped")
            continue
        cand = make_candidate(name)
        cand.generator.eval()
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            cand.synthesize(mel, pitch, noise)
        with torch.no_grad():
            cand.synthesize(mel, pitch, noise)
            t = time.perf_counter()
            for _ in range(5):
                cand.synthesize(mel, pitch, noise)
            dt = (time.perf_counter() - t) / 5
        params = sum(p.numel() for p in cand.generator.parameters())
        print(f"{name}: {fc.get_total_flops() / 1e9:.2f} GFLOP per second of audio (matmul/conv), "
              f"{params / 1e6:.2f} M parameters, RTF {dt:.3f} on one thread (torch)")
    from semanticodec_rt.decoder.synthesis.fargan import NB_FEATURES, PRIME_FRAMES
    from semanticodec_rt.weights.fargan import load_fargan

    fargan = load_fargan()
    feats = torch.zeros(1, 100, NB_FEATURES)
    state = fargan.prime(torch.zeros(1, PRIME_FRAMES, NB_FEATURES))
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        fargan(feats, state)
    kernel = fargan.kernel()
    kernel.prime(torch.zeros(PRIME_FRAMES, NB_FEATURES))
    t = time.perf_counter()
    for _ in range(5):
        kernel.synthesize(feats[0].contiguous())
    dt = (time.perf_counter() - t) / 5
    params = sum(v.numel() for v in fargan.state_dict().values())  # stored as buffers
    print(f"fargan: {fc.get_total_flops() / 1e9:.2f} GFLOP per second of audio (matmul/conv, torch twin), "
          f"{params / 1e6:.2f} M parameters, RTF {dt:.3f} on one thread (C++ kernel)")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("cache", help="crops of the train split with pitch features")
    c.add_argument("--ref", required=True, help="corpus folder")
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--crops", type=int, default=2400)
    c.add_argument("--seconds", type=float, default=2.0)
    t = sub.add_parser("train", help="train one candidate under a CPU budget (resumes)")
    t.add_argument("candidate")
    t.add_argument("--cache", type=Path, required=True)
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--budget-h", type=float, default=1.0, help="CPU hours (process time)")
    t.add_argument("--threads", type=int, default=1)
    p = sub.add_parser("copy", help="copy synthesis of an eval set")
    p.add_argument("candidate")
    p.add_argument("--weights", type=Path, required=True)
    p.add_argument("--ref", required=True)
    p.add_argument("--split", default=None)
    p.add_argument("--classes", default="music,sfx")
    p.add_argument("--max-clips", type=int)
    p.add_argument("--max-seconds", type=float, default=10.0, help="cut clips as eval --max-seconds (0: whole)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--threads", type=int, default=1)
    sub.add_parser("flops", help="GFLOP per second of audio and one-thread RTF of each candidate")
    args = ap.parse_args()
    return {"cache": _cache, "train": _train, "copy": _copy, "flops": _flops}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
