"""Round trip of the shipped example clip through the default model (what ``make demo`` runs).

audio -> ``semanticodec-rt encode`` -> .scrt file -> ``semanticodec-rt decode`` -> wav, then a
spectrogram PNG (original above decoded) and one summary line: model, bitrate, file sizes,
encode / decode real-time factors on this machine.

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
    ap.add_argument("--model", help="--model SPEC of the codec commands (default: the shipped model)")
    ap.add_argument("--steps", type=int, help="decoder steps (default: the model's)")
    args = ap.parse_args(argv)

    import numpy as np

    from semanticodec_rt.bitstream import read_scrt
    from semanticodec_rt.cli import main as cli
    from semanticodec_rt.lab.eval.report import spectrogram_figure
    from semanticodec_rt.audio.load import load_waveform

    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.input.stem
    scrt, wav, png = args.out / f"{stem}.scrt", args.out / f"{stem}_decoded.wav", args.out / f"{stem}_spectrogram.png"
    model = ["--model", args.model] if args.model else []
    t0 = time.perf_counter()
    if cli(["encode", str(args.input), str(scrt), "-f", "-q", *model]) != 0:
        return 1
    t1 = time.perf_counter()
    steps = ["--steps", str(args.steps)] if args.steps else []
    if cli(["decode", str(scrt), str(wav), "-f", "-q", *model, *steps]) != 0:
        return 1
    t2 = time.perf_counter()

    original = load_waveform(args.input)[0][0].numpy()
    decoded = load_waveform(wav)[0][0].numpy()
    seconds = len(original) / 16000
    info = read_scrt(scrt)[0]
    kbps = scrt.stat().st_size * 8 / seconds / 1000
    spectrogram_figure(png, f"{stem}: {info.config} round trip", original,
                       {"decoded": (decoded[: len(original)], info.payload_bps / 1000)})
    print(f"model {info.config} (config sha {info.model}); {seconds:.2f} s of audio")
    print(f"tokens: {scrt} ({scrt.stat().st_size} bytes, {kbps:.2f} kbit/s with the header; "
          f"payload {info.payload_bps / 1000:.2f} kbit/s)")
    print(f"decoded: {wav}; spectrogram: {png}")
    print(f"encode RTF {(t1 - t0) / seconds:.3f}, decode RTF {(t2 - t1) / seconds:.3f} "
          f"(wall clock incl. model loading, this machine)")
    peak = float(np.abs(decoded).max()) if decoded.size else 0.0
    if not np.isfinite(decoded).all() or peak == 0.0:
        print("ERROR: the decoded audio is empty or not finite", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
