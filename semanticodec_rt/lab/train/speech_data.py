"""Training crops of the speech route, cut from the streams of :mod:`...data.feature_stream`.

A crop is ``units`` token positions (40 ms each) starting on a position boundary of the stream:
its audio (plus the 240 samples the last fbank frame reads past it, and the 256 samples of
correlation history before it) and, per position u, the FARGAN feature rows ``4u + 1 .. 4u + 4``
counted from the crop start (analysis row r matches fbank frame r - 1, :mod:`.feature_stream`).
Crops are drawn from a generator seeded by (seed, step), so a resumed run sees the same crops.

Where the stream has its clip list (``SPLIT.clips.jsonl``), each crop also carries the class of
every position (:data:`CLASS_IDS`: the clip under the position's centre sample; -1 in the gaps
between clips): the router's labels.
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
#: position classes: the speech route's and the general route's content; GAP: no clip
CLASS_IDS = {"speech": 0, "music": 1, "sfx": 1}
GAP = -1


@dataclass
class Crops:
    """A batch: ``audio [B, HISTORY + U*640 + TAIL]`` float32 (history first),
    ``features [B, U, 4, 20]`` float32 and, where known, ``classes [B, U]`` int64."""

    audio: torch.Tensor
    features: torch.Tensor
    classes: torch.Tensor | None = None


class FeatureStream:
    """One split's stream, memory-mapped.  Args: folder, split name."""

    def __init__(self, folder: str | Path, split: str) -> None:
        folder = Path(folder)
        self.pcm = np.load(folder / f"{split}.pcm.npy", mmap_mode="r")
        self.feat = np.load(folder / f"{split}.feat.npy", mmap_mode="r")
        self.stats = json.loads((folder / "stats.json").read_text())
        self.positions = (min(len(self.pcm) - TAIL, (len(self.feat) - 2) * 160)) // UNIT_SAMPLES
        clips = folder / f"{split}.clips.jsonl"
        self.classes = _position_classes(clips, self.positions) if clips.exists() else None

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
                     torch.from_numpy(np.stack([f for _, f in pairs])), self._classes(starts, units))

    def _classes(self, starts, units: int) -> torch.Tensor | None:
        if self.classes is None:
            return None
        return torch.from_numpy(np.stack([self.classes[int(p) : int(p) + units] for p in starts]).astype(np.int64))

    def sequential(self, units: int, limit: int | None = None):
        """Consecutive crops from the start of the stream (validation), ``limit`` at most."""
        n = self.positions // units
        for i in range(n if limit is None else min(n, limit)):
            a, f = self.crop(i * units, units)
            yield Crops(torch.from_numpy(a.copy())[None], torch.from_numpy(f.copy())[None],
                        self._classes([i * units], units))


def _position_classes(clips: Path, positions: int) -> np.ndarray:
    """``[positions]`` int8: the class of the clip under each position's centre sample."""
    out = np.full(positions, GAP, np.int8)
    centre = np.arange(positions) * UNIT_SAMPLES + UNIT_SAMPLES // 2
    for line in clips.read_text().splitlines():
        c = json.loads(line)
        lo, hi = np.searchsorted(centre, [c["start"], c["start"] + c["n"]])
        out[lo:hi] = CLASS_IDS.get(c["cls"], GAP)
    return out
