"""Per-stage summary of a training run: steps, compute hours, last losses, parameters.

Hours are the sum over log lines of ``sec_per_step x steps since the previous line`` (time spent
stepping, not waiting between sessions).  A log whose lines go back in step (two processes that
wrote into one stage by mistake, or a resume from an older checkpoint) is read as the one
monotonic sequence that reaches the last step: lines after the highest step so far are kept.

    python examples/run_summary.py /work/runs/rt-small [--markdown]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from semanticodec_rt.lab.train.stages import STAGES


def stage_summary(stage_dir: Path) -> dict | None:
    log = stage_dir / "log.jsonl"
    if not log.exists():
        return None
    lines = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    steps = [x for x in lines if "final" not in x and "step" in x]
    kept, hours, prev = [], 0.0, 0
    for x in steps:
        if x["step"] <= prev:
            continue  # a line of another (stale) sequence
        hours += x.get("sec_per_step", 0.0) * (x["step"] - prev) / 3600
        prev = x["step"]
        kept.append(x)
    final = next((x["final"] for x in reversed(lines) if "final" in x), None)
    last = kept[-1] if kept else {}
    cfg = json.loads((stage_dir / "config.json").read_text()) if (stage_dir / "config.json").exists() else {}
    return {
        "stage": stage_dir.name,
        "steps": prev,
        "planned": cfg.get(stage_dir.name, {}).get("steps"),
        "finished": (stage_dir / "final.safetensors").exists(),
        "hours": hours,
        "last": {k: v for k, v in last.items() if k.startswith(("loss", "l1", "mel_l1", "vq_"))},
        "final": final,
    }


def parameters(stage_dir: Path) -> int | None:
    p = stage_dir / "final.safetensors"
    if not p.exists():
        return None
    from safetensors import safe_open

    with safe_open(str(p), framework="pt") as f:
        total = 0
        for k in f.keys():
            if "codebook" in k or k.endswith(("embed_avg", "cluster_size", "initted", "scale_initted")):
                continue  # buffers, not trained parameters
            total += math.prod(f.get_slice(k).get_shape())
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    args = ap.parse_args()
    rows = []
    for stage in (*STAGES, "distill"):
        s = stage_summary(args.run / stage)
        if s is None:
            continue
        s["params"] = parameters(args.run / stage)
        rows.append(s)
    print("| stage | steps | planned | finished | compute h | exported tensors (M values) | last logged |")
    print("|---|---:|---:|---|---:|---:|---|")
    for s in rows:
        last = ", ".join(f"{k} {v:.4g}" for k, v in s["last"].items())
        params = f"{s['params'] / 1e6:.2f}" if s["params"] else "-"
        print(f"| {s['stage']} | {s['steps']} | {s['planned']} | {'yes' if s['finished'] else 'no'} | "
              f"{s['hours']:.2f} | {params} | {last} |")
    print(f"total compute hours: {sum(s['hours'] for s in rows):.2f}")


if __name__ == "__main__":
    main()
