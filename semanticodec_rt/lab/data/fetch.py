"""Get the packages: ``apt-get download`` into ``WORK/debs``, ``dpkg-deb -x`` into ``WORK/x/<pkg>``.

No root is needed and nothing is installed: ``apt-get download`` only reads the apt lists
(``apt-get update`` must have run) and fetches the .deb files of the candidate versions.

* A .deb already in ``WORK/debs`` is not downloaded again; downloads go to a private folder
  first and are moved in only after ``dpkg-deb --info`` accepts them, so ``WORK/debs`` never
  holds a half file.
* Extraction goes to a temporary folder renamed to ``WORK/x/<pkg>`` at the end, with a marker
  file naming the .deb it came from; an existing extraction of the same .deb is reused.
* Audio entries of zip archives inside a package (:class:`~.packages.Archive`) are unpacked
  next to the archive, into ``<archive>.unzipped/`` (Python's zipfile; no unzip needed).

:func:`audio_files` lists the audio files of an extraction with their package paths
(``/usr/...``; ``<archive>!/<entry>`` for archive entries), symlinks skipped.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Callable, Iterable, Optional

from . import DataError
from .packages import AUDIO_EXTS, Package

MARKER = ".scrt-extracted"
UNZIPPED = ".unzipped"

_NETWORK_HINTS = ("temporary failure resolving", "could not resolve", "failed to fetch",
                  "could not connect", "connection failed", "connection timed out",
                  "network is unreachable", "unable to connect", "no route to host")


def require_tools() -> None:
    """Raise :class:`DataError` if ``apt-get`` or ``dpkg-deb`` is missing."""
    for tool, why in (("apt-get", "downloads the packages"), ("dpkg-deb", "unpacks them")):
        if shutil.which(tool) is None:
            raise DataError(f"{tool} not found: the data builder needs a Debian/Ubuntu system "
                            f"({tool} {why})")


def _run(cmd: list[str], cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    except OSError as e:
        raise DataError(f"cannot run {cmd[0]}: {e}") from None


def deb_package_name(deb: Path) -> Optional[str]:
    """The ``Package`` field of ``deb`` if ``dpkg-deb`` reads it, else None (corrupt/partial)."""
    proc = _run(["dpkg-deb", "--field", str(deb), "Package"])
    return proc.stdout.strip() if proc.returncode == 0 else None


def find_deb(debs_dir: Path, name: str) -> Optional[Path]:
    """The .deb of package ``name`` already in ``debs_dir`` (newest name if several), or None."""
    candidates = sorted(debs_dir.glob(f"{name}_*.deb"), reverse=True)
    for deb in candidates:
        if deb_package_name(deb) == name:
            return deb
    return None


def _apt_error(stderr: str) -> DataError:
    errors = [ln[2:].strip() for ln in stderr.splitlines() if ln.startswith("E:")]
    first = errors[0] if errors else (stderr.strip().splitlines() or ["apt-get download failed"])[-1]
    low = stderr.lower()
    if any(h in low for h in _NETWORK_HINTS):
        return DataError(f"apt-get download cannot reach the Debian mirror (no network?): {first}",
                         network=True)
    if "unable to locate package" in low or "has no installation candidate" in low \
            or "can't select" in low:
        return DataError(f"apt-get download: {first} (are the apt lists current? run "
                         f"'apt-get update')")
    return DataError(f"apt-get download failed: {first}")


def download(names: Iterable[str], debs_dir: Path,
             log: Callable[[str], None] = lambda s: None) -> dict[str, Path]:
    """``{name: .deb path}`` for every package, downloading the ones not yet in ``debs_dir``."""
    debs_dir = Path(debs_dir)
    debs_dir.mkdir(parents=True, exist_ok=True)
    names = list(dict.fromkeys(names))
    found = {n: find_deb(debs_dir, n) for n in names}
    missing = [n for n in names if found[n] is None]
    if missing:
        log(f"downloading {len(missing)} package(s): {' '.join(missing)}")
        partial = debs_dir / f".partial-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        try:
            proc = _run(["apt-get", "download", *missing], cwd=partial)
            if proc.returncode != 0:
                raise _apt_error(proc.stderr)
            for deb in sorted(partial.glob("*.deb")):
                name = deb_package_name(deb)
                if name is None:
                    raise DataError(f"downloaded {deb.name} is not a valid .deb (dpkg-deb --info failed)")
                if name in found and found[name] is None:
                    os.replace(deb, debs_dir / deb.name)
                    found[name] = debs_dir / deb.name
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        still = [n for n in names if found[n] is None]
        if still:
            raise DataError(f"apt-get download gave no .deb for: {' '.join(still)}")
    return found  # type: ignore[return-value]


def extract(pkg: Package, deb: Path, x_dir: Path) -> Path:
    """``WORK/x/<pkg>``: the files of ``deb`` (and the audio of its archives), reused if current."""
    x_dir = Path(x_dir)
    dest = x_dir / pkg.name
    marker = dest / MARKER
    if marker.is_file() and marker.read_text().strip() == deb.name:
        return dest
    x_dir.mkdir(parents=True, exist_ok=True)
    tmp = x_dir / f".{pkg.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        proc = _run(["dpkg-deb", "-x", str(deb), str(tmp)])
        if proc.returncode != 0:
            msg = (proc.stderr.strip().splitlines() or ["?"])[-1]
            raise DataError(f"dpkg-deb -x {deb.name} failed: {msg}")
        if pkg.archives:
            _unzip_archives(pkg, tmp)
        (tmp / MARKER).write_text(deb.name + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _unzip_archives(pkg: Package, root: Path) -> None:
    patterns = [(re.compile(a.pattern), a.prefix) for a in pkg.archives]
    for path in sorted(_walk_files(root)):
        pkg_path = "/" + path.relative_to(root).as_posix()
        for regex, prefix in patterns:
            if regex.search(pkg_path):
                _unzip_audio(path, path.with_name(path.name + UNZIPPED), prefix)
                break


def _unzip_audio(archive: Path, dest: Path, prefix: str) -> int:
    """Unpack the audio entries of ``archive`` whose names start with ``prefix`` into ``dest``."""
    n = 0
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{archive.name}: not a readable zip archive ({e})") from None
    with zf:
        for info in zf.infolist():
            name = info.filename
            if info.is_dir() or not name.startswith(prefix) or not name.lower().endswith(AUDIO_EXTS):
                continue
            parts = [p for p in name.split("/") if p not in ("", ".")]
            if any(p == ".." for p in parts):  # never write outside dest
                continue
            target = dest.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            n += 1
    return n


def _walk_files(root: Path):
    for dirpath, dirnames, filenames in os.walk(root):  # does not follow symlinked folders
        dirnames.sort()
        for f in sorted(filenames):
            p = Path(dirpath) / f
            if not p.is_symlink():
                yield p


def package_path(root: Path, path: Path) -> str:
    """The package path of ``path`` inside the extraction ``root`` (``.unzipped/`` -> ``!/``)."""
    rel = "/" + path.relative_to(root).as_posix()
    return rel.replace(UNZIPPED + "/", "!/")


def audio_files(root: Path) -> list[tuple[str, Path]]:
    """``[(package path, file)]`` of the audio files under ``root``, sorted; symlinks skipped."""
    out = []
    for p in _walk_files(Path(root)):
        if p.name.lower().endswith(AUDIO_EXTS):
            out.append((package_path(root, p), p))
    out.sort(key=lambda t: t[0])
    return out
