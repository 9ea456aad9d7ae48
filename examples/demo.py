"""Round trip of the shipped example clip through the default model (what ``make demo`` runs).

Uses the library front door: ``sc.load_model`` (once), ``sc.compress`` (audio -> .scrt file),
``sc.decompress`` (.scrt file -> wav), then a spectrogram PNG (original above decoded) and a
summary: model, bitrate, file sizes, model load time, and the encode / decode real-time
factors on this machine (1 torch thread, model loading excluded).

    python examples/demo.py                      # default model, examples/audio clip, out/
    python examples/demo.py --model run/model.safetensors --input my.wav --out out/mine
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_CLIP = HERE / "audio" / "speech_en_dir-instr.flac"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", type=Path, default=DEFAULT_CLIP, help=f"audio file (default {DEFAULT_CLIP.name})")
    ap.add_argument("--out", type=Path, default=Path("out"), help="output folder (default out/)")
    ap.add_argument("--model", help="model spec (sc.load_model): a checkpoint path, official:DIR[:RATE[:VOCAB]] "
                    "or preset:NAME (random weights); default: the shipped model")
    ap.add_argument("--steps", type=int, help="decoder steps (default: the model's)")
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    import semanticodec_rt as sc
    from semanticodec_rt.audio.load import load_waveform
    from semanticodec_rt.lab.eval.report import spectrogram_figure

    torch.set_num_threads(1)  # these small per-window tensors run faster on one thread
    torch.set_flush_denormal(True)  # denormal floats make the small models' CPU kernels ~20x slower

    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.input.stem
    scrt, wav, png = args.out / f"{stem}.scrt", args.out / f"{stem}_decoded.wav", args.out / f"{stem}_spectrogram.png"
    try:
        t0 = time.perf_counter()
        codec = sc.load_model(args.model, random_weights_ok=str(args.model).startswith("preset:"))
        t1 = time.perf_counter()
        info = sc.compress(args.input, codec, out=scrt)
        t2 = time.perf_counter()
        sc.decompress(scrt, codec, out=wav, steps=args.steps)
        t3 = time.perf_counter()
    except (OSError, ValueError) as e:  # a missing file, a bad model spec or stream: one line
        print(f"demo: error: {e}", file=sys.stderr)
        return 1

    original = load_waveform(args.input)[0][0].numpy()
    decoded = load_waveform(wav)[0][0].numpy()
    seconds = len(original) / 16000
    kbps = scrt.stat().st_size * 8 / seconds / 1000
    spectrogram_figure(png, f"{stem}: {info.config} round trip", original,
                       {"decoded": (decoded[: len(original)], info.payload_bps / 1000)})
    print(f"model {info.config} (model sha {info.model}) loaded in {t1 - t0:.2f} s; {seconds:.2f} s of audio")
    print(f"tokens: {scrt} ({scrt.stat().st_size} bytes, {kbps:.2f} kbit/s with the header; "
          f"payload {info.payload_bps / 1000:.2f} kbit/s)")
    print(f"decoded: {wav}; spectrogram: {png}")
    print(f"encode RTF {(t2 - t1) / seconds:.3f}, decode RTF {(t3 - t2) / seconds:.3f} "
          f"(wall clock, 1 torch thread, model loading excluded, this machine)")
    peak = float(np.abs(decoded).max()) if decoded.size else 0.0
    if not np.isfinite(decoded).all() or peak == 0.0:
        print("ERROR: the decoded audio is empty or not finite", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
