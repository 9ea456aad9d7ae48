"""The evaluation loop behind ``semanticodec-rt eval``: find clips, code them, align, score.

**Clips.**  ``ref`` is a corpus folder holding ``manifest.jsonl`` (or the manifest file itself;
paths are relative to its folder), or any folder of audio files (wav, flac, ogg, opus, mp3; found
recursively).  With a manifest, class/split/package come from it and the default split is
``test``; in a plain folder the class is the first path component named ``speech``, ``music`` or
``sfx`` (else ``other``), the split the first one named like a split (``train``, ``valid``,
``test``, ``test_unseen``), and the default is every split.  ``max_clips`` keeps a class-balanced
subset (clips of each class in path order, taken in turn).  Clips longer than ``max_seconds`` are
scored on their first ``max_seconds`` (every codec codes the same cut).

**Memory.**  A reference file is read and resampled block by block and only the cut is kept, so
a long or high-rate file costs no more than its first ``max_seconds`` at 16 kHz (the rest is
still read, to check it).  The codecs, the alignment and the metrics then hold whole cuts in
memory (30 s by default; ``max_seconds`` 0 keeps whole clips), and a ``--decoded`` file is held
whole at 16 kHz, since its alignment reads all of it.

**Transcripts** (for WER) come from a sidecar ``NAME.txt`` next to the audio file, or a manifest
field ``text`` / ``transcript``.  WER is computed for clips that have one unless the manifest
gives a non-English ``lang``; otherwise it is n/a.  The ASR's WER on the original (``wer_ref``)
is recorded beside each codec's, as the floor the codecs are compared with.

**Codecs.**  Our model (encode -> tokens -> decode at ``steps``; bitrate from the ``.scrt``
bitstream it would write, header included, and the payload rate), each baseline of
:mod:`.baselines`, and/or folders of already-decoded files matched to the references by relative
path (any audio suffix).  Each is one row of the report.  With several step counts the model
gives one row per count (``semanticodec@<N>steps``), all decoding the same tokens: a clip is
encoded once, so every such row has the same bitstream and bitrate.  With several decoded
folders, only the clips every folder has are scored (every row compares the same clips).  Each
decode is aligned to its reference (:mod:`.align`) and scored by every metric of
:mod:`.metrics`; :mod:`.report` writes the outputs.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Optional

import numpy as np

from ...config import SAMPLE_RATE
from . import EvalError
from . import align as _align
from . import baselines as _baselines
from . import metrics as _metrics
from . import page as _page
from .page import LISTEN_PER_CLASS

CLASSES = ("speech", "music", "sfx")
OTHER = "other"
SPLITS = ("train", "valid", "test", "test_unseen")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3")
MANIFEST_NAME = "manifest.jsonl"
FIGURE_CLIPS = 3  # spectrogram figures: the first clip of up to this many classes
MODEL_LABEL = "semanticodec"  # our model's row; with several step counts MODEL_LABEL@<N>steps


@dataclass
class Clip:
    path: Path  # the reference file
    rel: str  # its path relative to the reference root (posix)
    cls: str
    split: Optional[str] = None
    pkg: Optional[str] = None
    transcript: Optional[str] = None
    lang: Optional[str] = None


@dataclass(frozen=True)
class DecodedSpec:
    """One folder of already-decoded files: its row label (``None``: the folder's name) and the
    bitrate to report for it (``None``: unknown, left empty)."""

    folder: Path
    label: Optional[str] = None
    kbps: Optional[float] = None


@dataclass
class EvalOptions:
    ref: Path
    out: Path
    split: Optional[str] = None  # None: "test" for a manifest, every split for a folder; "all"
    classes: Optional[list[str]] = None  # None: every class
    max_clips: Optional[int] = None
    max_seconds: float = 30.0  # 0: whole clips
    baselines: list = field(default_factory=list)  # Baseline objects
    model_spec: Optional[str] = None  # for the report
    steps: Optional[list[int]] = None  # decoder step counts, one model row each; None: the model's
    seed: int = 0
    decoded: list[DecodedSpec] = field(default_factory=list)  # one row each
    metrics: Optional[list[str]] = None  # None: all
    save_audio: bool = False
    listen: int = LISTEN_PER_CLASS  # clips per class on the listening page; 0: no page
    progress: bool = False
    log: Callable[[str], None] = lambda s: None
    warn: Callable[[str], None] = lambda s: print(f"warning: {s}", file=sys.stderr)


# -- option parsing (shared by the command line and callers) --------------------------------------
def parse_steps(text: str) -> list[int]:
    """``"0,1,2,4"`` -> ``[0, 1, 2, 4]``: decoder step counts, each >= 0 (0 is a real setting: the
    speech route's regression-only path, not "the default"); repeats dropped, order kept."""
    counts: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            n = int(part)
        except ValueError:
            raise ValueError(f"expected whole numbers separated by commas, got {text!r}") from None
        if n < 0:
            raise ValueError(f"step counts must be >= 0, got {n}")
        if n not in counts:
            counts.append(n)
    return counts


def parse_decoded(text: str) -> DecodedSpec:
    """``DIR``, ``DIR=LABEL``, ``DIR=LABEL@KBPS`` or ``DIR=@KBPS`` -> :class:`DecodedSpec`.

    The folder is everything before the last ``=`` (so a folder name may hold ``=``, a label may
    not); the bitrate is what follows the label's last ``@`` when that is a number (so a label
    such as ``fargan@copy`` stays whole).  An empty label means the folder's name."""
    folder, eq, rest = text.rpartition("=")
    if not eq:
        folder, rest = text, ""
    if not folder:
        raise ValueError(f"expected DIR, DIR=LABEL or DIR=LABEL@KBPS, got {text!r}")
    label, kbps = rest, None
    head, at, tail = rest.rpartition("@")
    if at:
        try:
            kbps = float(tail)
        except ValueError:
            kbps = None
        else:
            label = head
            if not math.isfinite(kbps) or kbps <= 0:
                raise ValueError(f"{text!r}: the bitrate after @ must be a positive number")
    return DecodedSpec(Path(folder), label.strip() or None, kbps)


def step_counts(steps) -> list[Optional[int]]:
    """The model rows' step counts: ``None`` or ``[]`` -> ``[None]`` (the model's default), an
    int -> ``[int]``, a list as given.  ``0`` stays ``0``."""
    if steps is None:
        return [None]
    if isinstance(steps, int):
        return [steps]
    return list(steps) or [None]


# -- clip discovery --------------------------------------------------------------------------------
def find_clips(ref: Path, split: Optional[str] = None, classes: Optional[list[str]] = None,
               max_clips: Optional[int] = None) -> tuple[Path, list[Clip], str]:
    """(root, clips, "manifest"|"folder") for ``ref``; see the module doc for the rules."""
    ref = Path(ref)
    if not ref.exists():
        raise EvalError(f"--ref {ref}: no such file or folder")
    if ref.is_dir() and (ref / MANIFEST_NAME).is_file():
        ref = ref / MANIFEST_NAME
    if ref.is_file():
        if ref.suffix.lower() != ".jsonl":
            raise EvalError(f"--ref {ref}: expected a folder or a manifest .jsonl file")
        root, clips, kind = ref.parent, _manifest_clips(ref), "manifest"
        split = "test" if split is None else split
    else:
        root, clips, kind = ref, _folder_clips(ref), "folder"
    if not clips:
        raise EvalError(f"--ref {ref}: no audio clips found")
    if split is not None and split != "all":
        clips = [c for c in clips if c.split == split]
        if not clips:
            raise EvalError(f"--ref {ref}: no clips in split {split!r} (use --split all for every clip)")
    if classes:
        clips = [c for c in clips if c.cls in classes]
        if not clips:
            raise EvalError(f"--ref {ref}: no clips of class {', '.join(classes)}")
    clips = _balanced(clips, max_clips)
    missing = [c.rel for c in clips if not c.path.is_file()]
    if missing:  # checked after filtering: a partly built corpus is fine if the chosen clips exist
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise EvalError(f"{ref}: clip {missing[0]} is missing{more}")
    for c in clips:
        if c.transcript is None:
            side = c.path.with_suffix(".txt")
            if side.is_file():
                c.transcript = side.read_text(encoding="utf-8", errors="replace").strip() or None
    return root, clips, kind


def _manifest_clips(path: Path) -> list[Clip]:
    from ..data.manifest import ManifestError, read

    try:
        entries = read(path)
    except ManifestError as e:
        raise EvalError(f"{path}: {e}") from None
    root = path.parent
    clips = []
    for i, e in enumerate(entries, 1):
        rel = e.get("path")
        if not isinstance(rel, str) or not rel:
            raise EvalError(f"{path}: entry {i} has no path")
        p = PurePosixPath(rel)
        if p.is_absolute() or ".." in p.parts:
            raise EvalError(f"{path}: entry {i}: path {rel!r} must be relative to the manifest's folder")
        text = e.get("text", e.get("transcript"))
        clips.append(Clip(path=root / rel, rel=rel, cls=str(e.get("cls") or OTHER),
                          split=e.get("split"), pkg=e.get("pkg"),
                          transcript=text if isinstance(text, str) and text.strip() else None,
                          lang=e.get("lang")))
    return sorted(clips, key=lambda c: c.rel)


def _folder_clips(root: Path) -> list[Clip]:
    clips = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or Path(name).suffix.lower() not in AUDIO_SUFFIXES:
                continue
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            parts = PurePosixPath(rel).parts[:-1]
            cls = next((p for p in parts if p in CLASSES), OTHER)
            split = next((p for p in parts if p in SPLITS), None)
            clips.append(Clip(path=path, rel=rel, cls=cls, split=split))
    return sorted(clips, key=lambda c: c.rel)


def _balanced(clips: list[Clip], n: Optional[int]) -> list[Clip]:
    """At most ``n`` clips, classes taken in turn (each in path order); result in path order."""
    if n is None or n >= len(clips):
        return clips
    by_cls: dict[str, list[Clip]] = {}
    for c in clips:
        by_cls.setdefault(c.cls, []).append(c)
    order = [k for k in (*CLASSES, OTHER) if k in by_cls] + sorted(k for k in by_cls if k not in (*CLASSES, OTHER))
    chosen: list[Clip] = []
    i = 0
    while len(chosen) < n:
        for k in order:
            if i < len(by_cls[k]) and len(chosen) < n:
                chosen.append(by_cls[k][i])
        i += 1
    return sorted(chosen, key=lambda c: c.rel)


def wer_applies(clip: Clip) -> bool:
    """A transcript exists and the language is English or unknown."""
    return bool(clip.transcript) and (clip.lang is None or str(clip.lang).lower().startswith("en"))


# -- codecs ----------------------------------------------------------------------------------------
class SharedEncode:
    """The model's tokens and bitrate for the clip being scored, computed once and reused by every
    model row: tokens do not depend on the decoder's step count, so the rows of one model differ
    only in decoding (and encoding a clip once per row would be wasted time).  Holds one clip."""

    def __init__(self, codec):
        self.codec = codec
        self._key: Optional[tuple] = None
        self._value: Optional[tuple] = None

    def get(self, clip: Clip, x: np.ndarray) -> tuple:
        """(tokens, kbps of the ``.scrt`` file, payload kbps, seconds the encode took)."""
        key = (clip.rel, len(x))
        if self._key != key:
            self._key = None  # a failed encode leaves nothing stale behind
            self._value = self._encode(x)
            self._key = key
        return self._value

    def _encode(self, x: np.ndarray) -> tuple:
        import torch

        from ...bitstream import StreamInfo, write_scrt

        t = time.perf_counter()
        wave = torch.from_numpy(x.astype(np.float32))[None]
        tokens = self.codec.encode(wave, SAMPLE_RATE)
        encode_s = time.perf_counter() - t
        info = dataclasses.replace(
            StreamInfo.for_codec(self.codec, n_samples=len(x), n_frames=tokens.shape[1]),
            model=self.codec.model_sha)
        buf = io.BytesIO()
        write_scrt(buf, info, tokens[0].numpy())
        kbps = len(buf.getvalue()) * 8 / (len(x) / SAMPLE_RATE) / 1000
        return tokens, kbps, info.payload_bps / 1000, encode_s


class ModelCodec:
    """Our model: encode, decode with ``steps``; bitrate of the ``.scrt`` it would write.

    ``steps`` is passed to the decode as given (``None``: the model's default; ``0`` is a real
    setting).  ``encoded`` shares one encode per clip between rows of the same model.
    ``code_s`` after :meth:`code`: encode + this row's decode seconds, whether or not the encode
    was reused, so every row's coding time means the same thing."""

    kind = "model"

    def __init__(self, codec, steps: Optional[int], seed: int = 0, name: str = MODEL_LABEL,
                 encoded: Optional[SharedEncode] = None):
        self.codec, self.steps, self.seed, self.name = codec, steps, seed, name
        self.encoded = SharedEncode(codec) if encoded is None else encoded
        self.code_s: Optional[float] = None

    def code(self, clip: Clip, x: np.ndarray) -> tuple[np.ndarray, float, float]:
        self.code_s = None
        tokens, kbps, payload_kbps, encode_s = self.encoded.get(clip, x)
        t = time.perf_counter()
        y = self.codec.decode(tokens, steps=self.steps, seed=self.seed, n_samples=len(x))
        self.code_s = encode_s + time.perf_counter() - t
        return y[0, 0].numpy().astype(np.float64), kbps, payload_kbps

    def describe(self) -> dict:
        cfg = self.codec.cfg
        return {"name": self.name, "kind": self.kind, "config": cfg.name, "model_sha": self.codec.model_sha,
                "token_rate": cfg.token_rate,
                "steps": self.steps if self.steps is not None else cfg.sampler.steps, "seed": self.seed}


class BaselineCodec:
    kind = "baseline"

    def __init__(self, baseline):
        self.baseline = baseline
        self.name = baseline.name

    def code(self, clip: Clip, x: np.ndarray) -> tuple[np.ndarray, float, float]:
        y, kbps = _baselines.run_baseline(self.baseline, x, SAMPLE_RATE)
        return y.astype(np.float64), kbps, math.nan

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "nominal_kbps": self.baseline.nominal_kbps}


class DecodedCodec:
    """Files already decoded by any codec, matched by relative path (any audio suffix)."""

    kind = "decoded"

    def __init__(self, folder: Path, name: str, kbps: Optional[float]):
        self.folder, self.name, self.kbps = Path(folder), name, kbps

    def find(self, clip: Clip) -> Optional[Path]:
        rel = Path(clip.rel)
        for cand in [self.folder / rel] + [self.folder / rel.with_suffix(s) for s in AUDIO_SUFFIXES]:
            if cand.is_file():
                return cand
        return None

    def code(self, clip: Clip, x: np.ndarray) -> tuple[np.ndarray, float, float]:
        from ...audio.load import load_waveform

        path = self.find(clip)
        if path is None:
            raise EvalError(f"{self.folder}: no decoded file for {clip.rel}")
        y = load_waveform(path, mono="first")[0][0].numpy().astype(np.float64)
        return y, math.nan if self.kbps is None else float(self.kbps), math.nan

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "folder": str(self.folder), "kbps": self.kbps}


