"""``eval``: objective scores of the codec and baseline codecs (:mod:`semanticodec_rt.lab.eval`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import (
    FORMATTER, MODEL_HELP, PROG, CliError, load_codec, nonnegative_int, positive_int, progress_enabled,
)

_EVAL_TEXTS = (
    "score the codec (and baseline codecs) against reference audio",
    """\
Code every reference clip with the model and with baseline codecs, align each decode to
its original and score it: STOI, ESTOI, PESQ-WB, ViSQOL (speech mode, lattice mapping
pinned), log-mel L1, SI-SDR, and WER (pocketsphinx en-us) for English clips with a
transcript (sidecar NAME.txt or a manifest 'text' field).  Writes OUT/clips.csv (per clip),
OUT/summary.md + summary.json (per class and codec: hours, bitrate from bitstream bytes,
mean scores) and PNG figures (spectrograms, bitrate vs quality).

--ref is a corpus folder with manifest.jsonl (default split: test), the manifest itself,
or any folder of audio files (class from a speech/music/sfx path component).  Baselines run
as programs: codec2:MODE (c2enc/c2dec, MODE 3200 2400 1600 1400 1300 1200 700C) and
opus:KBPS (opusenc/opusdec, 6-256).

Rows: every codec is one row of the report.  --steps 0,1,2,4 runs the model once per step
count, one row each, labelled semanticodec@<N>steps (one value or none: 'semanticodec');
each clip is encoded once and its tokens decoded at every count, so these rows share one
bitstream and bitrate.  --decoded DIR scores the files there (same relative paths, any audio
suffix) instead of coding, so any codec can be compared; give it once per folder, each one
row, as DIR, DIR=LABEL or DIR=LABEL@KBPS (label: default the folder name; KBPS: the bitrate
reported for it, e.g. out/fargan=fargan-copy@9.6 or out/x=@1.5).  With several folders only
the clips every folder has are scored.  --decoded alone implies --model none and
--baselines none; name them to add model and baseline rows to the same table.
""",
    f"""\
examples:
  {PROG} eval --ref corpus --model mymodel.safetensors --out eval-report
  {PROG} eval --ref corpus/manifest.jsonl --model none --baselines codec2:1400,opus:6
  {PROG} eval --ref clips --max-clips 20 --classes speech --model official:~/semanticodec
  {PROG} eval --ref clips --decoded other_codec_out --label other --kbps 1.5
  {PROG} eval --ref corpus --model my.safetensors --steps 0,1,2,4 \
      --decoded fargan_out=fargan-copy --baselines codec2:1400,opus:6,nolace:6
