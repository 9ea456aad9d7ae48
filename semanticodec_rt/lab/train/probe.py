"""Linear probes on token ids: do the semantic ids carry more meaning than the acoustic ids?

Each clip becomes a bag of ids (normalised histogram over the vocabulary, computed separately
for the semantic and the acoustic stream); a multinomial logistic regression trained on the
train split predicts a label on the test split.  Labels:

* ``class``    -- speech / music / sfx, every clip;
* ``language`` -- the spoken language, for speech packages whose name gives it
  (asterisk-core-sounds-LANG-*, fillets-ng-data-LANG, asterisk-prompt-LANG-*);
* ``package``  -- the source package (a proxy for speaker / recording set) of speech clips.

The claim under test (SemantiCodec's design): the k-means ids of the semantic encoder are the
better features for such labels than the acoustic ids, which code residual detail.  The probe is
deliberately weak (linear, bag of ids) so that it measures what the ids expose directly.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

_LANG = (re.compile(r"^asterisk-core-sounds-([a-z]{2})-"), re.compile(r"^fillets-ng-data-([a-z]{2})$"),
         re.compile(r"^asterisk-prompt-([a-z]{2})(?:-|$)"))


def language_of(pkg: str) -> str | None:
    for pat in _LANG:
        m = pat.match(pkg)
        if m:
            return m.group(1)
    return None


@dataclass
class ClipIds:
    split: str
    cls: str
    pkg: str
    semantic: np.ndarray  # [T] int
    acoustic: np.ndarray  # [T] int


def labels(clips: list[ClipIds], task: str) -> list[str | None]:
    if task == "class":
        return [c.cls for c in clips]
    if task == "language":
        return [language_of(c.pkg) if c.cls == "speech" else None for c in clips]
    if task == "package":
        return [c.pkg if c.cls == "speech" else None for c in clips]
    raise ValueError(f"unknown probe task {task!r}")


def bag_of_ids(ids: np.ndarray, vocab: int) -> np.ndarray:
    h = np.bincount(ids, minlength=vocab).astype(np.float32)
    return h / max(1.0, h.sum())


def fit_probe(x_train: np.ndarray, y_train: np.ndarray, n_classes: int, *, steps: int = 300,
              weight_decay: float = 1e-4, seed: int = 0) -> torch.nn.Linear:
    """Multinomial logistic regression (full-batch L-BFGS on standardised features)."""
    torch.manual_seed(seed)
    x = torch.from_numpy(x_train)
    y = torch.from_numpy(y_train).long()
    lin = torch.nn.Linear(x.shape[1], n_classes)
    opt = torch.optim.LBFGS(lin.parameters(), lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(lin(x), y) + weight_decay * lin.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return lin


def probe(clips: list[ClipIds], task: str, stream: str, vocab: int) -> dict:
    """Accuracy of a linear probe for ``task`` from the ``stream`` ids (train -> test split)."""
    ys = labels(clips, task)
    keep = [i for i, y in enumerate(ys) if y is not None]
    train = [i for i in keep if clips[i].split == "train"]
    test = [i for i in keep if clips[i].split == "test"]
    names = sorted({ys[i] for i in train})
    test = [i for i in test if ys[i] in names]  # labels never seen in training cannot be probed
    if len(names) < 2 or not test:
        return {"task": task, "stream": stream, "skipped": "fewer than 2 labels or no test clips"}
    feats = np.stack([bag_of_ids(getattr(c, stream), vocab) for c in clips])
    mean, std = feats[train].mean(0), feats[train].std(0) + 1e-6
    z = (feats - mean) / std
    index = {n: k for k, n in enumerate(names)}
    y = np.array([index[ys[i]] if ys[i] in index else -1 for i in range(len(clips))])
    lin = fit_probe(z[train].astype(np.float32), y[train], len(names))
    with torch.no_grad():
        pred = lin(torch.from_numpy(z[test].astype(np.float32))).argmax(1).numpy()
    majority = max(np.mean(y[test] == k) for k in range(len(names)))
    return {"task": task, "stream": stream, "accuracy": float(np.mean(pred == y[test])),
            "majority_baseline": float(majority), "classes": len(names),
            "train_clips": len(train), "test_clips": len(test)}


def encode_clips(codec, manifest: Path, splits=("train", "test"), per_split: int = 400,
                 max_seconds: float = 10.0, seed: int = 0, progress: bool = True) -> list[ClipIds]:
    """Tokens of up to ``per_split`` clips per split (a class-stratified seeded sample)."""
    import soundfile as sf

    root = manifest.parent
    entries = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    rng = np.random.default_rng(seed)
    chosen = []
    for split in splits:
        pool = [e for e in entries if e["split"] == split]
        by_cls: dict[str, list] = {}
        for e in pool:
            by_cls.setdefault(e["cls"], []).append(e)
        take = []
        for cls, items in sorted(by_cls.items()):
            n = min(len(items), max(1, per_split // len(by_cls)))
            take += [items[i] for i in rng.choice(len(items), n, replace=False)]
        chosen += take
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(chosen), desc="encode", unit="clip")
    out = []
    for e in chosen:
        x, sr = sf.read(str(root / e["path"]), dtype="float32", frames=int(max_seconds * 16000))
        if x.ndim > 1:
            x = x[:, 0]
        tokens = codec.encode(torch.from_numpy(x)[None], sr)[0].cpu().numpy()
        out.append(ClipIds(e["split"], e["cls"], e["pkg"], tokens[:, 0], tokens[:, 1]))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return out


def run_probes(codec, manifest: Path, **kwargs) -> list[dict]:
    """Every task x stream probe for ``codec`` on the corpus (see the module doc)."""
    clips = encode_clips(codec, manifest, **kwargs)
    vocab = {"semantic": codec.cfg.semantic_vocab_size, "acoustic": codec.cfg.acoustic.codebook_size}
    return [probe(clips, task, stream, vocab[stream])
            for task in ("class", "language", "package") for stream in ("semantic", "acoustic")]


def markdown(results: list[dict]) -> str:
    rows = ["| task | stream | accuracy | majority | classes | train / test clips |", "|---|---|---:|---:|---:|---|"]
    for r in results:
        if "skipped" in r:
            rows.append(f"| {r['task']} | {r['stream']} | skipped: {r['skipped']} | | | |")
        else:
            rows.append(f"| {r['task']} | {r['stream']} | {r['accuracy']:.3f} | {r['majority_baseline']:.3f} | "
                        f"{r['classes']} | {r['train_clips']} / {r['test_clips']} |")
    return "\n".join(rows) + "\n"
