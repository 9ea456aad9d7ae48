"""``train``: run one stage of the training pipeline, or export a finished run
(:mod:`semanticodec_rt.lab.train`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import FORMATTER, CliError, positive_int, progress_enabled, say

STAGE_CHOICES = ("mae", "kmeans", "vae", "vocoder", "ldm", "export", "distill", "speech", "general")

_DESCRIPTION = """\
Train a model from a corpus (see 'semanticodec-rt data build'), one stage at a time, in this
order (vae and vocoder do not depend on the others):

  mae      semantic ViT, masked-autoencoder pre-training on fbank windows
  kmeans   semantic codebooks: mini-batch k-means on the ViT features (kmeans.vocabs sizes)
  vae      mel VAE (L1 + KL, optional patch GAN)
  vocoder  HiFi-GAN from log-mel (multi-period + multi-scale discriminators, mel loss)
  ldm      latent diffusion UNet + acoustic LSTM/VQ jointly (v-prediction, guidance dropout)
  export   assemble RUN_DIR's five stages into RUN_DIR/model.safetensors (--model PATH)

and, on a finished teacher (ours or the published checkpoints):

  distill  few-step students of the decoder (progressive distillation, guidance folded in);
           writes RUN_DIR/distill/model-sN.safetensors for every step count of distill.rounds

