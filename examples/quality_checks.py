"""Quality checks of a trained run (issue 5): token probes and copy-synthesis decodes.

1. Linear probes (speech/music/sfx, language, package) from semantic ids vs acoustic ids on
   the corpus (train split -> test split); table to stdout and OUT/probes.{md,json}.
2. Copy synthesis of every test clip (VAE + vocoder, and vocoder alone) into OUT/copy-*/ with
   the corpus's relative paths, ready for
   ``semanticodec-rt eval --ref CORPUS --decoded OUT/copy-vae+vocoder --label copy-synthesis``.

    python examples/quality_checks.py --run /work/runs/rt-small --data /work/data/core --out /work/runs/rt-small/checks
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from semanticodec_rt.lab.train.copysynth import MODES, CopySynthesis
from semanticodec_rt.lab.train.probe import markdown, run_probes
from semanticodec_rt.weights import checkpoint


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="run folder (RUN/model.safetensors must be exported)")
    ap.add_argument("--data", required=True, help="corpus folder")
    ap.add_argument("--out", required=True)
    ap.add_argument("--per-split", type=int, default=400, help="clips encoded per split for the probes")
    ap.add_argument("--split", default="test", help="split resynthesised by copy synthesis")
    ap.add_argument("--max-seconds", type=float, default=30.0)
    ap.add_argument("--skip-probes", action="store_true")
    ap.add_argument("--skip-copy", action="store_true", help="probes only (no copy synthesis)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    out, data = Path(args.out), Path(args.data)
    out.mkdir(parents=True, exist_ok=True)
    if not args.skip_probes:
        codec = checkpoint.load(Path(args.run) / "model.safetensors")
        results = run_probes(codec, data / "manifest.jsonl", per_split=args.per_split)
        (out / "probes.json").write_text(json.dumps(results, indent=1) + "\n")
        (out / "probes.md").write_text(markdown(results))
        print(markdown(results))
    if args.skip_copy:
        return
    synth = CopySynthesis(args.run)
    entries = [json.loads(x) for x in (data / "manifest.jsonl").read_text().splitlines() if x.strip()]
    entries = [e for e in entries if e["split"] == args.split]
    for e in tqdm(entries, desc="copy synthesis", unit="clip"):
        x, sr = sf.read(str(data / e["path"]), dtype="float32", frames=int(args.max_seconds * 16000))
        wave = torch.from_numpy(np.atleast_2d(x if x.ndim == 1 else x[:, 0]))
        for mode in MODES:
            # float wav (FLAC holds no float samples); eval --decoded matches any audio suffix
            dst = (out / f"copy-{mode}" / e["path"]).with_suffix(".wav")
            dst.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(dst), synth(wave, mode)[0].numpy(), sr, subtype="FLOAT")
    print(f"copy-synthesis decodes in {out}/copy-*; score them with semanticodec-rt eval --decoded")


if __name__ == "__main__":
    main()
