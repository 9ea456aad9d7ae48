"""Training streams of the speech route: audio at many levels and its FARGAN features.

``semanticodec-rt data features --ref CORPUS --out DIR`` (or :func:`build_streams`) writes, per
split (train, valid), one long 16 kHz stream made of the corpus clips in a shuffled order, each
at a random level, with short random gaps between them, and opus's feature analysis of that
whole stream:

* ``DIR/<split>.pcm.npy``   int16 ``[N]``  the stream (clipped at full scale like any input);
* ``DIR/<split>.feat.npy``  float32 ``[N // 160, 20]`` FARGAN features, row r = the 10 ms
  frame starting at sample 160 r (opus's alignment: analysis row r best matches kaldi fbank
  frame r - 1);
* ``DIR/<split>.clips.jsonl`` where each clip sits (``start``, ``n``, ``cls``, ``pkg``, ``gain_db``);
* ``DIR/stats.json`` the features' mean and std over the train stream and the features of
  digital silence (what a decoder stream is primed with).

Why one stream: most speech clips are shorter than a training crop, so crops read across clip
boundaries (a codec must cope with them), and analysing the stream as a whole gives features
that match the audio at every boundary.  Why random levels: the issue's unseen reader failed
at a level the codebook had not seen; each clip gets an active level drawn uniformly in
``LEVEL_DBFS`` (a few clip at full scale, as loud real inputs do).

Two mixes.  ``speech`` (the speech route's): all speech of the split, all sound effects, and
music excerpts up to ``MUSIC_SHARE`` of the speech duration (the speech route must not break on
music, but it is trained for speech).  ``general`` (the general-audio route's): music excerpts
from every track up to ``GENERAL_MUSIC_SHARE`` of the split's music, all sound effects, and
whole speech clips up to ``GENERAL_SPEECH_SHARE`` of that (so mixed-content boundaries and the
odd voice still occur).  test and test_unseen are never read, so test speakers stay out.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import manifest as mf
from . import opus_source

LEVEL_DBFS = (-42.0, -12.0)  # active RMS level of a clip
GAP_S = (0.0, 0.3)
MUSIC_SHARE = 0.2
MUSIC_EXCERPT_S = 8.0
GENERAL_MUSIC_SHARE = 0.25
GENERAL_SPEECH_SHARE = 0.15
MIXES = ("speech", "general")
SR = 16000
FRAME = 160


def active_rms_db(x: np.ndarray) -> float:
    """RMS level (dBFS) of the louder half of the 20 ms frames: a level that silence between
    words does not drag down."""
    n = len(x) // 320
    if n == 0:
        return 20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-9)
    e = np.mean(x[: n * 320].astype(np.float64).reshape(n, 320) ** 2, axis=1)
    top = np.sort(e)[n // 2 :]
    return 10 * np.log10(np.mean(top) + 1e-18)


def _pieces(entries: list[dict], root: Path, rng: np.random.Generator, mix: str = "speech"):
    """(entry, float32 samples) of the split: speech and sfx whole, music as excerpts."""
    import soundfile as sf

    if mix not in MIXES:
        raise ValueError(f"mix must be one of {MIXES}, got {mix!r}")
    music = [e for e in entries if e["cls"] == "music"]
    whole = [e for e in entries if e["cls"] != "music"]
    if mix == "speech":
        budget = MUSIC_SHARE * sum(e["dur"] for e in entries if e["cls"] == "speech")
    else:
        budget = GENERAL_MUSIC_SHARE * sum(e["dur"] for e in music)
        speech = [e for e in whole if e["cls"] == "speech"]
        room = GENERAL_SPEECH_SHARE * (budget + sum(e["dur"] for e in whole if e["cls"] == "sfx"))
        keep, total = set(), 0.0
        for i in rng.permutation(len(speech)):
            if total >= room:
                break
            keep.add(id(speech[i]))
            total += speech[i]["dur"]
        whole = [e for e in whole if e["cls"] != "speech" or id(e) in keep]
    per_track = budget / max(1, len(music))
    for e in whole:
        x, sr = sf.read(str(root / e["path"]), dtype="float32")
        if sr != SR or x.ndim != 1:
            raise ValueError(f"{e['path']}: expected 16 kHz mono")
        yield e, x
    for e in music:
        x, sr = sf.read(str(root / e["path"]), dtype="float32")
        take = int(min(per_track, len(x) / SR) // MUSIC_EXCERPT_S) or 1
        for _ in range(take):
            n = int(MUSIC_EXCERPT_S * SR)
            s = int(rng.integers(0, max(1, len(x) - n)))
            yield e, x[s : s + n]


def build_split(root: Path, entries: list[dict], out: Path, split: str, seed: int, progress=None,
                mix: str = "speech") -> dict:
    """Write one split's stream, features and clip list; returns a summary."""
    rng = np.random.default_rng(seed)
    pieces = list(_pieces(entries, root, rng, mix))
    order = rng.permutation(len(pieces))
    chunks, clips, pos = [], [], 0
    for i in order:
        e, x = pieces[i]
        gap = int(rng.uniform(*GAP_S) * SR)
        chunks.append(np.zeros(gap, np.float32))
        pos += gap
        level = rng.uniform(*LEVEL_DBFS)
        gain_db = level - active_rms_db(x)
        y = np.clip(x * 10 ** (gain_db / 20), -1.0, 1.0)
        chunks.append(y.astype(np.float32))
        clips.append({"start": pos, "n": len(y), "cls": e["cls"], "pkg": e["pkg"], "gain_db": round(gain_db, 2),
                      "path": e["path"]})
        pos += len(y)
        if progress is not None:
            progress(1)
    pcm = np.round(np.concatenate(chunks) * 32767).astype(np.int16)
    feats = opus_source.fargan_features(pcm)[:, :20].astype(np.float32)
    np.save(out / f"{split}.pcm.npy", pcm)
    np.save(out / f"{split}.feat.npy", feats)
    (out / f"{split}.clips.jsonl").write_text("".join(json.dumps(c) + "\n" for c in clips))
    hours = {c: sum(k["n"] for k in clips if k["cls"] == c) / SR / 3600 for c in ("speech", "music", "sfx")}
    return {"samples": len(pcm), "frames": len(feats), "clips": len(clips), "hours": hours}


def build_streams(ref: str | Path, out: str | Path, seed: int = 0, splits=("train", "valid"),
                  mix: str = "speech") -> dict:
    """Build every split's stream (``mix``: see the module doc) and ``stats.json``; returns the summary."""
    from tqdm import tqdm

    ref, out = Path(ref), Path(out)
    root = ref if ref.is_dir() else ref.parent
    entries = mf.read(root / "manifest.jsonl" if ref.is_dir() else ref)
    out.mkdir(parents=True, exist_ok=True)
    summary = {}
    for k, split in enumerate(splits):
        sel = [e for e in entries if e["split"] == split]
        with tqdm(total=len(sel), desc=f"features {split}", unit="clip") as bar:
            summary[split] = build_split(root, sel, out, split, seed + k, bar.update, mix)
    feats = np.load(out / "train.feat.npy").astype(np.float64)  # one conversion for mean and std
    silence = opus_source.fargan_features(np.zeros(SR, np.int16))[:, :20]
    stats = {
        "mean": feats.mean(0).tolist(),
        "std": feats.std(0).tolist(),
        "silence": silence[len(silence) // 2].astype(np.float64).tolist(),
        "summary": summary,
        "level_dbfs": LEVEL_DBFS,
        "seed": seed,
        "mix": mix,
    }
    (out / "stats.json").write_text(json.dumps(stats, indent=1))
    return stats