def _load_reference(clip: Clip, max_seconds: float) -> np.ndarray:
    """The clip's first ``max_seconds`` (all of it for 0) at 16 kHz: read and resampled block by
    block, only the cut kept (the rest of the file is still read to check it)."""
    from ...audio.load import FileWaveform

    cut = int(round(max_seconds * SAMPLE_RATE)) if max_seconds and max_seconds > 0 else None
    return FileWaveform(clip.path, mono="first").read(cut)[0].numpy().astype(np.float64)


# -- the loop --------------------------------------------------------------------------------------
def run_eval(opts: EvalOptions, model=None) -> dict:
    """Code and score every clip; write the report into ``opts.out``; return the summary dict.

    ``model`` is a loaded :class:`~semanticodec_rt.codec.SemantiCodec` (``None``: not evaluated).
    """
    from . import report

    t0 = time.perf_counter()
    names = _metrics.parse_metric_names(None) if opts.metrics is None else opts.metrics
    root, clips, kind = find_clips(opts.ref, opts.split, opts.classes, opts.max_clips)

    codecs: list = []
    decoded, clips = _decoded_codecs(opts, clips)
    codecs += decoded
    if model is not None:
        codecs += model_codecs(model, opts.steps, opts.seed)
    for b in opts.baselines:
        _baselines.check_programs(b)
        codecs.append(BaselineCodec(b))
    if not codecs:
        raise EvalError("nothing to evaluate: give --model, --baselines or --decoded")
    _check_unique_names(codecs)

    opts.out.mkdir(parents=True, exist_ok=True)
    opts.log(f"eval: {len(clips)} clips from {opts.ref} ({kind}), codecs: "
             f"{', '.join(c.name for c in codecs)}; metrics: {', '.join(names)}")

    figure_rels = _figure_clips(clips)
    listen_rels = _listen_clips(clips, opts.listen)
    figure_audio: dict[str, dict] = {}  # the clips of the figures and of the listening page
    rows: list[dict] = []
    skipped: list[dict] = []
    from tqdm import tqdm

    bar = tqdm(total=len(clips) * len(codecs), desc="eval", unit="decode", file=sys.stderr,
               disable=not opts.progress, delay=1.0, leave=False)
    try:
        for clip in clips:
            try:
                x = _load_reference(clip, opts.max_seconds)
            except ValueError as e:  # AudioInputError: unreadable, empty, non-finite
                opts.warn(f"{clip.rel}: skipped ({e})")
                skipped.append({"clip": clip.rel, "reason": str(e)})
                bar.update(len(codecs))
                continue
            transcript = clip.transcript if wer_applies(clip) else None
            wer_ref, n_words = math.nan, 0
            if "wer" in names and transcript:
                n_words = len(_metrics.normalize_text(transcript))
                wer_ref = _metrics.wer(x, x, SAMPLE_RATE, transcript=transcript)
            if clip.rel in figure_rels or clip.rel in listen_rels:
                figure_audio[clip.rel] = {"cls": clip.cls, "original": x, "decodes": {}}
            for codec in codecs:
                bar.set_postfix_str(f"{codec.name} {Path(clip.rel).name}"[:40], refresh=False)
                rows.append(_score_one(clip, x, codec, names, transcript, wer_ref, n_words, opts,
                                       figure_audio.get(clip.rel)))
                bar.update(1)
    finally:
        bar.close()
    if not rows:
        raise EvalError("no clip could be scored (see the warnings above)")

    meta = {
        "created": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "semanticodec_rt": _version(),
        "ref": str(opts.ref),
        "ref_kind": kind,
        "split": opts.split if opts.split is not None else ("test" if kind == "manifest" else "all"),
        "classes": opts.classes or "all",
        "n_clips": len({r["clip"] for r in rows}),
        "skipped": skipped,
        "max_seconds": opts.max_seconds or None,
        "model": opts.model_spec if model is not None else None,
        "codecs": [c.describe() for c in codecs],
        "metrics": names,
        "metric_settings": _metrics.settings(),
        "visqol_mapping": _metrics.VISQOL_SPEECH_MAPPING,
        "alignment": {"envelope_step_ms": _align.ENVELOPE_STEP_S * 1000,
                      "max_delay_ms": _align.MAX_DELAY_S * 1000,
                      "refine_min_corr": _align.REFINE_MIN_CORR,
                      "length": "decode cut or zero-padded to the reference length"},
        "bitrate": "kbps = bitstream file bytes * 8 / duration (container/header included); "
                   "payload_kbps = the model's token payload",
        "runtime_s": None,
    }
    meta["listening_page"] = _page.PAGE_NAME if listen_rels else None
    meta["runtime_s"] = round(time.perf_counter() - t0, 1)
    summary = report.write_report(opts.out, rows, meta, [c.name for c in codecs], names,
                                  {r: a for r, a in figure_audio.items() if r in figure_rels})
    if listen_rels:
        _write_listening_page(opts.out, summary, rows, names, {r: figure_audio[r] for r in listen_rels
                                                               if r in figure_audio})
    opts.log(f"eval: report in {opts.out} ({len(rows)} scored decodes, {meta['runtime_s']} s)")
    return summary


