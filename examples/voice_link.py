"""The voice link end to end in one process: sender -> seeded lossy relay -> receiver on 127.0.0.1.

Three parts:

1. **the link** -- a speech file replayed in real time through ``semanticodec_rt.link`` (encode,
   packetise, relay with loss / duplicates / reordering / jitter / late packets, jitter buffer,
   concealment, decode) and both ends' counters;
2. **overhead** -- payload (id bits) vs wire (all headers, UDP/IPv4 included) kbps for 1, 2, 5
   and 8 token positions per datagram, without and with the HMAC tag (exact byte counts from the
   packetizer, 30 s of stream);
3. **concealment** -- ``--plc repeat`` vs ``--plc pad`` at several packet-loss rates (seeded
   i.i.d. packet loss on the same tokens), scored against the *lossless* decode with the same
   noise seed: log-mel distance (lower is better) and SI-SDR (higher is better).

The model is the shipped default (``sc.load_model()``: the distilled rt-small at token rate 100,
MODEL_CARD.md) unless ``--model`` names another: a checkpoint path, or ``preset:NAME`` (random
weights: the decoder turns any tokens into shaped noise, so part 3 then measures only how far
each strategy moves the decoder's output from the lossless one). The default model's audio
quality is low, so read part 3 as a comparison of the two strategies, not as how speech sounds.

The default speech clip comes from Debian's ``asterisk-core-sounds-en-wav``; without it the
example prints one line saying what to install (or pass ``--audio FILE``) and exits with 1.

    python examples/voice_link.py                       # ~5 min on 2 busy CPU cores (30 s clip)
    python examples/voice_link.py --seconds 10 --loss 0.2 --plc pad
    python examples/voice_link.py --model preset:rt-tiny-r100    # random weights, faster
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

import semanticodec_rt as sc
from semanticodec_rt.audio.load import load_waveform
from semanticodec_rt.lab.eval.metrics import logmel_distance, si_sdr
from semanticodec_rt.link import CodecDecoder, Concealer, Impairments, Packetizer, ReceiverCore, link_info, run_loopback
from semanticodec_rt.link.datagram import DatagramKind
from semanticodec_rt.link.stats import summary_lines

SPEECH = Path("/usr/share/asterisk/sounds/en_US_f_Allison/demo-congrats.wav")  # asterisk-core-sounds-en-wav
KEY = b"voice-link-example-key-0123456789"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--audio", type=Path, default=SPEECH, help="speech file (any rate; default %(default)s)")
    ap.add_argument("--seconds", type=float, help="use only the first S seconds (default: all)")
    ap.add_argument("--model", help="model spec: a checkpoint path or preset:NAME (random weights); "
                    "default: the shipped model")
    ap.add_argument("--loss", type=float, default=0.1, help="relay packet loss of part 1 (default 0.1)")
    ap.add_argument("--plc", choices=("repeat", "pad"), default="repeat", help="concealment of part 1")
    ap.add_argument("--frames-per-packet", type=int, help="part 1 (default: one unit)")
    ap.add_argument("--seed", type=int, default=0, help="relay and loss-pattern seed")
    ap.add_argument("--losses", default="0.05,0.1,0.2", help="loss rates of part 3")
    ap.add_argument("--patterns", type=int, default=3, help="loss patterns (seeds) per rate in part 3")
    args = ap.parse_args()
    torch.set_num_threads(1)  # small batches: threads only spin against each other here
    torch.set_flush_denormal(True)

    if not args.audio.exists():
        if args.audio == SPEECH:
            print(f"voice_link: the speech clip {SPEECH} is missing: apt-get install asterisk-core-sounds-en-wav "
                  "(or pass --audio FILE)", file=sys.stderr)
        else:
            print(f"voice_link: error: no such audio file: {args.audio}", file=sys.stderr)
        return 1
    spec = args.model
    try:
        codec = sc.load_model(spec, random_weights_ok=bool(spec) and spec.startswith("preset:"))
    except (OSError, ValueError) as e:  # a model spec or checkpoint that does not load
        print(f"voice_link: error: {e}", file=sys.stderr)
        return 1
    if not codec.windowing.realtime:
        print(f"voice_link: error: {codec.cfg.name} cannot stream over the link ({codec.windowing.name} "
              "windowing); use an rt model", file=sys.stderr)
        return 1
    print(f"model: {codec.cfg.name} (sha {codec.model_sha})")
    wave = load_waveform(args.audio)[0][0].numpy()
    if args.seconds:
        wave = wave[: int(args.seconds * 16000)]
    print(f"audio: {args.audio} ({len(wave) / 16000:.2f} s at 16 kHz)\n")

    print(f"== 1. the link: {args.loss:.0%} loss, 5 % duplicated, 5 % reordered, 0-20 ms jitter, "
          f"2 % 1.2 s late; --plc {args.plc}, authenticated")
    imp = Impairments(loss=args.loss, duplicate=0.05, reorder=0.05, jitter=0.02, late=0.02, late_delay=1.2,
                      seed=args.seed)
    sent, got, ch = run_loopback(codec, wave, imp=imp, key=KEY, plc=args.plc,
                                 frames_per_packet=args.frames_per_packet)
    print(f"relay: {ch.received} datagrams in, {ch.dropped} dropped, {ch.duplicated} duplicated, "
          f"{ch.reordered} held back, {ch.delayed_late} delayed late")
    _side_by_side(sent, got)

    print(f"\n== 2. overhead at token rate {codec.cfg.token_rate} (kbps over 30 s of stream; HELLO every 2 s)")
    print(_overhead_table(codec))

    losses = [float(x) for x in args.losses.split(",")]
    print(f"\n== 3. concealment vs the lossless decode ({args.patterns} loss patterns per rate, "
          "packets of one unit)")
    print(_plc_table(codec, wave, losses, args.patterns, args.seed))
    return 0


def _side_by_side(sent: dict, got: dict) -> None:
    left = summary_lines({"role": "send", **sent})
    right = summary_lines({"role": "recv", **got})
    width = max(map(len, left)) + 4
    for i in range(max(len(left), len(right))):
        a = left[i] if i < len(left) else ""
        b = right[i] if i < len(right) else ""
        print(f"{a:<{width}}{b}")


def _overhead_table(codec) -> str:
    rows = ["positions/datagram  auth  datagram B (+28 UDP/IP)  payload kbps  wire kbps  "
            "overhead: udp_ip framing auth hello"]
    tu = codec.windowing.unit_frames
    ids = np.zeros((tu, 2), np.int64)  # ids are packed at a fixed width: their values change no size
    units = round(30 * link_info(codec).frames_per_s) // tu  # 30 s of units
    for fpp in (1, 2, 5, 8):
        for key in (None, KEY):
            pk = Packetizer(link_info(codec, fpp), key=key)
            hello = pk.start()[0]
            if key is not None:  # the handshake: a receiver's ACCEPT lets DATA out
                for reply in ReceiverCore(link_info(codec, fpp), tu, key=key).handle(hello, 0.0):
                    pk.accept(reply)
            size = 0
            for _ in range(units):
                out = pk.push(ids)
                size = max([size] + [len(d) for d in out if d[0] & 7 == DatagramKind.DATA])
            pk.end(30 * 16000)
            d = pk.stats.to_dict()
            o = d["overhead_kbps"]
            rows.append(f"{fpp:>18}  {'yes' if key else 'no':>4}  {size:>24}  {d['payload_kbps']:>12.3f}  "
                        f"{d['wire_kbps']:>9.3f}  {o['udp_ip']:>16.3f} {o['framing']:>7.3f} {o['auth']:>4.3f} "
                        f"{o['hello']:>5.3f}")
    return "\n".join(rows)


def _plc_table(codec, wave: np.ndarray, losses: list[float], patterns: int, seed: int) -> str:
    enc = sc.StreamingEncoder(codec)
    x = torch.from_numpy(wave)[None]
    ids = torch.cat([enc.push(x), enc.flush()], dim=1)[0].numpy()
    tu = codec.windowing.unit_frames
    ref = _decode(codec, ids, np.zeros(len(ids), bool), len(wave))
    rows = ["loss   plc     concealed  log-mel dist (lower better)   SI-SDR dB (higher better)"]
    for loss in losses:
        scores = {"repeat": [], "pad": []}
        concealed = []
        for k in range(patterns):
            rng = np.random.default_rng([seed, k, int(loss * 1000)])
            lost = rng.random(-(-len(ids) // tu)) < loss  # whole packets of one unit
            missing = np.repeat(lost, tu)[: len(ids)]
            concealed.append(missing.mean())
            for mode in scores:
                filled, pad = Concealer(mode).apply(ids, missing)
                deg = _decode(codec, filled, pad, len(wave))
                scores[mode].append((logmel_distance(ref, deg), si_sdr(ref, deg)))
        for mode, s in scores.items():
            s = np.array(s)
            rows.append(f"{loss:>4.0%}   {mode:<6}  {np.mean(concealed):>8.1%}  "
                        f"{s[:, 0].mean():>12.3e} +- {s[:, 0].std():.1e}      "
                        f"{s[:, 1].mean():>8.2f} +- {s[:, 1].std():.2f}")
    return "\n".join(rows)


def _decode(codec, ids: np.ndarray, pad: np.ndarray, n: int) -> np.ndarray:
    """What the receiver's decode thread does, 8 units a call, cut to ``n`` samples."""
    dec = CodecDecoder(codec)
    step = 8 * codec.windowing.unit_frames
    out = [dec.push(ids[i : i + step], pad[i : i + step]) for i in range(0, len(ids), step)]
    return np.concatenate(out + [dec.flush()])[:n]


if __name__ == "__main__":
    sys.exit(main())
