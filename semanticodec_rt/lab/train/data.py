"""Training crops from a corpus manifest, drawn as a pure function of (seed, step).

Every batch is decided by ``numpy.random.default_rng([seed, step])``: which class (by the
config's class weights), which clip (by duration within the class) and where the crop starts.
Nothing else carries state, so

* resuming at step s draws exactly the batches an uninterrupted run would have drawn;
* data-parallel processes draw the same *global* batch and each keeps its share
  (:func:`shard`), which makes an N-process run equal to a one-process run of the same global
  batch.

Crops are read straight from the FLAC files with seeking (``soundfile.read(start=, frames=)``),
so memory stays flat whatever the corpus size.  Clips shorter than a crop are zero-padded on
the right (the pad is reported in ``valid`` so losses may ignore it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...config import SAMPLE_RATE
from ..data.manifest import NAME as MANIFEST_NAME

CLASSES = ("speech", "music", "sfx")


class TrainDataError(ValueError):
    """The manifest cannot feed training (missing, empty split, unreadable files)."""


@dataclass
class Clip:
    path: Path
    cls: str
    samples: int


class CropSource:
    """The clips of one split of a corpus, and seeded crops of them.

    Args:
        manifest: a corpus folder (with manifest.jsonl) or the manifest file.
        split: which split to draw from (``train`` for training, ``valid`` for checks).
        class_weights: probability of each class in :data:`CLASSES` (renormalised over the
            classes the split has).
        seed: the run seed.
    """

    def __init__(self, manifest: str | Path, split: str = "train",
                 class_weights=(0.5, 0.25, 0.25), seed: int = 0) -> None:
        path = Path(manifest)
        if path.is_dir():
            path = path / MANIFEST_NAME
        if not path.exists():
            raise TrainDataError(f"manifest not found: {path} (build one with 'semanticodec-rt data build')")
        root = path.parent
        clips: dict[str, list[Clip]] = {c: [] for c in CLASSES}
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    e = json.loads(line)
                    if e["split"] != split:
                        continue
                    clip = Clip(root / e["path"], e["cls"], int(round(float(e["dur"]) * SAMPLE_RATE)))
                except (ValueError, KeyError, TypeError) as err:
                    raise TrainDataError(f"{path}:{n}: bad manifest line ({err})") from None
                if clip.cls not in clips:
                    raise TrainDataError(f"{path}:{n}: unknown class {clip.cls!r}")
                if clip.samples > 0:
                    clips[clip.cls].append(clip)
        self.classes = [c for c in CLASSES if clips[c]]
        if not self.classes:
            raise TrainDataError(f"{path}: split {split!r} has no clips")
        self.clips = {c: clips[c] for c in self.classes}
        w = np.array([class_weights[CLASSES.index(c)] for c in self.classes], dtype=np.float64)
        if w.sum() <= 0:
            w = np.ones(len(self.classes))
        self.class_p = w / w.sum()
        self.clip_p = {}
        for c in self.classes:
            d = np.array([clip.samples for clip in self.clips[c]], dtype=np.float64)
            self.clip_p[c] = d / d.sum()
        self.seed = seed
        self.split = split
        self.manifest = path
        self.hours = {c: sum(x.samples for x in self.clips[c]) / SAMPLE_RATE / 3600 for c in self.classes}

    def __len__(self) -> int:
        return sum(len(v) for v in self.clips.values())

    def rng(self, step: int, salt: int = 0) -> np.random.Generator:
        """The generator of one step (``salt`` separates independent draws of the same step)."""
        return np.random.default_rng([self.seed, step, salt])

    def crops(self, step: int, count: int, samples: int, salt: int = 0) -> dict:
        """The global batch of ``count`` crops of ``samples`` samples for ``step``.

        Returns ``{"audio": [count, samples] float32, "valid": [count] int64 samples of real
        audio, "cls": list[str]}``.
        """
        if count < 1 or samples < 1:
            raise ValueError(f"need count >= 1 and samples >= 1, got {count}, {samples}")
        import soundfile as sf

        rng = self.rng(step, salt)
        audio = np.zeros((count, samples), dtype=np.float32)
        valid = np.zeros(count, dtype=np.int64)
        classes = []
        for i in range(count):
            c = self.classes[rng.choice(len(self.classes), p=self.class_p)]
            clip = self.clips[c][rng.choice(len(self.clips[c]), p=self.clip_p[c])]
            start = int(rng.integers(0, max(1, clip.samples - samples + 1)))
            try:
                x, sr = sf.read(str(clip.path), start=start, frames=samples, dtype="float32", always_2d=True)
            except (RuntimeError, OSError, sf.LibsndfileError) as e:
                raise TrainDataError(f"cannot read {clip.path}: {e}") from None
            if sr != SAMPLE_RATE:
                raise TrainDataError(f"{clip.path}: {sr} Hz, the corpus must be 16 kHz")
            n = min(samples, x.shape[0])
            audio[i, :n] = x[:n, 0]
            valid[i] = n
            classes.append(c)
        return {"audio": torch.from_numpy(audio), "valid": torch.from_numpy(valid), "cls": classes}

    def generator(self, step: int, salt: int = 0) -> torch.Generator:
        """A torch generator for the step's random tensors (masks, noise, timesteps)."""
        g = torch.Generator()
        g.manual_seed(int(self.rng(step, 1000 + salt).integers(0, 2**62)))
        return g


def shard(batch: dict, rank: int, world: int) -> dict:
    """This process's share of a global batch: the ``rank``-th contiguous block of every
    tensor/list whose first dimension is the batch (other values are kept as they are).
    Contiguous blocks make an all-gather over processes restore the global order."""
    if world == 1:
        return batch
    n = None
    for v in batch.values():
        if isinstance(v, (torch.Tensor, list)):
            n = len(v)
            break
    if n is None or n % world:
        raise ValueError(f"global batch of {n} items does not split over {world} processes")
    per = n // world
    lo, hi = rank * per, (rank + 1) * per
    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor) and v.dim() and v.shape[0] == n:
            out[k] = v[lo:hi]
        elif isinstance(v, list) and len(v) == n:
            out[k] = v[lo:hi]
        else:
            out[k] = v
    return out
