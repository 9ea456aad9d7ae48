"""Write the package's default model from a trained checkpoint (int8 storage, <= 25 MB).

    python examples/make_default_model.py RUN/distill/model-s4.safetensors

Stores ``semanticodec_rt/assets/default.safetensors`` with :mod:`semanticodec_rt.weights.storage`
int8 rows, refuses a file over the size limit, and measures what the storage changes: the
tokens and decoded audio of the shipped example clip from the float32 and the int8 model
(identical tokens expected for most positions; the decode difference as SNR in dB).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "semanticodec_rt" / "assets" / "default.safetensors"
CLIP = ROOT / "examples" / "audio" / "speech_en_dir-instr.flac"
LIMIT_MB = 25.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path, help="checkpoint of the model to ship (float32 or float16)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--storage", default="int8", choices=("int8", "float16"))
    ap.add_argument("--steps", type=int, metavar="N",
                    help="the shipped sampler's default step count (a measured choice, e.g. the flow steps "
                         "of the speech route that eval scored best); default: the checkpoint's")
    ap.add_argument("--keep-float16", action="append", default=[], metavar="PREFIX",
                    help="with int8 storage, keep the tensors under this key prefix float16 "
                         "(repeatable; e.g. encoder.encoder. for the acoustic LSTM)")
    args = ap.parse_args(argv)

    from semanticodec_rt.audio.load import load_waveform
    from semanticodec_rt.weights import checkpoint

    src = checkpoint.load(args.model)
    # what the source says of itself (a speech export: recipe, CPU time, FARGAN provenance) stays
    carried = {k[len("user."):]: v for k, v in checkpoint.read_metadata(args.model).items() if k.startswith("user.")}
    if args.steps is not None and args.steps != src.cfg.sampler.steps:
        import dataclasses

        src.cfg = dataclasses.replace(src.cfg, sampler=src.cfg.sampler.resolve(args.steps))
        print(f"sampler default: {args.steps} steps")
    sha = checkpoint.save(src, args.out, storage=args.storage, keep_float16=tuple(args.keep_float16),
                          metadata={**carried, "source": args.model.name, "source_sha": src.model_sha})
    mb = args.out.stat().st_size / 1e6
    kept = f", float16 under {', '.join(args.keep_float16)}" if args.keep_float16 else ""
    print(f"{args.out}: {mb:.2f} MB ({args.storage}{kept}), model {sha}, config {src.cfg.name}")
    if mb > LIMIT_MB:
        args.out.unlink()
        print(f"ERROR: {mb:.2f} MB is over the {LIMIT_MB} MB limit; removed", file=sys.stderr)
        return 1
    small = checkpoint.load(args.out)
    audio = load_waveform(CLIP)[0]
    tok_a, tok_b = src.encode(audio), small.encode(audio)
    same = (tok_a == tok_b).float().mean(dim=(0, 1))
    wave_a, wave_b = src.decode(tok_a, seed=0), small.decode(tok_a, seed=0)
    snr = 10 * torch.log10(wave_a.pow(2).sum() / (wave_a - wave_b).pow(2).sum().clamp(min=1e-20))
    print(f"{CLIP.name}: tokens equal to float32's: semantic {same[0]:.1%}, acoustic {same[1]:.1%}; "
          f"decode of the same tokens, {args.storage} vs float32: SNR {float(snr):.1f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
