"""Build the corpus: fetch -> extract -> classify -> split -> convert -> manifest -> summary.

Layout of ``OUT``::

    OUT/{train,valid,test,test_unseen}/<cls>/<pkg>/<name>.flac   16 kHz mono 16-bit FLAC
    OUT/manifest.jsonl                                           one entry per clip (.manifest)
    OUT/summary.md, OUT/summary.json                             hours per class x split, ...
    OUT/.state/<pkg>.jsonl                                       per-file results (the cache)
    OUT/.work/{debs,x}                                           downloads and extractions
                                                                 (default of --work)

Resumable and idempotent: every finished file is recorded in ``OUT/.state/<pkg>.jsonl`` at once
(``src``, a signature = .deb file name + source size, the status and the output length), and
FLACs are written atomically.  A later run reuses a record when the signature and the output
path still match and the FLAC is there with that length, so an interrupted build goes on where
it stopped and a finished one is a no-op that writes the same manifest and summary.  Files
skipped for want of ffmpeg and failed files are not recorded, so they are tried again.

``<name>`` is the file's package path below the folder common to all the package's audio files,
``/`` -> ``__``, other characters outside ``[A-Za-z0-9._+-]`` -> ``_``, extension dropped; names
that collide get ``-<sha1[:8]>`` of the package path.

``--only PKG ...`` processes just those packages of the tier; the manifest keeps the entries of
the tier's other packages that an earlier build left in ``OUT`` (whose files still exist).
FLACs of a processed package that are no longer in the manifest (rules changed, a smaller
smoke cap) are deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Optional

from . import DataError, fetch
from . import manifest as mf
from .convert import convert_task, find_ffmpeg, needs_ffmpeg, worker_init
from .packages import CLASSES, HELD_OUT, SMOKE_MAX_FILES, Package, get_package, packages_for_tier
from .splits import SPLITS, group_key, split_of

STATE_DIR = ".state"
CACHED_STATUSES = ("ok", "short", "silent")


@dataclass
class Options:
    out: Path
    tier: str
    work: Optional[Path] = None
    jobs: int = 2
    only: Optional[list[str]] = None
    progress: bool = True
    log: Callable[[str], None] = print
    warn: Callable[[str], None] = field(default=lambda s: print(f"warning: {s}", file=sys.stderr))


@dataclass
class Task:
    pkg: Package
    src: str  # package path
    file: Path  # the extracted source file
    cls: str
    group: str
    split: str
    rel: str  # manifest path, relative to OUT
    sig: str


# -- planning -----------------------------------------------------------------------------------------
def select_packages(tier: str, only: Optional[list[str]] = None) -> list[Package]:
    """The tier's packages, restricted to ``only`` (each must belong to the tier)."""
    pkgs = packages_for_tier(tier)
    if not only:
        return pkgs
    names = {p.name for p in pkgs}
    unknown = [n for n in only if n not in names]
    if unknown:
        raise DataError(f"not in tier {tier}: {', '.join(unknown)} "
                        f"(its packages: {', '.join(sorted(names))})")
    wanted = set(only)
    return [p for p in pkgs if p.name in wanted]


_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
MAX_NAME = 180


def output_names(pkg_paths: list[str]) -> dict[str, str]:
    """``{package path: file name without .flac}`` for the audio files of one package."""
    if not pkg_paths:
        return {}
    dirs = [posixpath.dirname(p) for p in pkg_paths]
    common = posixpath.commonpath(dirs) if len(set(dirs)) > 1 else dirs[0]
    names = {}
    for p in pkg_paths:
        rel = posixpath.relpath(posixpath.splitext(p)[0], common)
        name = "__".join(_UNSAFE.sub("_", part) for part in rel.split("/")).lstrip(".") or "audio"
        if len(name) > MAX_NAME:
            name = name[:MAX_NAME] + "-" + _sha8(p)
        names[p] = name
    counts = Counter(names.values())
    return {p: (n if counts[n] == 1 else f"{n}-{_sha8(p)}") for p, n in names.items()}


def _sha8(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]


