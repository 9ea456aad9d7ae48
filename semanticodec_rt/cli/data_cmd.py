"""``data build``: the offline training corpus from Debian packages; ``data features``: the speech
route's training streams; ``data transcripts``: English transcripts for eval's WER
(:mod:`semanticodec_rt.lab.data`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import FORMATTER, PROG, CliError, positive_int, progress_enabled

_DATA_TEXTS = (
    "training data: build the offline corpus from Debian packages",
    """\
Training data.  'data build' makes a 16 kHz corpus of real speech, music and sound
effects from audio that ships in Debian main packages (see 'data build --help').
""",
    f"""\
examples:
  {PROG} data build --out corpus --tier smoke
  {PROG} data build --out corpus --tier core --work /var/tmp/debs --jobs 2
  {PROG} data transcripts --corpus corpus
""",
)

_DATA_BUILD_TEXTS = (
    "download Debian packages and build the 16 kHz FLAC corpus",
    """\
Download the tier's packages with 'apt-get download' (no root; run 'apt-get update'
once before), unpack them with 'dpkg-deb -x', sort their audio files into speech, music
and sfx by per-package path rules, and write 16 kHz mono 16-bit FLAC to
OUT/{train,valid,test,test_unseen}/<class>/<package>/, with OUT/manifest.jsonl (path,
cls, pkg, licence, src, orig_sr, dur, split, group) and OUT/summary.md + summary.json
(hours per class and split).  Clips under 0.25 s or silent are dropped.  The split is
90/5/5 by sha1 of a group key; held-out packages form test_unseen.

Tiers: smoke (4 small packages, ~25 MB, a pipeline check: every class and a held-out
package), core (~1.4 GB of .deb files, ~23 h), full (~3.8 GB, ~33 h).  .g722 and .wv
files need ffmpeg; without it they are skipped with a warning.

The build resumes: finished files are kept and a finished build re-runs as a no-op
that writes the same manifest.
""",
    f"""\
examples:
  {PROG} data build --out corpus --tier smoke
  {PROG} data build --out corpus --tier full --work /var/tmp/scrt-debs
  {PROG} data build --out corpus --tier core --only klettres-data lomiri-sounds
""",
)


def add_parser(sub) -> None:
    from ..lab.data.packages import TIERS

    summary, description, epilog = _DATA_TEXTS
    p = sub.add_parser("data", help=summary, description=description, epilog=epilog,
                       formatter_class=FORMATTER)
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND", title="subcommands",
                            required=True)
    summary, description, epilog = _DATA_BUILD_TEXTS
    b = dsub.add_parser("build", help=summary, description=description, epilog=epilog,
                        formatter_class=FORMATTER)
    b.set_defaults(func=cmd_data_build)
    b.add_argument("--out", required=True, metavar="DIR", help="the corpus folder (created if needed)")
    b.add_argument("--tier", required=True, choices=TIERS, help="which packages (see above)")
    b.add_argument("--work", metavar="DIR",
                   help="downloads and extractions (default OUT/.work); reused by later builds")
    b.add_argument("--jobs", type=positive_int, default=2, metavar="N",
                   help="conversion processes (default 2)")
    b.add_argument("--only", nargs="+", metavar="PKG",
                   help="process just these packages of the tier (the manifest keeps the others "
                        "already built in OUT)")
    b.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no messages")

    f = dsub.add_parser(
        "features", help="the speech (or general-audio) route's training streams: audio at random levels + FARGAN features",
        description="""\
Write, per split (train, valid), one long 16 kHz stream of the corpus clips (shuffled, each
at a random active level in -42..-12 dBFS, short random gaps; all speech and effects, music
excerpts up to 20 % of the speech time; with --mix general: a quarter of every music track
in excerpts, all effects, speech clips up to 15 % of that) and opus's FARGAN feature analysis of it
(OUT/<split>.pcm.npy, .feat.npy, .clips.jsonl, OUT/stats.json).  The analysis is the Debian
opus 1.5.2 source build, fetched and built on first use (about 2 minutes).  test and
test_unseen are never read.""",
        epilog=f"example:\n  {PROG} data features --ref corpus --out streams", formatter_class=FORMATTER)
    f.set_defaults(func=cmd_data_features)
    f.add_argument("--ref", required=True, metavar="CORPUS", help="corpus folder (from 'data build')")
    f.add_argument("--out", required=True, metavar="DIR", help="the stream folder (created; keep it outside git)")
    f.add_argument("--seed", type=int, default=0, help="shuffle, level and excerpt seed (default 0)")
    f.add_argument("--mix", choices=("speech", "general"), default="speech",
                   help="speech: the speech route's mix (default); general: music and effects first")
    f.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no messages")

    t = dsub.add_parser(
        "transcripts", help="English transcripts of the corpus's speech clips (for eval's WER)",
        description="""\
