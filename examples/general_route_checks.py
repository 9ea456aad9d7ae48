"""Checks of the general-audio route: a speech -> music -> speech file, and a mixed set.

    python examples/general_route_checks.py switch --speech a.flac --music m.flac --speech2 b.flac \
        --out runs/switch [--model M]
    python examples/general_route_checks.py mixed --ref /work/data/core --out runs/mixed [--clips 40]
    semanticodec-rt eval --ref runs/mixed/mixed.jsonl --decoded runs/mixed-speech=route-speech ...

``switch`` joins the pieces (speech 3 s, music 4 s, speech 3 s by default; each cut from its
file's start), codes the file once, decodes it with the router (auto) and with each route
forced, and prints the route per 40 ms position and, at each switch, a click measure: the
largest sample-to-sample step within 40 ms of the switch, over the 99.9th percentile of the
steps of the whole decode (a click would stand far above 1).  Writes the input, the three
decodes and ``switch.json`` to OUT.

``mixed`` writes a held-out mixed-content set: test speech clips with a test-split music
excerpt under them (music 6-12 dB below the speech's active level), as FLAC files and a
manifest (class ``mixed``) that ``eval --ref`` reads; decode it with each route
(``examples/decode_set.py --route``) to see which one scores better.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

SR = 16000
UNIT = 640  # samples per token position


def _read(path, seconds: float) -> np.ndarray:
    import soundfile as sf

    from semanticodec_rt.audio.resample import resample

    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    x = x.mean(1)
    if sr != SR:
        import torch

        x = resample(torch.from_numpy(x)[None], sr, SR)[0].numpy()
    return x[: int(seconds * SR)]


def click_ratios(y: np.ndarray, switches: list[int]) -> list[float]:
    """Per switch position: the largest |y[n] - y[n-1]| within one position of it, over the
    99.9th percentile of |y[n] - y[n-1]| over the whole signal."""
    step = np.abs(np.diff(y))
    ref = np.percentile(step, 99.9) + 1e-9
    out = []
    for u in switches:
        lo, hi = max(0, (u - 1) * UNIT), min(len(step), (u + 1) * UNIT)
        out.append(float(step[lo:hi].max() / ref))
    return out


def _switch(args) -> int:
    import soundfile as sf
    import torch

    import semanticodec_rt as sc

    torch.set_num_threads(args.threads)
    parts = [_read(args.speech, args.speech_s), _read(args.music, args.music_s),
             _read(args.speech2 or args.speech, args.speech_s)]
    x = np.concatenate(parts).astype(np.float32)
    codec = sc.load_model(args.model)
    if not codec.cfg.speech or not codec.cfg.speech.general_route:
        print(f"{codec.cfg.name} has no general-audio route", file=sys.stderr)
        return 1
    wave = torch.from_numpy(x)[None]
    tokens = codec.encode(wave)
    args.out.mkdir(parents=True, exist_ok=True)
    sf.write(str(args.out / "input.wav"), x, SR, subtype="PCM_16")
    decodes = {}
    for route in ("auto", "speech", "general"):
        codec.decoder.route = route
        y = codec.decode(tokens, steps=0, n_samples=len(x))[0, 0].numpy()
        decodes[route] = y
        sf.write(str(args.out / f"decoded_{route}.wav"), np.clip(y, -1, 1), SR, subtype="PCM_16")
    codec.decoder.route = "auto"
    routes = codec.decoder.routes(codec.decoder_feature(tokens))[0].numpy()
    switches = [int(u) for u in np.flatnonzero(routes[1:] != routes[:-1]) + 1]
    bounds = np.cumsum([len(p) for p in parts])[:-1] / UNIT
    clicks = click_ratios(decodes["auto"], switches)
    line = "".join("G" if g else "s" for g in routes)
    print(f"route per 40 ms position (s speech, G general); content boundaries at positions "
          f"{', '.join(f'{b:.1f}' for b in bounds)}:")
    for i in range(0, len(line), 100):
        print("  " + line[i : i + 100])
    piece = np.repeat(np.arange(3), [len(p) // UNIT + (1 if len(p) % UNIT else 0) for p in parts])[: len(routes)]
    shares = {name: float(routes[piece == k].mean()) if (piece == k).any() else float("nan")
              for k, name in enumerate(("speech", "music", "speech2"))}
    print("share of positions on the general route: " + ", ".join(f"{k} {v:.2f}" for k, v in shares.items()))
    print("switches at positions " + ", ".join(map(str, switches)) + "; click ratio "
          + ", ".join(f"{c:.2f}" for c in clicks) + " (largest step near the switch / 99.9th pct of all steps)")
    (args.out / "switch.json").write_text(json.dumps({"routes": line, "switches": switches, "click_ratio": clicks,
                                                      "general_share": shares, "boundaries": bounds.tolist(),
                                                      "model": codec.model_sha}, indent=1))
    return 0


def _mixed(args) -> int:
    import soundfile as sf

    from semanticodec_rt.lab.data import manifest as mf
    from semanticodec_rt.lab.data.feature_stream import active_rms_db

    root = Path(args.ref)
    entries = mf.read(root / "manifest.jsonl")
    rng = np.random.default_rng(args.seed)
    speech = [e for e in entries if e["split"] == "test" and e["cls"] == "speech" and e["dur"] >= 1.5]
    music = [e for e in entries if e["split"] == "test" and e["cls"] == "music"]
    if not speech or not music:
        print("the corpus has no test speech or test music", file=sys.stderr)
        return 1
    out = Path(args.out)
    (out / "mixed").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, k in enumerate(rng.choice(len(speech), min(args.clips, len(speech)), replace=False)):
        e = speech[k]
        s, _ = sf.read(str(root / e["path"]), dtype="float32")
        m_e = music[int(rng.integers(len(music)))]
        info = sf.info(str(root / m_e["path"]))
        start = int(rng.integers(0, max(1, info.frames - len(s))))
        m, _ = sf.read(str(root / m_e["path"]), start=start, frames=len(s), dtype="float32")
        m = np.pad(m, (0, len(s) - len(m)))
        below = rng.uniform(6.0, 12.0)
        gain = 10 ** ((active_rms_db(s) - below - active_rms_db(m)) / 20) if np.any(m) else 0.0
        y = np.clip(s + gain * m, -1, 1)
        rel = f"mixed/mix{i:03d}.flac"
        sf.write(str(out / rel), y, SR)
        rows.append({**mf.make_entry(path=rel, cls="mixed", pkg="mixed", licence=f"{e['licence']} + {m_e['licence']}",
                                     src=f"{e['path']} + {m_e['path']}@{start}", orig_sr=SR, n_samples=len(y),
                                     split="test", group=f"mixed{i}"), "music_below_db": round(below, 1)})
    mf.write(out / "mixed.jsonl", rows)
    print(f"{len(rows)} mixed clips -> {out / 'mixed.jsonl'}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("switch", help="a speech -> music -> speech file through the router")
    s.add_argument("--speech", required=True)
    s.add_argument("--music", required=True)
    s.add_argument("--speech2", help="the last piece (default: --speech again)")
    s.add_argument("--speech-s", type=float, default=3.0)
    s.add_argument("--music-s", type=float, default=4.0)
    s.add_argument("--model", default=None, help="model spec (default: the shipped model)")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--threads", type=int, default=1)
    m = sub.add_parser("mixed", help="a held-out set of speech over music")
    m.add_argument("--ref", required=True, help="corpus folder")
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--clips", type=int, default=40)
    m.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    return {"switch": _switch, "mixed": _mixed}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
