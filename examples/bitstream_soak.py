"""Soak test of the .scrt reader: N random streams and corruptions, only BitstreamError allowed.

    python examples/bitstream_soak.py 200000 [seed]

Each round writes a random valid stream (random vocab sizes incl. non-powers of two, token rate,
length, frames per packet, file format version 1 or 2), checks the round trip, then feeds one
corrupted copy (bit flips, byte changes, truncation, inserted/deleted bytes, a v1 packet resealed
with a valid CRC after a change -- on a v2 file, whose records chain their CRCs, that is one more
byte change -- or garbage) to ``read_scrt``.  Any other exception, or a round-trip mismatch, stops the
run with the seed and round to reproduce it.  Not part of CI (tests/test_bitstream.py runs a
10k-input version).
"""

import argparse
import io
import random
import time
import zlib

import numpy as np

from semanticodec_rt.bitstream import BitstreamError, StreamInfo, read_scrt, write_scrt


def random_stream(r: random.Random) -> tuple[bytes, np.ndarray]:
    sv, av = r.choice([2, 3, 1000, 4096, 8192, 32768, 1 << 20]), r.choice([2, 8192, 5000])
    info = StreamInfo(model="soak", config="soak", token_rate=r.choice([100, 50, 25]),
                      semantic_vocab=sv, acoustic_vocab=av, sample_rate=16000,
                      n_samples=r.randrange(1 << 40), frames_per_packet=r.randint(1, 40))
    rng = np.random.default_rng(r.randrange(1 << 32))
    n = r.choice([0, 1, r.randrange(200)])
    ids = np.stack([rng.integers(0, sv, n), rng.integers(0, av, n)], axis=1)
    buf = io.BytesIO()
    write_scrt(buf, info, ids, format_version=r.choice([1, 2]))
    return buf.getvalue(), ids


def corrupt(r: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    op = r.randrange(6)
    if op == 0:
        for _ in range(r.randint(1, 8)):
            i = r.randrange(len(b) * 8)
            b[i // 8] ^= 1 << (i % 8)
    elif op == 1:
        b[r.randrange(len(b))] = r.randrange(256)
    elif op == 2:
        del b[r.randrange(len(b)) :]
    elif op == 3:
        i = r.randrange(len(b) + 1)
        b[i:i] = r.randbytes(r.randint(1, 16)) if r.random() < 0.5 else b"\0" * r.randint(1, 16)
    elif op == 4:  # change a byte in the last packet and reseal its CRC (a "valid" packet)
        start = len(b) - 23 - 2 - r.randrange(0, 60)
        if 13 < start < len(b) - 6:
            j = r.randrange(start + 2, len(b) - 4)
            b[j] = r.randrange(256)
            b[-4:] = zlib.crc32(bytes(b[start + 2 : -4])).to_bytes(4, "big")
    else:
        b = bytearray(data[: r.randrange(14)] + r.randbytes(r.randrange(300)))
    return bytes(b)


def main(n: int, seed: int) -> None:
    r = random.Random(seed)
    counts = {"rejected": 0, "accepted": 0}
    t0 = time.perf_counter()
    for i in range(n):
        data, ids = random_stream(r)
        back = read_scrt(data)[1]
        assert np.array_equal(back, ids), f"round trip mismatch (seed {seed}, round {i})"
        try:
            read_scrt(corrupt(r, data))
            counts["accepted"] += 1
        except BitstreamError:
            counts["rejected"] += 1
        except Exception as e:
            raise SystemExit(f"seed {seed} round {i}: {type(e).__name__}: {e}") from e
    dt = time.perf_counter() - t0
    print(f"{n} rounds in {dt:.1f} s ({dt / max(n, 1) * 1e6:.0f} us/round): {counts}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rounds", type=int, nargs="?", default=10_000, help="streams to try (default 10000)")
    ap.add_argument("seed", type=int, nargs="?", default=0, help="seed of the run (default 0)")
    a = ap.parse_args()
    main(a.rounds, a.seed)