The speech route (preset sp-small-r50: tokens -> FARGAN features -> FARGAN) has its own recipe,
from the feature streams of 'semanticodec-rt data features' (--data STREAMS):

  speech   semantic ViT -> k-means -> acoustic encoder + residual VQ + regression decoder ->
           residual flow, every unfinished stage in turn, resumable to the step (--max-minutes
           stops it in slices); 'train export --out RUN_DIR' then writes the model (float16
           by default for a speech run)
  general  the general-audio route (music, effects) on a finished speech model (--base RUN_DIR
           or checkpoint): a tokens -> log-mel path, the iSTFT vocoder fine-tuned on its output
           (--vocoder: a trial's final.safetensors from examples/vocoder_trials.py), then the
           router that picks a route per position, on streams of 'data features --mix general';
           tokens and the speech path stay exactly as they were;
           --set general_steps=N,vocoder_steps=N,router_steps=N

All stages of one model share RUN_DIR (one sub-folder each: config.json, log.jsonl, ckpt/,
final.safetensors).  Checkpoints every STAGE.ckpt_every steps and when stopped (Ctrl-C,
--max-steps); --resume continues exactly where the newest checkpoint left off.  Batches are
drawn from the manifest's train split as a function of (seed, step), so several processes
under 'torchrun --nproc_per_node N semanticodec-rt train ...' see the same global batch as one.
Configs: smoke (seconds per stage, for tests), rt-tiny, rt-small."""

_EPILOG = """\
examples:
  semanticodec-rt train mae --config rt-small --data corpus --out runs/rt-small
  semanticodec-rt train mae --config rt-small --data corpus --out runs/rt-small --resume --max-steps 2000
  semanticodec-rt train kmeans --config rt-small --data corpus --out runs/rt-small --set kmeans.vocabs=8192,4096
  torchrun --nproc_per_node 2 -m semanticodec_rt train vae --config rt-small --data corpus --out runs/rt-small
  semanticodec-rt train export --out runs/rt-small --fp16
  semanticodec-rt train distill --teacher runs/rt-small --data corpus --out runs/rt-small
  semanticodec-rt data features --ref corpus --out streams
  semanticodec-rt train speech --data streams --out runs/speech --threads 1 --max-minutes 170
  semanticodec-rt train speech --data streams --out runs/speech2 --from-pack resume/sp-small-r50 \
      --set codec_steps=40000
  semanticodec-rt data features --ref corpus --out general_streams --mix general
  semanticodec-rt train general --base runs/speech --data general_streams --out runs/general --threads 1
  semanticodec-rt train distill --teacher official:ckpts:100:32768 --data corpus --out runs/official-d \
      --device cuda --precision bf16"""


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a stage of the model pipeline, or export a run",
                       description=_DESCRIPTION, epilog=_EPILOG, formatter_class=FORMATTER)
    p.set_defaults(func=cmd_train)
    p.add_argument("stage", choices=STAGE_CHOICES, help="the stage to train, or export")
    p.add_argument("--config", default="rt-small", help="training config (smoke, rt-tiny, rt-small; default rt-small)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting, e.g. ldm.lr=1e-4, vae.batch=8, seed=1 (repeatable)")
    p.add_argument("--data", metavar="CORPUS", help="corpus folder or its manifest.jsonl (train split used)")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="the run folder (keep it outside git)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint of the stage")
    p.add_argument("--max-steps", type=positive_int, metavar="N",
                   help="stop after N more steps (a checkpoint is written), e.g. to train in slices")
    p.add_argument("--max-minutes", type=float, metavar="M",
                   help="speech: stop after M minutes of wall time (a checkpoint is written)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to train (default cpu)")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                   help="autocast precision on CUDA (default fp32; ignored on CPU)")
    p.add_argument("--threads", type=positive_int, metavar="N", help="torch CPU threads")
    p.add_argument("--teacher", metavar="SPEC",
                   help="distill: the teacher, a run folder, official:DIR[:RATE[:VOCAB]] or a checkpoint "
                        "(then also --set distill.vae=RUN/vae/final.safetensors)")
    p.add_argument("--from-pack", metavar="DIR",
                   help="speech: start RUN_DIR from a float16 run pack (e.g. the repository's "
                        "resume/sp-small-r50), then resume it")
    p.add_argument("--base", metavar="RUN_DIR|FILE",
                   help="general: the speech model to extend (a speech run folder or an exported checkpoint)")
    p.add_argument("--vocoder", metavar="FILE",
                   help="general: the iSTFT vocoder to start from (a vocoder trial's final.safetensors)")
    p.add_argument("--model-out", metavar="FILE", help="export: checkpoint path (default RUN_DIR/model.safetensors)")
    p.add_argument("--fp16", action="store_true", help="export: store float16 tensors (half the size)")
    p.add_argument("--storage", choices=("float32", "float16", "int8"),
                   help="export: how tensors are stored; int8 = large weights as int8 with per-row "
                        "scales (about a quarter of float32)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary")


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from ..lab.train import configs

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.stage == "general":
        return _cmd_general(args)
    if args.stage == "speech" or (args.stage == "export" and _is_speech_run(args.out)):
        return _cmd_speech(args)
    if args.stage == "export":
        from ..lab.train.assemble import export

        if args.fp16 and args.storage not in (None, "float16"):
            raise CliError("--fp16 and --storage disagree; give one")
        storage = args.storage or ("float16" if args.fp16 else None)
        path, sha = export(args.out, args.model_out, storage=storage)
        say(args, f"exported {args.out} -> {path} (model {sha}, {Path(path).stat().st_size / 1e6:.1f} MB)")
        return 0
    if not args.data:
        raise CliError("--data CORPUS is required to train a stage")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise CliError("--device cuda: no CUDA device is available to torch")
    overrides = list(args.set)
    if args.teacher:
        if args.stage != "distill":
            raise CliError("--teacher is for the distill stage")
        overrides.append(f"distill.teacher={args.teacher}")
    try:
        tcfg = configs.apply_overrides(configs.get_train_config(args.config), overrides)
    except ValueError as e:
        raise CliError(str(e)) from None
    from ..lab.train.data import TrainDataError
    from ..lab.train.distributed import shutdown
    from ..lab.train.loop import RunDirError, Trainer

    clean = False
    try:
        try:
            trainer = Trainer(args.stage, tcfg, args.data, args.out, device=args.device, resume=args.resume,
                              precision=args.precision, progress=progress_enabled(args))
        except ValueError as e:  # settings that do not fit (distill rounds, teacher, vocab)
            raise CliError(str(e)) from None
        last = trainer.run(args.max_steps)
        clean = True
    except (RunDirError, TrainDataError, FileNotFoundError) as e:
        raise CliError(str(e)) from None
    finally:
        shutdown(clean)
    if trainer.world.main:
        done = trainer.step >= trainer.settings.steps
        losses = ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k.startswith("loss"))
        say(args, f"{args.stage}: step {trainer.step}/{trainer.settings.steps}"
                  f"{' (finished: final.safetensors written)' if done else ''}; {losses}")
    return 0


def _is_speech_run(out: str) -> bool:
    from ..lab.train.speech_run import is_speech_run

    return is_speech_run(Path(out))


def _cmd_speech(args: argparse.Namespace) -> int:
    """``train speech`` (the recipe) and ``train export`` of a speech run."""
    from ..lab.train import speech_run

    if args.stage == "export":
        if args.fp16 and args.storage not in (None, "float16"):
            raise CliError("--fp16 and --storage disagree; give one")
        path, sha = speech_run.export(args.out, args.model_out, storage=args.storage or "float16")
        say(args, f"exported {args.out} -> {path} (model {sha}, {Path(path).stat().st_size / 1e6:.1f} MB)")
        return 0
    if not args.data:
        raise CliError("--data STREAMS is required (the folder 'semanticodec-rt data features' wrote)")
    if args.from_pack:
        from ..lab.train.speech_pack import unpack

        try:
            files = unpack(args.from_pack, args.out)
        except (FileNotFoundError, ValueError) as e:
            raise CliError(f"--from-pack: {e}") from None
        say(args, f"{args.out}: {len(files)} files from the pack {args.from_pack} (float16 -> float32)")
    if not (Path(args.data) / "stats.json").exists():
        raise CliError(f"--data {args.data}: no stats.json; build it with 'semanticodec-rt data features'")
    try:
        recipe = speech_run.recipe_with(args.set)
    except ValueError as e:
        raise CliError(str(e)) from None
    record = speech_run.run_recipe(args.data, args.out, recipe, max_minutes=args.max_minutes,
                                   threads=args.threads, log=lambda s: say(args, s))
    cpu_h = sum(record["cpu_s"].values()) / 3600
    say(args, f"speech: {', '.join(speech_run.progress(args.out))}; {cpu_h:.2f} CPU-hours so far")
    return 0



def _cmd_general(args: argparse.Namespace) -> int:
    """``train general``: the general path and the router on a finished speech model."""
    from ..lab.train import general_run, speech_run

    if not args.base:
        raise CliError("--base RUN_DIR|FILE is required (the speech model to extend)")
    if not Path(args.base).exists():
        raise CliError(f"--base {args.base}: no such run folder or file")
    if not args.data or not (Path(args.data) / "stats.json").exists():
        raise CliError("--data STREAMS is required: a folder from 'semanticodec-rt data features --mix general'")
    try:
        recipe = speech_run.recipe_with(args.set, general_run.GeneralRecipe())
    except ValueError as e:
        raise CliError(str(e)) from None
    if args.vocoder and not Path(args.vocoder).is_file():
        raise CliError(f"--vocoder {args.vocoder}: no such file")
    try:
        record = general_run.run_general(args.base, args.data, args.out, recipe, vocoder=args.vocoder,
                                         max_minutes=args.max_minutes, log=lambda s: say(args, s))
    except (ValueError, FileNotFoundError) as e:
        raise CliError(str(e)) from None
    cpu_h = sum(record["cpu_s"].values()) / 3600
    say(args, f"general: {', '.join(f'{k} {v / 3600:.2f} CPU-h' for k, v in record['cpu_s'].items())} "
              f"({cpu_h:.2f} CPU-hours); 'train export --out {args.out}' writes the model")
    return 0
