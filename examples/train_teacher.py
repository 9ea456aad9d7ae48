"""Train every stage of a model in pipeline order, resumably, within a wall-clock budget.

Each call continues where the previous one stopped: finished stages (``final.safetensors``
present) are skipped, the current one resumes from its newest checkpoint, and the script stops
cleanly (checkpoint written) when ``--hours`` are used up, so a long CPU run can be spread over
many sessions.  When all stages are done it exports ``RUN/model.safetensors``.

    python examples/train_teacher.py --data /work/data/core --out /work/runs/rt-small --hours 2
"""

from __future__ import annotations

import argparse
import signal
import time
from pathlib import Path

import torch

from semanticodec_rt.lab.train.configs import apply_overrides, get_train_config
from semanticodec_rt.lab.train.loop import Trainer
from semanticodec_rt.lab.train.stages import STAGES


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="rt-small")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--hours", type=float, default=1.0, help="wall-clock budget of this call")
    ap.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset, in order")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    # Started in the background ('nohup ... &'), a process inherits SIGINT as *ignored*, so a
    # Ctrl-C / 'kill -INT' would not stop it; make SIGINT and SIGTERM stop the loop cleanly (the
    # loop writes a checkpoint on KeyboardInterrupt).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    tcfg = apply_overrides(get_train_config(args.config), args.set)
    deadline = time.time() + 3600 * args.hours
    for stage in args.stages.split(","):
        if (Path(args.out) / stage / "final.safetensors").exists():
            print(f"{stage}: finished earlier", flush=True)
            continue
        trainer = Trainer(stage, tcfg, args.data, args.out, device=args.device, resume=True, progress=False)
        chunk = trainer.settings.ckpt_every
        print(f"{stage}: from step {trainer.step}/{trainer.settings.steps}", flush=True)
        while trainer.step < trainer.settings.steps:
            if time.time() > deadline:
                print(f"{stage}: out of time at step {trainer.step}", flush=True)
                return
            last = trainer.run(max_steps=chunk)
            print(f"{stage}: {last}", flush=True)
        print(f"{stage}: finished", flush=True)
    if all((Path(args.out) / s / "final.safetensors").exists() for s in STAGES):
        from semanticodec_rt.lab.train.assemble import export

        path, sha = export(args.out)
        print(f"exported {path} (model {sha})", flush=True)


if __name__ == "__main__":
    main()