def plan_package(pkg: Package, root: Path, deb_name: str, tier: str) -> list[Task]:
    """The files of ``pkg`` (extracted at ``root``) to convert, sorted by package path."""
    files = fetch.audio_files(root)
    names = output_names([p for p, _ in files])
    tasks = []
    for src, path in files:
        cls = pkg.classify(src)
        if cls is None:
            continue
        group = group_key(pkg, src)
        split = split_of(group, pkg.held_out)
        rel = f"{split}/{cls}/{pkg.name}/{names[src]}.flac"
        tasks.append(Task(pkg, src, path, cls, group, split, rel, f"{deb_name}:{path.stat().st_size}"))
    if tier == "smoke" and len(tasks) > SMOKE_MAX_FILES:
        tasks = sorted(tasks, key=lambda t: _sha8(t.src) + t.src)[:SMOKE_MAX_FILES]
    return sorted(tasks, key=lambda t: t.src)


# -- the per-file cache ----------------------------------------------------------------------------------
def _state_path(out: Path, pkg: str) -> Path:
    return out / STATE_DIR / f"{pkg}.jsonl"


def load_state(out: Path, pkg: str) -> dict[str, dict]:
    """``{src: record}`` from ``OUT/.state/<pkg>.jsonl`` (the last record of a src wins)."""
    records: dict[str, dict] = {}
    path = _state_path(out, pkg)
    if not path.is_file():
        return records
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:  # a line cut by an interruption
            continue
        if isinstance(r, dict) and isinstance(r.get("src"), str):
            records[r["src"]] = r
    return records


def _reusable(task: Task, r: Optional[dict], out: Path) -> bool:
    if r is None or r.get("sig") != task.sig or r.get("status") not in CACHED_STATUSES:
        return False
    if r["status"] != "ok":
        return True
    if r.get("path") != task.rel:
        return False
    flac = out / task.rel
    if not flac.is_file():
        return False
    import soundfile as sf

    try:
        return sf.info(str(flac)).frames == r.get("n")
    except Exception:
        return False


def _record(task: Task, result: dict) -> dict:
    r = {"src": task.src, "sig": task.sig, "status": result["status"],
         "orig_sr": result["orig_sr"], "n": result["n_samples"]}
    if result["status"] == "ok":
        r["path"] = task.rel
    return r


# -- the build -----------------------------------------------------------------------------------------
def build(opts: Options) -> dict:
    """Build (or bring up to date) the corpus in ``opts.out``; returns the summary dict."""
    t0 = time.monotonic()
    log, warn = opts.log, opts.warn
    out = Path(opts.out).expanduser().resolve()
    work = Path(opts.work).expanduser().resolve() if opts.work else out / ".work"
    if opts.jobs < 1:
        raise DataError("--jobs must be at least 1")
    pkgs = select_packages(opts.tier, opts.only)
    fetch.require_tools()
    out.mkdir(parents=True, exist_ok=True)
    (out / STATE_DIR).mkdir(exist_ok=True)

    # 1. download and extract
    debs = fetch.download([p.name for p in pkgs], work / "debs", log)
    mb = sum(d.stat().st_size for d in debs.values()) / 1e6
    log(f"{len(pkgs)} package(s), {mb:.1f} MB of .deb files in {work / 'debs'}")
    tasks: list[Task] = []
    for p in pkgs:
        root = fetch.extract(p, debs[p.name], work / "x")
        tasks += plan_package(p, root, debs[p.name].name, opts.tier)

    # 2. reuse what an earlier run finished
    states = {p.name: load_state(out, p.name) for p in pkgs}
    results: dict[str, dict] = {}  # manifest path -> record
    pending: list[Task] = []
    for t in tasks:
        r = states[t.pkg.name].get(t.src)
        if _reusable(t, r, out):
            results[t.rel] = r
        else:
            pending.append(t)
    ffmpeg = find_ffmpeg()
    skipped_ffmpeg: list[Task] = []
    if ffmpeg is None:
        skipped_ffmpeg = [t for t in pending if needs_ffmpeg(t.file)]
        pending = [t for t in pending if not needs_ffmpeg(t.file)]
        for t in skipped_ffmpeg:
            results[t.rel] = {"src": t.src, "status": "no_ffmpeg", "orig_sr": 0, "n": 0}
        if skipped_ffmpeg:
            by_pkg = Counter(t.pkg.name for t in skipped_ffmpeg)
            warn(f"{len(skipped_ffmpeg)} file(s) need ffmpeg (.g722/.wv), which is not installed: "
                 f"skipped ({', '.join(f'{k} {v}' for k, v in sorted(by_pkg.items()))}); "
                 f"install ffmpeg (or set SCRT_FFMPEG) to include them")
    log(f"{len(tasks)} audio file(s): {len(tasks) - len(pending) - len(skipped_ffmpeg)} already done, "
        f"{len(pending)} to convert with {opts.jobs} job(s)")

    # 3. convert
    errors: list[str] = []
    if pending:
        _convert_all(pending, out, ffmpeg, opts, results, errors)

    # 4. compact the caches, write the manifest, prune stale files
    by_pkg_tasks = defaultdict(list)
    for t in tasks:
        by_pkg_tasks[t.pkg.name].append(t)
    for p in pkgs:
        recs = [results[t.rel] for t in by_pkg_tasks[p.name]
                if results.get(t.rel, {}).get("status") in CACHED_STATUSES]
        _write_lines(_state_path(out, p.name), [json.dumps(r, ensure_ascii=False) for r in recs])
    entries = [mf.make_entry(path=t.rel, cls=t.cls, pkg=t.pkg.name, licence=t.pkg.licence, src=t.src,
                             orig_sr=results[t.rel]["orig_sr"], n_samples=results[t.rel]["n"],
                             split=t.split, group=t.group)
               for t in tasks if results.get(t.rel, {}).get("status") == "ok"]
    entries += _kept_entries(out, opts.tier, {p.name for p in pkgs})
    mf.validate(entries, out, held_out=HELD_OUT)
    mf.write(out / mf.NAME, entries)
    removed = _prune(out, pkgs, {e["path"] for e in entries})
    if removed:
        log(f"removed {removed} stale file(s)")

    # 5. summary
    status = defaultdict(Counter)
    for t in tasks:
        status[t.pkg.name][results.get(t.rel, {}).get("status", "error")] += 1
    summary = summarize(entries, opts.tier, status, errors)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    (out / "summary.md").write_text(summary_markdown(summary))
    log("")
    log(hours_table(summary))
    c = summary["counts"]
    log(f"\n{c['files']} files, {summary['hours']['total']['total']:.3f} h -> {out}; dropped "
        f"{c['short']} short + {c['silent']} silent, {c['no_ffmpeg']} skipped (no ffmpeg), "
        f"{c['error']} error(s); {time.monotonic() - t0:.1f} s")
    for e in errors[:5]:
        warn(e)
    if len(errors) > 5:
        warn(f"... and {len(errors) - 5} more errors (summary.json lists them)")
    return summary


