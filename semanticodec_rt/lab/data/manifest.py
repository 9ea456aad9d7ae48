"""``OUT/manifest.jsonl``: one JSON object per clip, sorted by path.

Fields (all required, no others):

=========  ======  ===============================================================================
field      type    meaning
=========  ======  ===============================================================================
path       str     the FLAC, relative to OUT: ``<split>/<cls>/<pkg>/<name>.flac``
cls        str     ``speech``, ``music`` or ``sfx``
pkg        str     the Debian package it came from
licence    str     that package's licence (see :mod:`.packages`)
src        str     the file's path inside the package (``archive!entry`` for zip entries)
orig_sr    int     the source sample rate in Hz
dur        float   seconds at 16 kHz (samples / 16000, 6 decimals)
split      str     ``train``, ``valid``, ``test`` or ``test_unseen``
group      str     the group key (files of a group share a split)
=========  ======  ===============================================================================

:func:`validate` checks the fields, the path layout, unique paths, one split per group and,
when given the held-out packages, that ``test_unseen`` holds exactly them; with ``root`` it also
checks that every file exists (``deep``: is 16 kHz mono 16-bit FLAC of length ``dur``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath
from typing import Iterable, Optional

from ...config import SAMPLE_RATE
from .packages import CLASSES
from .splits import SPLITS

FIELDS = ("path", "cls", "pkg", "licence", "src", "orig_sr", "dur", "split", "group")
NAME = "manifest.jsonl"


class ManifestError(ValueError):
    """The manifest is malformed or inconsistent; ``problems`` lists every finding."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        super().__init__("; ".join(problems[:3]) + more)


def make_entry(*, path: str, cls: str, pkg: str, licence: str, src: str, orig_sr: int,
               n_samples: int, split: str, group: str) -> dict:
    """A manifest entry with the fields in their canonical order."""
    return {"path": path, "cls": cls, "pkg": pkg, "licence": licence, "src": src,
            "orig_sr": int(orig_sr), "dur": round(n_samples / SAMPLE_RATE, 6), "split": split,
            "group": group}


def dumps(entries: Iterable[dict]) -> str:
    """The manifest text: entries sorted by path, one compact JSON object a line."""
    lines = [json.dumps({k: e[k] for k in FIELDS}, ensure_ascii=False, separators=(", ", ": "))
             for e in sorted(entries, key=lambda e: e["path"])]
    return "".join(line + "\n" for line in lines)


def write(path: str | os.PathLike, entries: Iterable[dict]) -> None:
    """Write ``entries`` to ``path`` atomically (sorted by path)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(dumps(entries), encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read(path: str | os.PathLike) -> list[dict]:
    """The entries of the manifest at ``path`` (JSON errors raise :class:`ManifestError`)."""
    entries, problems = [], []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                problems.append(f"line {i}: not JSON ({e.msg})")
                continue
            if not isinstance(obj, dict):
                problems.append(f"line {i}: not a JSON object")
                continue
            entries.append(obj)
    if problems:
        raise ManifestError(problems)
    return entries


def _check_entry(e: dict, where: str) -> list[str]:
    keys = set(e)
    if keys != set(FIELDS):
        missing = [k for k in FIELDS if k not in keys]
        extra = sorted(keys - set(FIELDS))
        return [f"{where}: " + ", ".join(
            ([f"missing {missing}"] if missing else []) + ([f"unknown {extra}"] if extra else []))]
    out = []
    for k in ("path", "cls", "pkg", "licence", "src", "split", "group"):
        if not isinstance(e[k], str) or not e[k]:
            out.append(f"{where}: {k} must be a non-empty string")
    if not isinstance(e["orig_sr"], int) or isinstance(e["orig_sr"], bool) or e["orig_sr"] <= 0:
        out.append(f"{where}: orig_sr must be a positive integer")
    if not isinstance(e["dur"], (int, float)) or isinstance(e["dur"], bool) or not e["dur"] > 0:
        out.append(f"{where}: dur must be a positive number")
    if out:
        return out
    if e["cls"] not in CLASSES:
        out.append(f"{where}: cls {e['cls']!r} is not one of {CLASSES}")
    if e["split"] not in SPLITS:
        out.append(f"{where}: split {e['split']!r} is not one of {SPLITS}")
    p = PurePosixPath(e["path"])
    if p.is_absolute() or ".." in p.parts or "\\" in e["path"]:
        out.append(f"{where}: path must be relative to the corpus folder")
    elif len(p.parts) != 4 or p.suffix != ".flac" or tuple(p.parts[:3]) != (e["split"], e["cls"], e["pkg"]):
        out.append(f"{where}: path {e['path']!r} is not {e['split']}/{e['cls']}/{e['pkg']}/NAME.flac")
    return out


def validate(entries: list[dict], root: str | os.PathLike | None = None, *,
             held_out: Optional[Iterable[str]] = None, deep: bool = False) -> None:
    """Raise :class:`ManifestError` listing every problem of ``entries`` (see module docstring)."""
    problems: list[str] = []
    seen: dict[str, int] = {}
    group_split: dict[str, str] = {}
    held = None if held_out is None else set(held_out)
    for i, e in enumerate(entries, 1):
        where = f"entry {i}" + (f" ({e.get('path')})" if isinstance(e.get("path"), str) else "")
        found = _check_entry(e, where)
        problems += found
        if found:
            continue
        if e["path"] in seen:
            problems.append(f"{where}: path repeats entry {seen[e['path']]}")
        seen.setdefault(e["path"], i)
        other = group_split.setdefault(e["group"], e["split"])
        if other != e["split"]:
            problems.append(f"{where}: group {e['group']!r} is in both {other} and {e['split']}")
        if held is not None and (e["split"] == "test_unseen") != (e["pkg"] in held):
            problems.append(f"{where}: package {e['pkg']} "
                            + ("is held out but not in test_unseen" if e["pkg"] in held
                               else "is not held out but in test_unseen"))
        if root is not None:
            problems += _check_file(Path(root) / e["path"], e, where, deep)
    if problems:
        raise ManifestError(problems)


def _check_file(path: Path, e: dict, where: str, deep: bool) -> list[str]:
    if not path.is_file():
        return [f"{where}: file missing"]
    if not deep:
        return []
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception as ex:
        return [f"{where}: unreadable ({ex})"]
    out = []
    if (info.format, info.subtype, info.samplerate, info.channels) != ("FLAC", "PCM_16", SAMPLE_RATE, 1):
        out.append(f"{where}: is {info.format}/{info.subtype} {info.samplerate} Hz x{info.channels}, "
                   f"not 16 kHz mono 16-bit FLAC")
    if abs(info.frames / SAMPLE_RATE - e["dur"]) > 1e-5:
        out.append(f"{where}: {info.frames} samples but dur {e['dur']}")
    return out
