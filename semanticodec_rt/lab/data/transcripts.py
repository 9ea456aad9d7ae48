"""English transcripts for the corpus's Asterisk prompts, so ``semanticodec-rt eval`` can score WER.

``semanticodec-rt data transcripts --corpus DIR`` gives every English speech clip of the corpus
(package ``asterisk-core-sounds-en-g722``, Allison's prompts) the text she reads, as a sidecar
``NAME.txt`` next to ``NAME.flac``: that is where eval looks (see :mod:`..eval.run`).  The
manifest is not touched -- its fields are fixed (:mod:`.manifest`), and eval scores WER for any
clip with a transcript and no ``lang`` field, so only English clips get sidecars.

**Source.**  The transcripts ship in the Debian package ``asterisk-core-sounds-en`` (same source
package and version as the G.722 one, 23 kB) as
``/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz``; it is fetched like the corpus's
packages (:mod:`.fetch`: ``apt-get download`` into ``WORK/debs``, ``dpkg-deb -x`` into ``WORK/x``).
Its lines are ``NAME: TEXT`` with ``NAME`` relative to the language folder and without extension
(``agent-pass: Please enter your password followed by the pound key.``, ``digits/1: one``);
lines starting with ``;`` are comments.  Only the first ``:`` separates (texts contain colons);
when a name repeats, the last line wins.

**Matching.**  A manifest entry's ``src`` (``/usr/share/asterisk/sounds/en_US_f_Allison/digits/1.g722``)
gives the name ``digits/1``: the part below ``/usr/share/asterisk/sounds/<voice>/``, extension dropped.

**Normalisation** (the sidecar holds the words as eval scores them):

* ``[...]`` and ``(...)`` are descriptions or notes, not speech (``[ascending tones]``,
  ``dot [.]``, ``(9 seconds of silence)``, ``IAX (note: does not say "2")``): removed;
* ``*`` -> ``star``, ``#`` -> ``pound`` (how the prompts say the keys);
* a lone digit -> its word (``press 1`` -> ``press one``; ``3D`` -> ``three d``); a number of
  several digits or with a decimal point (``1234``, ``28.8``, ``H.323``) has no one spoken form
  (digit by digit? a cardinal?), so such a clip gets no transcript (reason ``ambiguous number``);
* then eval's own :func:`~..eval.metrics.normalize_text` (lower case, no punctuation, apostrophes
  inside words kept), words joined by single spaces.  A text left without words (``[beep]``) gives
  no transcript (reason ``no words``).

**Idempotent.**  Sidecars are written atomically and only when their content changes; ``.txt``
files in the package's clip folders that no entry accounts for (a clip dropped by a later
build, a transcript that became unusable) are removed.  Re-running leaves the same files.
"""

from __future__ import annotations

import gzip
import os
import posixpath
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

from ..eval.metrics import normalize_text
from . import DataError, fetch
from . import manifest as mf
from .packages import AUDIO_EXTS, CLASSES, Package
from .splits import SPLITS

#: the corpus package whose clips get transcripts (English speech)
CORPUS_PKG = "asterisk-core-sounds-en-g722"
#: the Debian package with the transcript list, and the list's path inside it
TEXT_PKG = Package("asterisk-core-sounds-en", frozenset(), "CC-BY-SA-3.0", None)
TEXT_PATH = "usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"
#: the folder holding the voice folders in the package paths (``src``)
SOUNDS_ROOT = "/usr/share/asterisk/sounds/"
SIDECAR_SUFFIX = ".txt"

#: why a clip has no transcript
NOT_LISTED = "not in the transcript list"
NO_WORDS = "no words"
AMBIGUOUS = "ambiguous number"

_LINE = re.compile(r"^\s*([^\s:]+)\s*:\s*(.*?)\s*$")
_NOTES = re.compile(r"\[[^\]]*\]|\([^)]*\)")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_KEYS = {"*": "star", "#": "pound"}


@dataclass
class Result:
    """What :func:`write_transcripts` did.

    ``splits``: ``{split: {"clips": n, "transcripts": k}}`` over the package's manifest entries;
    ``missing``: ``[(manifest path, reason)]`` for clips without a transcript, sorted by path;
    ``unused``: list names that matched no clip (sorted); ``written`` / ``unchanged`` /
    ``removed``: sidecar files created or rewritten / already current / deleted.
    """

    splits: dict[str, dict[str, int]] = field(default_factory=dict)
    missing: list[tuple[str, str]] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    written: int = 0
    unchanged: int = 0
    removed: int = 0
    source: str = ""

    @property
    def reasons(self) -> Counter:
        """``{reason: clips}`` of :attr:`missing`."""
        return Counter(r for _, r in self.missing)


# -- the transcript list ---------------------------------------------------------------------------
def parse(text: str) -> dict[str, str]:
    """``{name: raw text}`` from the lines of ``core-sounds-en.txt`` (see the module doc).

    Blank lines, ``;`` comments and lines without ``NAME:`` are skipped; a name's audio
    extension (if any) is dropped; the last line of a repeated name wins.
    """
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith(";"):
            continue
        m = _LINE.match(line)
        if m is None:
            continue
        out[_strip_ext(m.group(1).strip("/"))] = m.group(2)
    return out