Give every English speech clip of a corpus (asterisk-core-sounds-en-g722) its transcript as a
sidecar NAME.txt next to NAME.flac, where 'eval' finds it to score WER.  The texts come from
the Debian package asterisk-core-sounds-en (core-sounds-en.txt.gz; fetched with 'apt-get
download' like 'data build'), matched to the clips by their package path (manifest 'src'), and
normalised to the spoken words: lower case, no punctuation, [..]/(..) notes removed, * and #
as star and pound, single digits as words.  Clips whose text is unlisted, has no words or
holds a multi-digit number get none.  The manifest is not changed; re-running gives the same
files (stale sidecars are removed).""",
        epilog=f"example:\n  {PROG} data transcripts --corpus corpus", formatter_class=FORMATTER)
    t.set_defaults(func=cmd_data_transcripts)
    t.add_argument("--corpus", required=True, metavar="DIR", help="corpus folder (from 'data build')")
    t.add_argument("--work", metavar="DIR",
                   help="downloads and extractions (default CORPUS/.work, as for 'data build')")
    t.add_argument("-q", "--quiet", action="store_true", help="no messages")


def cmd_data_transcripts(args: argparse.Namespace) -> int:
    from ..lab.data.transcripts import transcripts

    if not (Path(args.corpus) / "manifest.jsonl").is_file():
        raise CliError(f"--corpus {args.corpus}: no manifest.jsonl "
                       f"(build the corpus with '{PROG} data build')")
    if args.work is not None and Path(args.work).exists() and not Path(args.work).is_dir():
        raise CliError(f"--work {args.work}: is a file, not a folder")
    log = (lambda s: None) if args.quiet else (lambda s: print(s, flush=True))
    res = transcripts(args.corpus, args.work, log)
    log(f"transcripts from {res.source}:")
    for split, c in res.splits.items():
        log(f"  {split}: {c['transcripts']} of {c['clips']} English speech clips")
    total = sum(c["transcripts"] for c in res.splits.values())
    reasons = ", ".join(f"{r}: {n}" for r, n in sorted(res.reasons.items()))
    log(f"{total} clips with a transcript, {len(res.missing)} without"
        + (f" ({reasons})" if reasons else ""))
    log(f"sidecars: {res.written} written, {res.unchanged} unchanged, {res.removed} removed; "
        f"{len(res.unused)} listed names match no clip")
    return 0


def cmd_data_features(args: argparse.Namespace) -> int:
    from ..lab.data import DataError
    from ..lab.data.feature_stream import build_streams

    if not (Path(args.ref) / "manifest.jsonl").exists():
        raise CliError(f"--ref {args.ref}: no manifest.jsonl (build the corpus with '{PROG} data build')")
    try:
        stats = build_streams(args.ref, args.out, seed=args.seed, mix=args.mix)
    except (DataError, ValueError) as e:
        raise CliError(str(e)) from None
    if not args.quiet:
        for split, s in stats["summary"].items():
            hours = ", ".join(f"{k} {v:.2f} h" for k, v in s["hours"].items())
            print(f"{split}: {s['clips']} clips, {hours} -> {args.out}", flush=True)
    return 0


def cmd_data_build(args: argparse.Namespace) -> int:
    from ..lab.data import DataError
    from ..lab.data.build import Options, build, select_packages

    try:
        select_packages(args.tier, args.only)  # a bad --only is a command-line error
    except DataError as e:
        raise CliError(f"--only: {e}") from None
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CliError(f"--out {args.out}: is a file, not a folder")
    if args.work is not None and Path(args.work).exists() and not Path(args.work).is_dir():
        raise CliError(f"--work {args.work}: is a file, not a folder")
    opts = Options(
        out=out, tier=args.tier, work=None if args.work is None else Path(args.work),
        jobs=args.jobs, only=args.only, progress=progress_enabled(args),
        log=(lambda s: None) if args.quiet else (lambda s: print(s, flush=True)),
        warn=lambda s: print(f"{PROG}: warning: {s}", file=sys.stderr, flush=True),
    )
    build(opts)
    return 0