def _convert_all(pending: list[Task], out: Path, ffmpeg: Optional[str], opts: Options,
                 results: dict, errors: list[str]) -> None:
    from tqdm import tqdm

    by_key = {t.rel: t for t in pending}
    # biggest first: the long music tracks do not end up alone at the end
    order = sorted(pending, key=lambda t: (-t.file.stat().st_size, t.rel))
    jobs = [(t.rel, str(t.file), str(out / t.rel), ffmpeg) for t in order]
    handles: dict[str, object] = {}
    bar = tqdm(total=len(jobs), desc="convert", unit="file", file=sys.stderr,
               disable=not opts.progress, leave=False)

    def done(key: str, result: dict) -> None:
        t = by_key[key]
        r = _record(t, result)
        results[key] = r
        if result["status"] == "error":
            errors.append(result["message"])
        if r["status"] in CACHED_STATUSES:
            f = handles.get(t.pkg.name)
            if f is None:
                f = handles[t.pkg.name] = open(_state_path(out, t.pkg.name), "a", encoding="utf-8")
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
            f.flush()
        bar.update(1)

    try:
        if opts.jobs == 1 or len(jobs) == 1:
            for job in jobs:
                done(*convert_task(job))
        else:
            ctx = get_context("spawn")  # torch and fork do not mix
            # Pool.__exit__ terminates the workers, so Ctrl-C or an error stops at once; what
            # finished is already in the state files.
            with ctx.Pool(min(opts.jobs, len(jobs)), initializer=worker_init) as pool:
                for key, result in pool.imap_unordered(convert_task, jobs):
                    done(key, result)
    finally:
        bar.close()
        for f in handles.values():
            f.close()


def _kept_entries(out: Path, tier: str, processed: set[str]) -> list[dict]:
    """Entries of the tier's unprocessed packages from an existing manifest (files present)."""
    path = out / mf.NAME
    if not path.is_file():
        return []
    try:
        old = mf.read(path)
    except (mf.ManifestError, OSError, UnicodeDecodeError):
        return []
    tier_pkgs = {p.name for p in packages_for_tier(tier)}
    return [e for e in old
            if isinstance(e, dict) and set(e) == set(mf.FIELDS) and e.get("pkg") in tier_pkgs
            and e["pkg"] not in processed and (out / str(e["path"])).is_file()]


