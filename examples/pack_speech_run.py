"""Pack a speech run folder as float16 for the repository (what the next session resumes from).

    python examples/pack_speech_run.py /work/runs/sp1 resume/sp-small-r50
    semanticodec-rt train speech --data STREAMS --out runs/sp2 --from-pack resume/sp-small-r50 \
        --set codec_steps=40000

Writes the model, every stage's optimizer state and log, and the recipe record, float tensors
as float16, with ``PACK.json`` (sha256 of each file).  Prints the pack's size.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="the run folder of 'train speech'")
    ap.add_argument("dest", type=Path, help="the pack folder to write")
    args = ap.parse_args()
    from semanticodec_rt.lab.train.speech_pack import pack

    index = pack(args.run, args.dest)
    size = sum((args.dest / f).stat().st_size for f in index["files"])
    print(f"{len(index['files'])} files, {size / 1e6:.1f} MB -> {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
