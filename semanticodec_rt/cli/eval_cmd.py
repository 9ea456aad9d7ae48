"""``eval``: objective scores of the codec and baseline codecs (:mod:`semanticodec_rt.lab.eval`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import FORMATTER, MODEL_HELP, PROG, CliError, load_codec, positive_int, progress_enabled

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
or any folder of audio files (class from a speech/music/sfx path component).  With
--decoded DIR the files there (same relative paths, any audio suffix) are scored instead
of coding: any codec can be compared.  Baselines run as programs: codec2:MODE (c2enc/c2dec,
MODE 3200 2400 1600 1400 1300 1200 700C) and opus:KBPS (opusenc/opusdec, 6-256).
""",
    f"""\
examples:
  {PROG} eval --ref corpus --model mymodel.safetensors --out eval-report
  {PROG} eval --ref corpus/manifest.jsonl --model none --baselines codec2:1400,opus:6
  {PROG} eval --ref clips --max-clips 20 --classes speech --model official:~/semanticodec
  {PROG} eval --ref clips --decoded other_codec_out --label other --kbps 1.5
""",
)


def add_parser(sub) -> None:
    summary, description, epilog = _EVAL_TEXTS
    p = sub.add_parser("eval", help=summary, description=description, epilog=epilog,
                       formatter_class=FORMATTER)
    p.set_defaults(func=cmd_eval)
    p.add_argument("--ref", required=True, metavar="DIR|MANIFEST", help="the reference clips")
    p.add_argument("--decoded", metavar="DIR",
                   help="score these already-decoded files (matched to --ref by relative path)")
    p.add_argument("--label", metavar="NAME", help="codec name of --decoded (default: the folder name)")
    p.add_argument("--kbps", type=float, metavar="K", help="bitrate of --decoded, for the report")
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
    p.add_argument("--steps", type=positive_int, metavar="N",
                   help="diffusion steps (default: the model's, 4 for rt presets)")
    p.add_argument("--seed", type=int, default=0, help="decoder noise seed (default 0)")
    p.add_argument("--baselines", metavar="LIST",
                   help="comma-separated codec specs, codec2:MODE, opus:KBPS or nolace:KBPS (Opus 1.5.2 "
                        "decoded with NoLACE; builds the opus source on first use), or 'none' (default "
                        "codec2:1400,codec2:700C,opus:6; none with --decoded)")
    p.add_argument("--metrics", metavar="LIST",
                   help="stoi,estoi,pesq_wb,visqol,logmel,si_sdr,wer or all (default all)")
    p.add_argument("--out", default="eval-report", metavar="DIR",
                   help="report folder (default eval-report)")
    p.add_argument("--save-audio", action="store_true", help="also write every aligned decode to OUT/audio/")
    p.add_argument("-f", "--force", action="store_true", help="overwrite a report already in --out")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no messages")


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
    model_spec = args.model
    if model_spec is None and args.decoded is not None:
        model_spec = "none"
    default_baselines = None if args.decoded is not None else "codec2:1400,codec2:700C,opus:6"
    try:
        baselines = parse_specs(args.baselines if args.baselines is not None else default_baselines)
        opts = EvalOptions(
            ref=Path(args.ref), out=out, split=args.split, classes=classes, max_clips=args.max_clips,
            max_seconds=args.max_seconds, baselines=baselines, model_spec=model_spec, steps=args.steps,
            seed=args.seed, decoded=None if args.decoded is None else Path(args.decoded),
            decoded_label=args.label, decoded_kbps=args.kbps, metrics=metrics, save_audio=args.save_audio,
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