def read_list(path: str | os.PathLike) -> dict[str, str]:
    """:func:`parse` of the (optionally gzip-compressed) list at ``path``."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return parse(raw.decode("utf-8", errors="replace"))


def normalize(raw: str) -> tuple[Optional[str], Optional[str]]:
    """``(words, None)`` for a listed text, or ``(None, reason)`` when it gives no transcript.

    ``words``: lower-case, single-space separated (see the module doc for the rules).
    """
    text = _NOTES.sub(" ", raw)
    for key, word in _KEYS.items():
        text = text.replace(key, f" {word} ")
    numbers = _NUMBER.findall(text)
    if any(len(n) > 1 for n in numbers):
        return None, AMBIGUOUS
    text = _NUMBER.sub(lambda m: f" {_DIGITS[int(m.group())]} ", text)
    words = normalize_text(text)
    if not words:
        return None, NO_WORDS
    return " ".join(words), None


def name_of(src: str) -> Optional[str]:
    """The list name of a clip from its package path ``src`` (``None``: not below a voice folder)."""
    if not src.startswith(SOUNDS_ROOT):
        return None
    parts = src[len(SOUNDS_ROOT):].split("/", 1)
    if len(parts) != 2 or not parts[1]:
        return None
    return _strip_ext(parts[1])


def _strip_ext(name: str) -> str:
    base, ext = posixpath.splitext(name)
    return base if ext.lower() in AUDIO_EXTS else name


# -- matching and writing --------------------------------------------------------------------------
def match(entries: Iterable[dict],
          listed: dict[str, str]) -> tuple[dict[str, str], list[tuple[str, str]], list[str]]:
    """``({manifest path: words}, [(manifest path, reason)], unused list names)`` for the entries
    of :data:`CORPUS_PKG` in ``entries`` against the raw list ``listed`` (name -> text)."""
    found: dict[str, str] = {}
    missing: list[tuple[str, str]] = []
    used: set[str] = set()
    for e in entries:
        if e.get("pkg") != CORPUS_PKG:
            continue
        name = name_of(str(e.get("src", "")))
        if name is None or name not in listed:
            missing.append((e["path"], NOT_LISTED))
            continue
        used.add(name)
        words, why = normalize(listed[name])
        if words is None:
            missing.append((e["path"], why))
        else:
            found[e["path"]] = words
    return found, sorted(missing), sorted(set(listed) - used)


def sidecar(root: Path, rel: str) -> Path:
    """The transcript file eval reads for the clip ``rel`` (manifest path) under ``root``."""
    return (Path(root) / rel).with_suffix(SIDECAR_SUFFIX)


def write_transcripts(root: str | os.PathLike, listed: dict[str, str], source: str = "") -> Result:
    """Write the sidecars of the corpus at ``root`` from the raw list ``listed``; see :class:`Result`."""
    root = Path(root)
    path = root / mf.NAME
    if not path.is_file():
        raise DataError(f"{root}: no {mf.NAME} (build the corpus with 'data build')")
    try:
        entries = mf.read(path)
    except mf.ManifestError as e:
        raise DataError(f"{path}: {e}") from None
    mine = [e for e in entries if e.get("pkg") == CORPUS_PKG and isinstance(e.get("path"), str)]
    found, missing, unused = match(mine, listed)
    res = Result(missing=missing, unused=unused, source=source)
    for split in SPLITS:
        clips = [e for e in mine if e.get("split") == split]
        if clips:
            res.splits[split] = {"clips": len(clips), "transcripts": sum(e["path"] in found for e in clips)}
    keep = set()
    for rel, words in sorted(found.items()):
        side = sidecar(root, rel)
        keep.add(side)
        data = (words + "\n").encode("utf-8")
        if side.is_file() and side.read_bytes() == data:
            res.unchanged += 1
            continue
        side.parent.mkdir(parents=True, exist_ok=True)
        tmp = side.with_name(f".{side.name}.{os.getpid()}.tmp")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, side)
        finally:
            tmp.unlink(missing_ok=True)
        res.written += 1
    for split in SPLITS:
        for cls in CLASSES:
            d = root / split / cls / CORPUS_PKG
            if d.is_dir():
                for f in sorted(d.glob(f"*{SIDECAR_SUFFIX}")):
                    if f.is_file() and f not in keep:
                        f.unlink()
                        res.removed += 1
    return res


def fetch_list(work: Path, log: Callable[[str], None] = lambda s: None) -> tuple[dict[str, str], str]:
    """(raw list, the .deb's file name): :data:`TEXT_PKG` downloaded to ``WORK/debs`` and
    extracted to ``WORK/x`` (both reused when present), its list parsed."""
    fetch.require_tools()
    deb = fetch.download([TEXT_PKG.name], Path(work) / "debs", log)[TEXT_PKG.name]
    x = fetch.extract(TEXT_PKG, deb, Path(work) / "x")
    path = x / TEXT_PATH
    if not path.is_file():
        raise DataError(f"{deb.name} has no /{TEXT_PATH}")
    return read_list(path), deb.name


def transcripts(corpus: str | os.PathLike, work: Optional[str | os.PathLike] = None,
                log: Callable[[str], None] = lambda s: None) -> Result:
    """The command: fetch the list (``work`` defaults to ``CORPUS/.work``, as for ``data build``)
    and write the sidecars of ``corpus``."""
    corpus = Path(corpus).expanduser().resolve()
    if not (corpus / mf.NAME).is_file():
        raise DataError(f"{corpus}: no {mf.NAME} (build the corpus with 'data build')")
    work = Path(work).expanduser().resolve() if work else corpus / ".work"
    listed, deb = fetch_list(work, log)
    return write_transcripts(corpus, listed, source=deb)