def model_codecs(model, steps, seed: int = 0) -> list[ModelCodec]:
    """One row per step count, sharing each clip's encode.  A single count (or none) keeps the
    plain :data:`MODEL_LABEL`, as reports before step lists had; several are labelled
    ``MODEL_LABEL@<N>steps`` (``None``, the model's default, as its resolved count)."""
    counts = step_counts(steps)
    shared = SharedEncode(model)
    if len(counts) == 1:
        return [ModelCodec(model, counts[0], seed, encoded=shared)]
    default = model.cfg.sampler.steps
    return [ModelCodec(model, n, seed, name=f"{MODEL_LABEL}@{default if n is None else n}steps",
                       encoded=shared) for n in counts]


def _decoded_codecs(opts: EvalOptions, clips: list[Clip]) -> tuple[list, list[Clip]]:
    """A :class:`DecodedCodec` per ``opts.decoded`` folder, and the clips every folder has a
    decoded file for (so each row is scored on the same clips); a folder that matches no clip is
    an error, one that misses some a warning."""
    codecs = []
    keep = {c.rel for c in clips}
    for spec in opts.decoded:
        folder = Path(spec.folder)
        if not folder.is_dir():
            raise EvalError(f"--decoded {folder}: no such folder")
        dc = DecodedCodec(folder, spec.label or folder.resolve().name, spec.kbps)
        found = {c.rel for c in clips if dc.find(c) is not None}
        if not found:
            raise EvalError(f"--decoded {folder}: none of the {len(clips)} reference clips has a decoded "
                            f"file at the same relative path")
        if len(found) < len(clips):
            opts.warn(f"--decoded {folder}: {len(clips) - len(found)} of {len(clips)} clips have no "
                      f"decoded file; scoring only clips that have one")
        keep &= found
        codecs.append(dc)
    if not keep:
        raise EvalError("--decoded: no reference clip has a decoded file in every --decoded folder")
    return codecs, [c for c in clips if c.rel in keep]


