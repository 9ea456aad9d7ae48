"""The Debian packages of the corpus: tiers, licences, path rules, archives, held-out packages.

Every rule works on a file's *package path*: its path inside the package with a leading ``/``
(``/usr/share/sounds/freedesktop/stereo/bell.oga``).  A file taken out of a zip archive of the
package has the archive's package path, ``!`` and the entry name
(``/usr/share/games/warzone2100/base.wz!/audio/sfx/weapons/x.ogg``).

Classification: the first rule whose regex is found (``re.search``) in the package path gives
the class; ``None`` skips the file; with no match the package's ``default`` applies.

Tiers (shared/notes/data_metrics_baselines.md, 2.3):

* ``core`` -- speech: asterisk-core-sounds-{en,es,it,ru}-g722, fillets-ng-data-cs/-nl,
  klettres-data, ktuberling-data; music: warzone2100-music, planetblupi-music-ogg, nexuiz-music,
  singularity-music, drascula-music, pushover-data, fretsonfire-songs-muldjord/-sectoid,
  hyperrogue-music, asterisk-moh-opsound-g722, colobot-common-sounds; mostly sfx:
  hedgewars-data, warzone2100-data, sound-theme-freedesktop, oxygen-sounds, yaru-theme-sound,
  deepin-sound-theme, lomiri-sounds, bucklespring-data, teeworlds-data, lugaru-data,
  freedroidrpg-data, lincity-ng-data, frozen-bubble-data.  About 1.4 GB of .deb files, ~23 h.
* ``full`` -- core plus 0ad-data, supertux-data, supertuxkart-data, widelands-data,
  openclonk-data and asc-music.  About 3.8 GB of .deb files, ~33 h.
* ``smoke`` -- a pipeline check, not a corpus: four packages, 25.0 MB of .deb files in all
  (sizes from ``apt-cache show``, bookworm), every class and a held-out package:

  ============================  =======  ======================================================
  package                       .deb MB  what it gives
  ============================  =======  ======================================================
  sound-theme-freedesktop          0.38  sfx (27 files, 6 of them symlinks, which are skipped)
  asterisk-prompt-es-co            0.99  speech: Colombian Spanish IVR prompts, **8 kHz GSM**
                                         (read by libsndfile; band-limited to 4 kHz)
  mu-cade-data                     4.88  music (``/musics/``, 4 loops) and sfx (``/chunks/``)
  lomiri-sounds                   18.74  sfx, held out -> test_unseen (the smallest held-out
                                         package that needs no ffmpeg)
  ============================  =======  ======================================================

  and at most :data:`SMOKE_MAX_FILES` files per package (chosen by sha1 of the package path).
  asterisk-prompt-es-co and mu-cade-data are in the smoke tier only: the smallest real speech
  that libsndfile reads is otherwise klettres-data (40 MB), and the G.722 speech needs ffmpeg.

Deviations from the note's rules, each checked on the files (durations and names):
hyperrogue-music ``/sounds/`` (84 effects, 2.4 min) is sfx, not music; lugaru-data
``Sounds/Music*`` (5 tracks) and frozen-bubble-data ``*zik*.ogg`` (3 tracks, 11.7 min) are music,
not sfx.  The note's warzone2100 rule is kept: only ``base.wz`` entries under ``audio/`` are
taken (so ``sequenceaudio/`` is not).

Held out as ``test_unseen`` (whole packages): asterisk-core-sounds-it-g722 (unseen speaker and
language), drascula-music (unseen composer), lomiri-sounds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

CLASSES = ("speech", "music", "sfx")
TIERS = ("smoke", "core", "full")
#: file name endings taken as audio (lower-case comparison)
AUDIO_EXTS = (".wav", ".ogg", ".oga", ".opus", ".flac", ".mp3", ".wv", ".g722", ".gsm")
#: the smoke tier keeps at most this many files per package
SMOKE_MAX_FILES = 40

Rule = tuple[str, Optional[str]]


@dataclass(frozen=True)
class Archive:
    """A zip archive inside a package whose audio entries are unpacked (zip-in-deb).

    ``pattern`` is a regex searched in the archive's package path; only entries whose name
    starts with ``prefix`` (and ends with an audio extension) are taken.
    """

    pattern: str
    prefix: str = ""


@dataclass(frozen=True)
class GroupRule:
    """A group key rule: if ``pattern`` (one capture group) is found in the package path, the
    key is ``template`` formatted with ``pkg`` (the package name) and ``m`` (the capture)."""

    pattern: str
    template: str


@dataclass(frozen=True)
class Package:
    name: str
    tiers: frozenset
    licence: str
    default: Optional[str]
    rules: tuple = ()
    archives: tuple = ()
    held_out: bool = False
    group_rules: tuple = ()
    _compiled: tuple = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self):
        for _, cls in self.rules:
            if cls is not None and cls not in CLASSES:
                raise ValueError(f"{self.name}: unknown class {cls!r}")
        if self.default is not None and self.default not in CLASSES:
            raise ValueError(f"{self.name}: unknown default class {self.default!r}")
        bad = set(self.tiers) - set(TIERS)
        if bad:
            raise ValueError(f"{self.name}: unknown tiers {sorted(bad)}")
        object.__setattr__(self, "_compiled", tuple((re.compile(p), c) for p, c in self.rules))

    def classify(self, pkg_path: str) -> Optional[str]:
        """The class of the file at ``pkg_path`` (see the module docstring), ``None`` = skip."""
        if not pkg_path.lower().endswith(AUDIO_EXTS):
            return None
        for regex, cls in self._compiled:
            if regex.search(pkg_path):
                return cls
        return self.default


SMOKE = frozenset({"smoke"})
CORE = frozenset({"core", "full"})
FULL = frozenset({"full"})

_FILLETS_GROUP = (GroupRule(r"/sound/([^/]+)/", "fillets-ng:{m}"),)  # the whole level
_SONG_GROUP = (GroupRule(r"/songs/(.+)/[^/]+$", "{pkg}:{m}"),)  # the song folder (its stems)
_ASTERISK_G722 = ((r"/silence/", None),)


def _g722(lang: str, held_out: bool = False) -> Package:
    return Package(f"asterisk-core-sounds-{lang}-g722", CORE, "CC-BY-SA-3.0", "speech",
                   _ASTERISK_G722, held_out=held_out)


PACKAGES: tuple[Package, ...] = (
    # -- speech (core) --
    _g722("en"),
    _g722("es"),
    _g722("it", held_out=True),
    _g722("ru"),
    Package("fillets-ng-data-cs", CORE, "GPL-2+", "speech", group_rules=_FILLETS_GROUP),
    Package("fillets-ng-data-nl", CORE, "GPL-2+", "speech", group_rules=_FILLETS_GROUP),
    Package("klettres-data", CORE, "GPL-2+", "speech"),
    Package("ktuberling-data", CORE, "GPL-2+", "sfx", ((r"/sounds/[^/]+/", "speech"),)),
    # -- music (core) --
    Package("warzone2100-music", CORE, "GPL-2+", "music"),
    Package("planetblupi-music-ogg", CORE, "GPL-3+", "music"),
    Package("nexuiz-music", CORE, "GPL-2+", "music", archives=(Archive(r"\.pk3$"),)),
    Package("singularity-music", CORE, "CC-BY-SA (CCPL)", "music"),
    Package("drascula-music", CORE, "Drascula freeware licence (DFSG, main)", "music", held_out=True),
    Package("pushover-data", CORE, "GPL-3+", "music"),
    Package("fretsonfire-songs-muldjord", CORE, "CC-BY-SA-3.0", "music", group_rules=_SONG_GROUP),
    Package("fretsonfire-songs-sectoid", CORE, "GPL / MIT-style", "music", group_rules=_SONG_GROUP),
    Package("hyperrogue-music", CORE, "CC-BY-SA-3.0/GPL-2+", "music", ((r"/sounds/", "sfx"),)),
    Package("asterisk-moh-opsound-g722", CORE, "CC-BY-SA-3.0", "music"),
    Package("colobot-common-sounds", CORE, "GPL-3+", "sfx", ((r"/music/", "music"),)),
    # -- mostly sfx (core) --
    Package("hedgewars-data", CORE, "GPL-2", "sfx",
            ((r"/Sounds/voices/", "speech"), (r"/Music/", "music"))),
    Package("warzone2100-data", CORE, "GPL-2+", "sfx",
            ((r"/audio/sfx/", "sfx"),
             (r"/audio/(memressp|countdown|extra|multi|nexus|proxmessages|coltive)/", "speech")),
            archives=(Archive(r"/base\.wz$", "audio/"),)),
    Package("sound-theme-freedesktop", SMOKE | CORE, "CC-BY-SA-3.0/GPL-2+", "sfx"),
    Package("oxygen-sounds", CORE, "LGPL-3+", "sfx"),
    Package("yaru-theme-sound", CORE, "CC-BY-SA-4.0", "sfx"),
    Package("deepin-sound-theme", CORE, "GPL-3+", "sfx"),
    Package("lomiri-sounds", SMOKE | CORE, "CC0/CC-BY(-SA)", "sfx", held_out=True),
    Package("bucklespring-data", CORE, "GPL-2+", "sfx"),
    Package("teeworlds-data", CORE, "CC-BY-SA-3.0", "sfx"),  # .wv: needs ffmpeg
    Package("lugaru-data", CORE, "CC-BY-SA-3.0/4.0", "sfx",
            ((r"/music/", "music"), (r"/Sounds/Music\d", "music"))),
    Package("freedroidrpg-data", CORE, "GPL-2+", "sfx", ((r"/music/", "music"),)),
    Package("lincity-ng-data", CORE, "GPL-2+", "sfx", ((r"/music/", "music"),)),
    Package("frozen-bubble-data", CORE, "GPL-2", "sfx",
            ((r"/music/", "music"), (r"zik[^/]*\.ogg$", "music"))),
    # -- full tier only --
    Package("0ad-data", FULL, "CC-BY-SA-3.0 (audio)", None,
            ((r"/audio/music/", "music"), (r"/audio/ambient/", "sfx"), (r"/audio/voice/", "speech"),
             (r"/audio/", "sfx")),
            archives=(Archive(r"/public\.zip$", "audio/"),)),
    Package("supertux-data", FULL, "GPL-3+/CC-BY-SA", "sfx", ((r"/music/", "music"),)),
    Package("supertuxkart-data", FULL, "CC-BY-SA-3.0/4.0, CC0", "sfx", ((r"/music/", "music"),)),
    Package("widelands-data", FULL, "GPL-2+/CC-BY-SA-3.0", "sfx", ((r"/music/", "music"),)),
    Package("openclonk-data", FULL, "ISC/CC-BY", None, ((r"(?i)/music", "music"),)),
    Package("asc-music", FULL, "GPL-2+", "music"),
    # -- smoke tier only --
    Package("asterisk-prompt-es-co", SMOKE, "GPL-2", "speech"),  # 8 kHz GSM prompts
    Package("mu-cade-data", SMOKE, "BSD-style", "sfx", ((r"/musics/", "music"),)),
)

_BY_NAME = {p.name: p for p in PACKAGES}
if len(_BY_NAME) != len(PACKAGES):  # pragma: no cover - a table edit gone wrong
    raise RuntimeError("duplicate package names in PACKAGES")

HELD_OUT = frozenset(p.name for p in PACKAGES if p.held_out)


def get_package(name: str) -> Package:
    """The table entry of ``name`` (KeyError if unknown)."""
    return _BY_NAME[name]


def packages_for_tier(tier: str) -> list[Package]:
    """The packages of ``tier`` in table order."""
    if tier not in TIERS:
        raise ValueError(f"unknown tier {tier!r} (one of {', '.join(TIERS)})")
    return [p for p in PACKAGES if tier in p.tiers]
