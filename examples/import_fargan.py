"""Import FARGAN's pretrained weights from Debian's opus 1.5.2 source into the package.

    python examples/import_fargan.py [--work DIR] [--reference-vectors tests/assets/fargan_ref.npz]

Fetches the ``opus`` 1.5.2-2 source package with a private apt configuration (nothing of the
system's apt set-up changes), checks the upstream tarball's sha256, reads the tables of
``dnn/fargan_data.c`` and writes

* ``semanticodec_rt/assets/fargan.safetensors`` -- the weights as opus stores them (int8 matrices
  with their row scales, float small layers) with the provenance in the metadata;
* ``semanticodec_rt/assets/FARGAN_LICENSE`` -- the BSD licence notice of the opus source.

``--reference-vectors FILE`` also builds the opus demo programs (~2 min) and stores, for the
first seconds of the shipped speech clip, the features ``fargan_demo -features`` computes and
the audio ``fargan_demo -fargan-synthesis`` makes of them: the C reference the tests compare
our FARGAN with.  Needs apt-get, dpkg-dev (dpkg-source), a C compiler and make.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "examples" / "audio" / "speech_en_dir-instr.flac"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("build/opus"), help="download/build folder (default build/opus)")
    ap.add_argument("--out", type=Path, default=REPO / "semanticodec_rt" / "assets", help="assets folder")
    ap.add_argument("--reference-vectors", type=Path, help="also write the C reference vectors here (.npz)")
    ap.add_argument("--seconds", type=float, default=3.0, help="length of the reference vectors (default 3)")
    args = ap.parse_args()

    import subprocess
    import tempfile

    from semanticodec_rt.lab.data import DataError
    from semanticodec_rt.lab.data import opus_source as opus
    from semanticodec_rt.weights.fargan import load_fargan, save_fargan
    from semanticodec_rt.weights.fargan_tables import fargan_tensors, read_c_tables

    args.work.mkdir(parents=True, exist_ok=True)
    try:
        tree = opus.fetch(args.work)
    except DataError as e:
        print(f"import_fargan: {e}", file=sys.stderr)
        return 1
    table = tree / "dnn" / "fargan_data.c"
    tensors = fargan_tensors(read_c_tables(table.read_text()))
    provenance = {
        "source_package": f"Debian {opus.PACKAGE} {opus.VERSION} ({opus.SUITE}, source)",
        "source_tarball": opus.ORIG_TARBALL,
        "source_tarball_sha256": opus.ORIG_SHA256,
        "source_file": "dnn/fargan_data.c",
        "source_file_sha256": opus.sha256(table),
        "licence": "BSD-3-Clause (see FARGAN_LICENSE)",
        "model": "FARGAN, Valin et al., arXiv 2405.21069",
    }
    weights = args.out / "fargan.safetensors"
    save_fargan(tensors, weights, provenance)
    licence = (tree / "COPYING").read_text()
    (args.out / "FARGAN_LICENSE").write_text(
        "The FARGAN weights in fargan.safetensors are converted from dnn/fargan_data.c of the opus\n"
        f"1.5.2 source ({provenance['source_package']}, {opus.ORIG_TARBALL}, sha256 {opus.ORIG_SHA256}).\n"
        "That file is distributed under the following licence (opus COPYING):\n\n" + licence)
    model = load_fargan(weights)  # checks what was written
    n = sum(p.numel() for p in model.state_dict().values())
    print(f"{weights}: {n} values, {weights.stat().st_size} bytes")

    if args.reference_vectors:
        import soundfile as sf

        progs = opus.build(tree)
        pcm, sr = sf.read(str(CLIP), dtype="int16")
        if sr != 16000:
            raise SystemExit(f"{CLIP}: {sr} Hz, expected 16 kHz")
        pcm = pcm[: int(args.seconds * 16000) // 160 * 160]
        with tempfile.TemporaryDirectory() as tmp:
            t = Path(tmp)
            pcm.astype("<i2").tofile(t / "in.pcm")
            subprocess.run([str(progs["fargan_demo"]), "-features", str(t / "in.pcm"), str(t / "f.f32")], check=True)
            subprocess.run([str(progs["fargan_demo"]), "-fargan-synthesis", str(t / "f.f32"), str(t / "out.pcm")],
                           check=True)
            features = np.fromfile(t / "f.f32", dtype="<f4").reshape(-1, 36)
            synth = np.fromfile(t / "out.pcm", dtype="<i2")
        np.savez_compressed(args.reference_vectors, features=features, c_synthesis=synth,
                            note=np.array(f"fargan_demo of {provenance['source_package']}, "
                                          f"x86 AVX2 build; input: first {len(pcm)} samples of {CLIP.name}"))
        print(f"{args.reference_vectors}: {len(features)} frames, {len(synth)} samples of C synthesis")
    return 0


if __name__ == "__main__":
    sys.exit(main())