def _check_unique_names(codecs: list) -> None:
    """Rows are keyed by name in the report: two of one name would be merged silently."""
    seen: set[str] = set()
    for c in codecs:
        if c.name in seen:
            hint = " (label the folders: --decoded DIR=LABEL)" if c.kind == "decoded" else ""
            raise EvalError(f"two rows are named {c.name!r}{hint}")
        seen.add(c.name)


def _score_one(clip: Clip, x: np.ndarray, codec, names: list[str], transcript, wer_ref: float,
               n_words: int, opts: EvalOptions, fig: Optional[dict]) -> dict:
    row = {"clip": clip.rel, "cls": clip.cls, "split": clip.split or "", "pkg": clip.pkg or "",
           "dur_s": round(len(x) / SAMPLE_RATE, 4), "codec": codec.name, "kbps": math.nan,
           "payload_kbps": math.nan, "lag_ms": math.nan, "code_s": math.nan}
    t = time.perf_counter()
    try:
        y, kbps, payload = codec.code(clip, x)
    except EvalError as e:
        opts.warn(f"{clip.rel}: {codec.name} failed ({e})")
        row.update({n: math.nan for n in names})
        row.update({"wer_ref": wer_ref, "n_words": n_words, "notes": f"codec failed: {e}",
                    "_notes": {"codec": f"failed: {e}"}})
        return row
    elapsed = time.perf_counter() - t
    own = getattr(codec, "code_s", None)  # a model row whose encode was shared times itself
    row["code_s"] = round(elapsed if own is None else own, 3)
    row["kbps"], row["payload_kbps"] = kbps, payload
    ref, deg, lag = _align.align(x, y, SAMPLE_RATE)
    row["lag_ms"] = lag * 1000 / SAMPLE_RATE
    values, notes = _metrics.score(ref, deg, SAMPLE_RATE, names, transcript=transcript)
    row.update(values)
    row["wer_ref"], row["n_words"] = wer_ref, n_words
    if "wer" in notes and clip.transcript and not transcript:
        notes["wer"] = f"n/a: language {clip.lang!r} is not English"
    row["notes"] = "; ".join(f"{k}: {v}" for k, v in notes.items())
    row["_notes"] = notes
    if opts.save_audio and codec.kind != "decoded":
        _save_audio(opts.out / "audio" / _safe(codec.name) / Path(clip.rel).with_suffix(".wav"), deg)
    if fig is not None:
        fig["decodes"][codec.name] = (deg, kbps)
    return row


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def _save_audio(path: Path, y: np.ndarray) -> None:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(y, -1, 1).astype(np.float32), SAMPLE_RATE, subtype="PCM_16")


