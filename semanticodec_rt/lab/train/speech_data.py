"""Training crops of the speech route, cut from the streams of :mod:`...data.feature_stream`.

A crop is ``units`` token positions (40 ms each) starting on a position boundary of the stream:
its audio (plus the 240 samples the last fbank frame reads past it, and the 256 samples of
correlation history before it) and, per position u, the FARGAN feature rows ``4u + 1 .. 4u + 4``
counted from the crop start (analysis row r matches fbank frame r - 1, :mod:`.feature_stream`).
Crops are drawn from a generator seeded by (seed, step), so a resumed run sees the same crops.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

UNIT_SAMPLES = 640
TAIL = 240  # samples the last fbank frame of a position reads past it
HISTORY = 256  # samples of correlation history (xcorr_max_lag)


@dataclass
class Crops:
    """A batch: ``audio [B, HISTORY + U*640 + TAIL]`` float32 (history first) and
    ``features [B, U, 4, 20]`` float32."""

    audio: torch.Tensor
    features: torch.Tensor


class FeatureStream:
    """One split's stream, memory-mapped.  Args: folder, split name."""

    def __init__(self, folder: str | Path, split: str) -> None:
        folder = Path(folder)
        self.pcm = np.load(folder / f"{split}.pcm.npy", mmap_mode="r")
        self.feat = np.load(folder / f"{split}.feat.npy", mmap_mode="r")
        self.stats = json.loads((folder / "stats.json").read_text())
        self.positions = (min(len(self.pcm) - TAIL, (len(self.feat) - 2) * 160)) // UNIT_SAMPLES

    def crop(self, position: int, units: int) -> tuple[np.ndarray, np.ndarray]:
        """The crop starting at token position ``position``: (audio, features [U, 4, 20])."""
        s = position * UNIT_SAMPLES
        lo = s - HISTORY
        audio = np.asarray(self.pcm[max(0, lo) : s + units * UNIT_SAMPLES + TAIL], np.float32) / 32767.0
        if lo < 0:
            audio = np.concatenate([np.zeros(-lo, np.float32), audio])
        r = s // 160 + 1
        feats = np.asarray(self.feat[r : r + 4 * units], np.float32).reshape(units, 4, 20)
        return audio, feats

    def batch(self, batch: int, units: int, seed: int, step: int) -> Crops:
        rng = np.random.default_rng([seed, step])
        starts = rng.integers(0, self.positions - units, size=batch)
        pairs = [self.crop(int(p), units) for p in starts]
        return Crops(torch.from_numpy(np.stack([a for a, _ in pairs])),
                     torch.from_numpy(np.stack([f for _, f in pairs])))

    def sequential(self, units: int, limit: int | None = None):
        """Consecutive crops from the start of the stream (validation), ``limit`` at most."""
        n = self.positions // units
        for i in range(n if limit is None else min(n, limit)):
            a, f = self.crop(i * units, units)
            yield Crops(torch.from_numpy(a.copy())[None], torch.from_numpy(f.copy())[None])
