"""Does bf16 autocast pay on this CPU?  Times one training step (forward + backward) in float32
and under ``torch.autocast("cpu", torch.bfloat16)``, median of N, in one run.

    python examples/bf16_autocast_probe.py [--threads 1] [--repeat 7]

Workloads: the rt-small diffusion UNet on a batch of unit windows (what the ldm and distill stages
train), the FARGAN torch twin on a batch of 1 s feature sequences (what a fine-tune of the
vocoder would train), and the speech route's semantic and codec stages on one training batch
(16 crops x 64 positions, synthetic audio: the cost does not depend on the signal).  Prints medians and the fp32/bf16 ratio (above 1: bf16 is faster) and
whether the CPU reports avx512_bf16.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def timed(step, repeat: int) -> float:
    step()  # warm-up: kernel selection, allocator
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    flags = open("/proc/cpuinfo").read()
    print(f"avx512_bf16 reported: {'avx512_bf16' in flags}; amx_bf16: {'amx_bf16' in flags}; "
          f"{args.threads} thread(s), median of {args.repeat}")

    from semanticodec_rt.codec import SemantiCodec
    from semanticodec_rt.config import rt_config
    from semanticodec_rt.weights.fargan import load_fargan

    codec = SemantiCodec.random(rt_config("rt-small", 100))
    dec = codec.decoder.train()
    g = torch.Generator().manual_seed(0)
    b = 16
    x = torch.randn(b, *dec.latent_shape, generator=g)
    t = torch.randint(0, 1000, (b,), generator=g)
    ctx = torch.randn(b, codec.windowing.decoder_window_tokens, codec.cfg.context_dim, generator=g)

    def unet_step(bf16: bool):
        def step():
            dec.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = dec.unet(x, t, ctx, None).float().pow(2).mean()
            loss.backward()
        return step

    fargan = load_fargan().train()
    for p in fargan.parameters():
        p.requires_grad_(True)
    feats = torch.randn(4, 105, 20, generator=g) * 0.5

    def fargan_step(bf16: bool):
        def step():
            fargan.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                st = fargan.prime(feats[:, :5])
                y, _ = fargan(feats[:, 5:15], st)  # 0.1 s: the autoregressive loop is the cost
                loss = y.float().pow(2).mean()
            loss.backward()
        return step

    from semanticodec_rt.config import PRESETS
    from semanticodec_rt.lab.train.speech_data import HISTORY, TAIL, UNIT_SAMPLES, Crops
    from semanticodec_rt.lab.train.speech_stages import CodecStage, SemanticStage

    sp = SemantiCodec.random(PRESETS["sp-small-r50"])
    n = HISTORY + 64 * UNIT_SAMPLES + TAIL
    crops = Crops(0.1 * torch.randn(16, n, generator=g), torch.randn(16, 64, 4, 20, generator=g))
    crops.features[..., 18].clamp_(-1.4, 1.4)

    def speech_step(stage):
        params = stage.trainable()

        def make(bf16: bool):
            def step():
                for p in params:
                    p.grad = None
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    loss, _ = stage.loss(crops)
                loss.backward()
            return step
        return make

    for name, make in (("rt-small UNet, batch 16 windows", unet_step), ("FARGAN twin, 4 x 0.1 s", fargan_step),
                       ("speech semantic stage, 16 x 2.56 s", speech_step(SemanticStage(sp).train())),
                       ("speech codec stage, 16 x 2.56 s", speech_step(CodecStage(sp).train()))):
        f32, bf16 = timed(make(False), args.repeat), timed(make(True), args.repeat)
        print(f"{name}: fp32 {f32 * 1e3:.1f} ms, bf16 autocast {bf16 * 1e3:.1f} ms, ratio fp32/bf16 {f32 / bf16:.2f}")


if __name__ == "__main__":
    main()