""",
)


def add_parser(sub) -> None:
    summary, description, epilog = _EVAL_TEXTS
    p = sub.add_parser("eval", help=summary, description=description, epilog=epilog,
                       formatter_class=FORMATTER)
    p.set_defaults(func=cmd_eval)
    p.add_argument("--ref", required=True, metavar="DIR|MANIFEST", help="the reference clips")
    p.add_argument("--decoded", action="append", type=_decoded_spec, metavar="DIR[=LABEL[@KBPS]]",
                   help="score these already-decoded files (matched to --ref by relative path), one row "
                        "labelled LABEL (default: the folder name) at bitrate KBPS; repeat for more folders")
    p.add_argument("--label", metavar="NAME",
                   help="row label of a single --decoded folder (same as DIR=NAME)")
    p.add_argument("--kbps", type=float, metavar="K",
                   help="bitrate of a single --decoded folder, for the report (same as DIR=@K)")
    p.add_argument("--split", choices=("train", "valid", "test", "test_unseen", "all"),
                   help="which split (default: test for a manifest, all for a folder)")
    p.add_argument("--classes", metavar="LIST", help="comma-separated, e.g. speech,music (default: all)")
    p.add_argument("--max-clips", type=positive_int, metavar="N",
                   help="at most N clips, classes taken in turn")
    p.add_argument("--max-seconds", type=float, default=30.0, metavar="S",
                   help="score the first S seconds of longer clips (default 30; 0: whole clips)")
    p.add_argument("--model", metavar="SPEC",
                   help=MODEL_HELP + " 'none': baselines only (the default with --decoded).")
    p.add_argument("--random-weights-ok", action="store_true",
                   help="allow --model preset:NAME (random weights: noise out; for tests)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the model runs")
    p.add_argument("--steps", type=_steps, metavar="N[,N...]",
                   help="decoder steps (default: the model's, 4 for rt presets); 0 is passed as 0 (speech "
                        "route: regression only); several values: one model row each, label "
                        "semanticodec@<N>steps")
    p.add_argument("--seed", type=int, default=0, help="decoder noise seed (default 0)")
    p.add_argument("--baselines", metavar="LIST",
                   help="comma-separated codec specs, codec2:MODE, opus:KBPS or nolace:KBPS (Opus 1.5.2 "
                        "decoded with NoLACE; builds the opus source on first use), or 'none' (default "
                        "codec2:1400,codec2:700C,opus:6; none with --decoded)")
    p.add_argument("--metrics", metavar="LIST",
                   help="stoi,estoi,pesq_wb,visqol,visqol_audio,logmel,si_sdr,wer, or all (default: all but "
                        "visqol_audio, ViSQOL's audio mode for music and effects, ~0.2 s per second of audio)")
    p.add_argument("--out", default="eval-report", metavar="DIR",
                   help="report folder (default eval-report)")
    p.add_argument("--save-audio", action="store_true", help="also write every aligned decode to OUT/audio/")
    p.add_argument("--listen", type=nonnegative_int, default=3, metavar="N",
                   help="the listening page OUT/listen.html (one self-contained file: players, spectrograms, "
                        "tables) holds the first N clips of each class (default 3; 0: no page)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite a report already in --out")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no messages")


def _steps(text: str) -> list[int]:
    """argparse type of --steps: comma-separated step counts >= 0."""
    from ..lab.eval.run import parse_steps

    try:
        return parse_steps(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _decoded_spec(text: str):
    """argparse type of --decoded: DIR, DIR=LABEL or DIR=LABEL@KBPS."""
    from ..lab.eval.run import parse_decoded

    try:
        return parse_decoded(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _decoded_folders(args: argparse.Namespace) -> list:
    """The --decoded specs with --label/--kbps applied; those two name a single folder only (with
    several, each folder carries its own as DIR=LABEL@KBPS), and must not contradict it."""
    import dataclasses

    specs = list(args.decoded or [])
    if args.label is None and args.kbps is None:
        return specs
    if len(specs) != 1:
        raise CliError("--label/--kbps describe a single --decoded folder; with "
                       f"{len(specs) or 'no'} folders write --decoded DIR=LABEL@KBPS")
    spec = specs[0]
    if args.label is not None and spec.label is not None and args.label != spec.label:
        raise CliError(f"--label {args.label}: --decoded names its label already ({spec.label})")
    if args.kbps is not None and spec.kbps is not None and args.kbps != spec.kbps:
        raise CliError(f"--kbps {args.kbps:g}: --decoded names its bitrate already ({spec.kbps:g})")
    label = spec.label if args.label is None else args.label
    kbps = spec.kbps if args.kbps is None else args.kbps
    return [dataclasses.replace(spec, label=label, kbps=kbps)]


def cmd_eval(args: argparse.Namespace) -> int:
    from ..lab.eval import EvalError
    from ..lab.eval.baselines import parse_specs
    from ..lab.eval.metrics import parse_metric_names
    from ..lab.eval.run import EvalOptions, run_eval

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CliError(f"--out {args.out}: is a file, not a folder")
    if (out / "summary.json").exists() and not args.force:
        raise CliError(f"--out {args.out}: holds a report already (use -f/--force to overwrite)")
    if args.max_seconds < 0:
        raise CliError("--max-seconds must be >= 0")
    classes = None
    if args.classes:
        classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    try:
        metrics = parse_metric_names(args.metrics)
    except ValueError as e:
        raise CliError(f"--metrics: {e}") from None
    decoded = _decoded_folders(args)
    model_spec = args.model
    if model_spec is None and decoded:
        model_spec = "none"
    default_baselines = None if decoded else "codec2:1400,codec2:700C,opus:6"
    try:
        baselines = parse_specs(args.baselines if args.baselines is not None else default_baselines)
        opts = EvalOptions(
            ref=Path(args.ref), out=out, split=args.split, classes=classes, max_clips=args.max_clips,
            max_seconds=args.max_seconds, baselines=baselines, model_spec=model_spec, steps=args.steps,
            seed=args.seed, decoded=decoded, metrics=metrics, save_audio=args.save_audio, listen=args.listen,
            progress=progress_enabled(args),
            log=(lambda s: None) if args.quiet else (lambda s: print(s, flush=True)),
            warn=lambda s: print(f"{PROG}: warning: {s}", file=sys.stderr, flush=True),
        )
        codec = None
        if model_spec is None or model_spec.lower() != "none":
            args.model = model_spec
            codec = load_codec(args)
            from ..api import DEFAULT_MODEL

            opts.model_spec = model_spec or str(DEFAULT_MODEL)
        run_eval(opts, codec)
    except EvalError as e:
        raise CliError(str(e), e.code) from None
    return 0