def _listen_clips(clips: list[Clip], per_class: int) -> list[str]:
    """The first ``per_class`` clips of each class, classes in report order (the page's order)."""
    chosen: dict[str, list[str]] = {}
    for c in clips:
        picked = chosen.setdefault(c.cls, [])
        if len(picked) < per_class:
            picked.append(c.rel)
    order = [k for k in (*CLASSES, OTHER) if k in chosen] + [k for k in chosen if k not in (*CLASSES, OTHER)]
    return [rel for k in order for rel in chosen[k]]


def _write_listening_page(out: Path, summary: dict, rows: list[dict], names: list[str], audio: dict) -> None:
    """``listen.html``: players and spectrograms of the listening clips, the tables and the chart."""
    from . import report

    listen = {rel: dict(a, spectrogram=_page.spectrogram_png(f"{a['cls']}: {rel}", a["original"], a["decodes"]))
              for rel, a in audio.items()}
    chart = out / report.CHART_NAME
    _page.write_page(out / _page.PAGE_NAME, summary["summary"], summary["meta"], rows, names, listen,
                     chart.read_bytes() if chart.exists() else None)


def _figure_clips(clips: list[Clip]) -> set[str]:
    """The first clip of each class (speech, music, sfx, other), up to :data:`FIGURE_CLIPS`."""
    return set(_listen_clips(clips, 1)[:FIGURE_CLIPS])


def _version() -> str:
    from ... import __version__

    return __version__
