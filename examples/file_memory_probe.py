"""Peak memory of ``encode`` and ``decode`` on long files: does it grow with duration or rate?

    python examples/file_memory_probe.py                       # 3 and 20 min, 48 kHz stereo
    python examples/file_memory_probe.py --minutes 1 5 --rate 44100 --channels 1

For each duration a WAV (16-bit PCM, RATE Hz, CHANNELS channels) is generated block by block in a
temporary folder (removed afterwards unless --keep), then ``semanticodec-rt encode`` and
``decode`` run in subprocesses (``python -m semanticodec_rt``, the same interpreter).  Each
command's peak resident memory is the kernel's ``ru_maxrss`` of that child alone (``os.wait4``).
The sha256 of every output is printed, so two runs (say, two commits: put the other tree first on
PYTHONPATH) can be checked for identical results.  Not part of CI; speeds are printed, never
asserted.
"""

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BLOCK_S = 10  # seconds generated per write: keeps the generator itself small


def write_test_wav(path: Path, minutes: float, rate: int, channels: int, seed: int = 0) -> int:
    """A deterministic speech-like WAV: voiced tones with a syllable-rate envelope, pauses and a
    little noise, a different mix per channel.  Returns the frame count."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    n_total = int(round(minutes * 60 * rate))
    with sf.SoundFile(str(path), "w", samplerate=rate, channels=channels, subtype="PCM_16") as f:
        for start in range(0, n_total, BLOCK_S * rate):
            n = min(BLOCK_S * rate, n_total - start)
            t = (start + np.arange(n)) / rate
            pitch = 120 + 40 * np.sin(2 * np.pi * 0.3 * t)  # a slowly gliding voice
            phase = 2 * np.pi * np.cumsum(pitch) / rate
            voice = sum(np.sin(k * phase) / k for k in range(1, 6))
            envelope = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) * (np.sin(2 * np.pi * 0.1 * t) > -0.5)
            cols = [0.2 * voice * envelope * (1 - 0.3 * c) + 0.01 * rng.standard_normal(n)
                    for c in range(channels)]
            f.write(np.stack(cols, 1).astype(np.float32))
    return n_total


def run(cmd: list[str]) -> tuple[int, float, float, str]:
    """(exit code, wall seconds, peak RSS in MB, stderr tail) of one child process."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # wait4 reports this child's own rusage (RUSAGE_CHILDREN would be the max over all children).
    # Read stderr first so a chatty child cannot block on a full pipe.
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, time.perf_counter() - t, usage.ru_maxrss / 1024, err.strip()[-300:]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, nargs="+", default=[3, 20], help="durations (default 3 20)")
    ap.add_argument("--rate", type=int, default=48000, help="input sample rate in Hz (default 48000)")
    ap.add_argument("--channels", type=int, default=2, help="input channels (default 2)")
    ap.add_argument("--model", help="--model passed to the commands (default: the shipped model)")
    ap.add_argument("--commands", nargs="+", default=["encode", "decode"], choices=("encode", "decode", "roundtrip"))
    ap.add_argument("--dir", help="work folder (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    args = ap.parse_args()

    base = [sys.executable, "-m", "semanticodec_rt"]
    model = ["--model", args.model] if args.model else []
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="scrt-memprobe-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"python {sys.executable}; package from {_package_dir()}; work folder {work}")
    print(f"{'minutes':>7} {'command':<9} {'exit':>4} {'wall s':>8} {'peak RSS MB':>11}  output sha256")
    failed = False
    try:
        for minutes in args.minutes:
            tag = f"{minutes:g}min_{args.rate}_{args.channels}ch"
            wav = work / f"{tag}.wav"
            write_test_wav(wav, minutes, args.rate, args.channels)
            outputs = {"encode": work / f"{tag}.scrt", "decode": work / f"{tag}_decoded.wav",
                       "roundtrip": work / f"{tag}_roundtrip.wav"}
            inputs = {"encode": wav, "decode": outputs["encode"], "roundtrip": wav}
            for name in args.commands:
                code, wall, rss, err = run(base + [name, "-f", "-q", *model, str(inputs[name]),
                                                   str(outputs[name])])
                digest = sha256(outputs[name]) if code == 0 and outputs[name].exists() else "-"
                print(f"{minutes:>7g} {name:<9} {code:>4} {wall:>8.1f} {rss:>11.0f}  {digest}", flush=True)
                if code != 0:
                    failed = True
                    print(f"        {err}")
            if not args.keep:
                for p in (wav, *outputs.values()):
                    p.unlink(missing_ok=True)
    finally:
        if not args.keep and not args.dir:
            for p in work.iterdir():
                p.unlink()
            work.rmdir()
    return 1 if failed else 0


def _package_dir() -> str:
    out = subprocess.run([sys.executable, "-c", "import semanticodec_rt, os; "
                          "print(os.path.dirname(semanticodec_rt.__file__))"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "?"


if __name__ == "__main__":
    sys.exit(main())
