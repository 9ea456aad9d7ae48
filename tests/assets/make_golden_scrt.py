"""Regenerate ``golden_v1.scrt.bin`` and ``golden_v2.scrt.bin``, the frozen examples of ``.scrt``
format versions 1 and 2 (the same stream in both).

Run ``python tests/assets/make_golden_scrt.py`` only when the format changes on purpose (with a
format version bump; a released version's golden never changes); ``tests/test_bitstream.py``
checks the committed files against this script and pins their sha256, so any drift of the
writer shows up as a failing test.

Everything is fixed here (no RNG, whose streams may change across numpy versions; a literal
model sha and package version, not the running ones): 37 token positions at token rate 100,
semantic vocab 32768 (15 bits) + acoustic 8192 (13 bits), 8 frames per packet, so four full
28-byte payloads, one partial packet of 5 frames (18 bytes, 4 padding bits) and the END packet.
Version 2 stores them in chunks of 16 frames (two full chunks of 56 bytes, one of 5 frames, then
the end record).  The extreme ids 0 and vocab - 1 both occur.  (The names avoid ``*.scrt``,
which .gitignore skips.)
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
GOLDEN_PATH = HERE / "golden_v1.scrt.bin"
GOLDEN_V2_PATH = HERE / "golden_v2.scrt.bin"
GOLDEN_V2_CHUNK_FRAMES = 16

if __name__ == "__main__":  # allow running from a checkout that is not installed
    sys.path.insert(0, str(HERE.parents[1]))

from semanticodec_rt.bitstream import StreamInfo, write_scrt  # noqa: E402

N_FRAMES = 37


def golden_info() -> StreamInfo:
    return StreamInfo(
        model="be94aaec7af767e6",  # official-r100-v32768's sha when the golden was made
        config="official-r100-v32768",
        token_rate=100,
        semantic_vocab=32768,
        acoustic_vocab=8192,
        sample_rate=16000,
        n_samples=N_FRAMES * 320 - 123,  # 320 samples per position; a partial last one
        n_frames=N_FRAMES,
        frames_per_packet=8,
        version="0.1.0",
    )


def golden_tokens() -> np.ndarray:
    """``[37, 2]`` int64 ids from fixed integer formulas."""
    i = np.arange(N_FRAMES, dtype=np.int64)
    sem = (i * 7919 + 11) % 32768
    ac = (i * 2971 + 5) % 8192
    ids = np.stack([sem, ac], axis=1)
    ids[0] = (0, 0)
    ids[1] = (32767, 8191)
    ids[-1] = (32767, 0)
    return ids


def golden_bytes(version: int = 1) -> bytes:
    """The golden stream in format ``version`` (1 or 2)."""
    buf = io.BytesIO()
    kw = {"chunk_frames": GOLDEN_V2_CHUNK_FRAMES} if version == 2 else {}
    write_scrt(buf, golden_info(), golden_tokens(), format_version=version, **kw)
    return buf.getvalue()


if __name__ == "__main__":
    for version, path in ((1, GOLDEN_PATH), (2, GOLDEN_V2_PATH)):
        data = golden_bytes(version)
        path.write_bytes(data)
        print(f"wrote {path} ({len(data)} bytes)")
