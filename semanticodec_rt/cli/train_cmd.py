"""``train``: run one stage of the training pipeline, or export a finished run
(:mod:`semanticodec_rt.train`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .app import FORMATTER, CliError, positive_int, progress_enabled, say

STAGE_CHOICES = ("mae", "kmeans", "vae", "vocoder", "ldm", "export")

_DESCRIPTION = """\
Train a model from a corpus (see 'semanticodec-rt data build'), one stage at a time, in this
order (vae and vocoder do not depend on the others):

  mae      semantic ViT, masked-autoencoder pre-training on fbank windows
  kmeans   semantic codebooks: mini-batch k-means on the ViT features (kmeans.vocabs sizes)
  vae      mel VAE (L1 + KL, optional patch GAN)
  vocoder  HiFi-GAN from log-mel (multi-period + multi-scale discriminators, mel loss)
  ldm      latent diffusion UNet + acoustic LSTM/VQ jointly (v-prediction, guidance dropout)
  export   assemble RUN_DIR's five stages into RUN_DIR/model.safetensors (--model PATH)

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
  semanticodec-rt train export --out runs/rt-small --fp16"""


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
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to train (default cpu)")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                   help="autocast precision on CUDA (default fp32; ignored on CPU)")
    p.add_argument("--threads", type=positive_int, metavar="N", help="torch CPU threads")
    p.add_argument("--model-out", metavar="FILE", help="export: checkpoint path (default RUN_DIR/model.safetensors)")
    p.add_argument("--fp16", action="store_true", help="export: store float16 tensors (half the size)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary")


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from ..train import configs

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.stage == "export":
        from ..train.assemble import export

        path, sha = export(args.out, args.model_out, dtype=torch.float16 if args.fp16 else None)
        say(args, f"exported {args.out} -> {path} (model {sha}, {Path(path).stat().st_size / 1e6:.1f} MB)")
        return 0
    if not args.data:
        raise CliError("--data CORPUS is required to train a stage")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise CliError("--device cuda: no CUDA device is available to torch")
    try:
        tcfg = configs.apply_overrides(configs.get_train_config(args.config), args.set)
    except ValueError as e:
        raise CliError(str(e)) from None
    from ..train.data import TrainDataError
    from ..train.distributed import shutdown
    from ..train.loop import RunDirError, Trainer

    try:
        trainer = Trainer(args.stage, tcfg, args.data, args.out, device=args.device, resume=args.resume,
                          precision=args.precision, progress=progress_enabled(args))
        last = trainer.run(args.max_steps)
    except (RunDirError, TrainDataError) as e:
        raise CliError(str(e)) from None
    finally:
        shutdown()
    if trainer.world.main:
        done = trainer.step >= trainer.settings.steps
        losses = ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k.startswith("loss"))
        say(args, f"{args.stage}: step {trainer.step}/{trainer.settings.steps}"
                  f"{' (finished: final.safetensors written)' if done else ''}; {losses}")
    return 0
