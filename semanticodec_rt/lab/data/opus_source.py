"""The opus 1.5.2 source from Debian, fetched and built without touching the system's apt set-up.

Opus 1.5 carries pretrained speech models as C tables (FARGAN, DRED, LACE/NoLACE, the pitch DNN)
and the C programs that run them (``fargan_demo``, ``opus_demo``, ``dump_data``).  Debian's
source package ``opus`` 1.5.2-2 (trixie; BSD-3-Clause) holds them all:

* :func:`fetch` runs ``apt-get source --download-only`` with a private apt configuration (its own
  ``sources.list`` holding one ``deb-src`` line, its own lists and cache under ``WORK/apt``),
  checks the upstream tarball's sha256 and unpacks it with ``dpkg-source -x``;
* :func:`build` configures with the deep-learning parts on and makes the three demo programs
  (about 2 minutes on 2 cores, offline).

Both reuse what an earlier call left in ``WORK``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from . import DataError

PACKAGE = "opus"
VERSION = "1.5.2-2"
SUITE = "trixie"
MIRROR = "http://deb.debian.org/debian"
#: sha256 of opus_1.5.2.orig.tar.gz as Debian ships it
ORIG_SHA256 = "65c1d2f78b9f2fb20082c38cbe47c951ad5839345876e46941612ee87f9a7ce1"
ORIG_TARBALL = "opus_1.5.2.orig.tar.gz"
CONFIGURE_FLAGS = ("--enable-dred", "--enable-osce", "--enable-deep-plc", "--disable-shared")
PROGRAMS = ("fargan_demo", "opus_demo", "dump_data")
#: where :func:`tools` keeps the source and the build (``SCRT_OPUS_WORK`` overrides)
DEFAULT_WORK = Path(os.environ.get("SCRT_OPUS_WORK", Path.home() / ".cache" / "semanticodec_rt" / "opus"))


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _run(cmd: list[str], cwd: Path | None = None, what: str = "") -> None:
    try:
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise DataError(f"{cmd[0]} not found: apt-get install {_TOOL_PACKAGES.get(cmd[0], cmd[0])}") from None
    if r.returncode:
        tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
        raise DataError(f"{what or cmd[0]} failed ({r.returncode}): {' | '.join(tail)}")


_TOOL_PACKAGES = {"apt-get": "apt", "dpkg-source": "dpkg-dev", "make": "make", "sh": "dash"}


def fetch(work: str | Path) -> Path:
    """The unpacked source tree ``WORK/opus`` (downloaded and checked on first use)."""
    work = Path(work).resolve()
    tree = work / PACKAGE
    if (tree / "dnn" / "fargan_data.c").exists():
        return tree
    apt = work / "apt"
    for sub in ("lists/partial", "cache/archives/partial", "etc"):
        (apt / sub).mkdir(parents=True, exist_ok=True)
    (apt / "etc" / "sources.list").write_text(f"deb-src {MIRROR} {SUITE} main\n")
    opts = [f"-o=Dir::Etc::sourcelist={apt / 'etc' / 'sources.list'}", "-o=Dir::Etc::sourceparts=-",
            f"-o=Dir::State::Lists={apt / 'lists'}", f"-o=Dir::Cache={apt / 'cache'}",
            "-o=APT::Get::List-Cleanup=0", "-o=Debug::NoLocking=1"]
    if not (work / ORIG_TARBALL).exists():
        _run(["apt-get", *opts, "update"], what="apt-get update (private deb-src list)")
        _run(["apt-get", *opts, "source", "--download-only", f"{PACKAGE}={VERSION}"], cwd=work,
             what=f"apt-get source {PACKAGE}={VERSION}")
    got = sha256(work / ORIG_TARBALL)
    if got != ORIG_SHA256:
        raise DataError(f"{ORIG_TARBALL}: sha256 {got}, expected {ORIG_SHA256}")
    partial = work / f"{PACKAGE}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    _run(["dpkg-source", "-x", f"{PACKAGE}_{VERSION}.dsc", partial.name], cwd=work, what="dpkg-source -x")
    partial.rename(tree)
    return tree


def build(tree: str | Path) -> dict[str, Path]:
    """Build (once) and return the demo programs: ``{"fargan_demo": path, ...}``."""
    tree = Path(tree)
    paths = {p: tree / p for p in PROGRAMS}
    if all(p.exists() for p in paths.values()):
        return paths
    if not (tree / "Makefile").exists():
        _run(["sh", "./configure", "-q", *CONFIGURE_FLAGS], cwd=tree, what="opus configure")
    # lossgen_demo does not link in this release; only what is needed is made.
    _run(["make", "-j2", *PROGRAMS], cwd=tree, what="opus make")
    return paths


def tools(work: str | Path | None = None) -> dict[str, Path]:
    """The built demo programs, fetching and building on first use (``DEFAULT_WORK``)."""
    return build(fetch(DEFAULT_WORK if work is None else work))


def fargan_features(pcm: np.ndarray, work: str | Path | None = None) -> np.ndarray:
    """opus's analysis (``fargan_demo -features``): 16 kHz int16 ``[N]`` -> ``[N // 160, 36]``
    float32 per 10 ms frame; FARGAN reads the first 20 (18 cepstral, pitch, correlation)."""
    pcm = np.asarray(pcm)
    if pcm.dtype != np.int16 or pcm.ndim != 1:
        raise ValueError(f"pcm must be 1-D int16 at 16 kHz, got {pcm.dtype} {pcm.shape}")
    prog = tools(work)["fargan_demo"]
    with tempfile.TemporaryDirectory(prefix="scrt-fargan-") as tmp:
        src, out = Path(tmp) / "in.pcm", Path(tmp) / "f.f32"
        pcm.astype("<i2").tofile(src)
        _run([str(prog), "-features", str(src), str(out)], what="fargan_demo -features")
        return np.fromfile(out, dtype="<f4").reshape(-1, 36)