def _prune(out: Path, pkgs: list[Package], keep: set[str]) -> int:
    removed = 0
    for split in SPLITS:
        for cls in CLASSES:
            for p in pkgs:
                d = out / split / cls / p.name
                if not d.is_dir():
                    continue
                for f in sorted(d.iterdir()):
                    rel = f"{split}/{cls}/{p.name}/{f.name}"
                    if f.is_file() and rel not in keep and (f.suffix == ".flac" or f.name.endswith(".tmp")):
                        f.unlink()
                        removed += 1
                if not any(d.iterdir()):
                    d.rmdir()
    return removed


def _write_lines(path: Path, lines: list[str]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    os.replace(tmp, path)


# -- summary ---------------------------------------------------------------------------------------------
def summarize(entries: list[dict], tier: str, status: dict, errors: list[str]) -> dict:
    """Hours and files per class x split, per package, and the drop/skip/error counts."""
    hours = {c: {s: 0.0 for s in (*SPLITS, "total")} for c in (*CLASSES, "total")}
    files = {c: {s: 0 for s in (*SPLITS, "total")} for c in (*CLASSES, "total")}
    per_pkg: dict[str, dict] = {}
    for e in entries:
        h = e["dur"] / 3600
        for c in (e["cls"], "total"):
            for s in (e["split"], "total"):
                hours[c][s] += h
                files[c][s] += 1
        pp = per_pkg.setdefault(e["pkg"], {"licence": e["licence"], "files": 0,
                                           "hours": {c: 0.0 for c in CLASSES}})
        pp["files"] += 1
        pp["hours"][e["cls"]] += h
    for name, counts in status.items():
        pp = per_pkg.setdefault(name, {"licence": get_package(name).licence, "files": 0,
                                       "hours": {c: 0.0 for c in CLASSES}})
        for k in ("short", "silent", "no_ffmpeg", "error"):
            pp[k] = counts.get(k, 0)
    hours = {c: {s: round(v, 4) for s, v in row.items()} for c, row in hours.items()}
    for pp in per_pkg.values():
        pp["hours"] = {c: round(v, 4) for c, v in pp["hours"].items()}
    total = Counter()
    for counts in status.values():
        total.update(counts)
    return {
        "tier": tier,
        "sample_rate": mf.SAMPLE_RATE,
        "hours": hours,
        "files": files,
        "packages": dict(sorted(per_pkg.items())),
        "held_out": sorted(HELD_OUT),
        "counts": {"files": len(entries), "short": total.get("short", 0),
                   "silent": total.get("silent", 0), "no_ffmpeg": total.get("no_ffmpeg", 0),
                   "error": total.get("error", 0)},
        "errors": sorted(errors),
    }


def _table(rows: dict, fmt: Callable[[object], str], label: str) -> str:
    cols = (*SPLITS, "total")
    lines = [f"| {label} | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for c, row in rows.items():
        lines.append(f"| {c} | " + " | ".join(fmt(row[s]) for s in cols) + " |")
    return "\n".join(lines)


def hours_table(summary: dict) -> str:
    """The hours-per-class-x-split table (markdown, also readable as plain text)."""
    return _table(summary["hours"], lambda v: f"{v:.3f}", "hours")


def summary_markdown(summary: dict) -> str:
    c = summary["counts"]
    parts = [
        f"# Corpus summary: tier {summary['tier']}",
        "",
        f"{c['files']} clips of 16 kHz mono 16-bit FLAC.  Dropped: {c['short']} shorter than 0.25 s, "
        f"{c['silent']} silent; skipped for want of ffmpeg: {c['no_ffmpeg']}; errors: {c['error']}.  "
        f"Held out (test_unseen): {', '.join(summary['held_out'])}.",
        "",
        "## Hours per class and split",
        "",
        hours_table(summary),
        "",
        "## Files per class and split",
        "",
        _table(summary["files"], str, "files"),
        "",
        "## Packages",
        "",
        "| package | licence | files | speech h | music h | sfx h | dropped | no ffmpeg | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, p in summary["packages"].items():
        h = p["hours"]
        dropped = p.get("short", 0) + p.get("silent", 0)
        parts.append(f"| {name} | {p['licence']} | {p['files']} | {h['speech']:.3f} | {h['music']:.3f} | "
                     f"{h['sfx']:.3f} | {dropped} | {p.get('no_ffmpeg', 0)} | {p.get('error', 0)} |")
    if summary["errors"]:
        parts += ["", "## Errors", ""] + [f"* {e}" for e in summary["errors"]]
    return "\n".join(parts) + "\n"
