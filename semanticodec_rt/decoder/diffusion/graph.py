"""The few-step sampling loop captured as one CUDA graph (torch.cuda graphs).

A decoder window of an rt model is a handful of small UNet calls plus fused sampler steps; on a
GPU their kernel *launches* cost more than their arithmetic.  :class:`GraphedSampler` records
the whole loop once for fixed shapes (batch, latent, context) and then replays it with one
launch: the inputs are copied into static buffers, the graph runs, the output is copied out.

Replay computes exactly what the eager loop computes (same kernels, same order, same scalars,
which are baked into the graph per step), so ``GraphedSampler(...)(...)`` equals
:func:`~semanticodec_rt.decoder.diffusion.ddim.sample` with ``fused=True`` on the same inputs; the GPU
test checks it.  CPU tensors are refused: there is nothing to capture there.
"""

from __future__ import annotations

from typing import Callable

import torch

from .ddim import DDIMSchedule, sample


class GraphedSampler:
    """Capture ``sample(denoiser, cond, uncond, x_T, schedule, ..., fused=True)`` for fixed shapes.

    Args:
        denoiser: the v-prediction network, ``(x, t, context) -> v`` (in eval mode; it must not
            synchronise with the host or change shapes between calls).
        schedule: the DDIM schedule (its length is the number of steps).
        sqrt_alphas_cumprod, sqrt_one_minus_alphas_cumprod: the model's ``[1000]`` buffers.
        x_shape: ``(B, C, T, F)`` of the latent.
        context_shape: ``(B, L, D)`` of one branch's context.
        cfg_scale: guidance scale (1: no unconditional branch).
        device: the CUDA device.
        warmup: eager runs on a side stream before capture (lets cuDNN/cuBLAS pick algorithms).
    """

    def __init__(self, denoiser: Callable, schedule: DDIMSchedule, sqrt_alphas_cumprod: torch.Tensor,
                 sqrt_one_minus_alphas_cumprod: torch.Tensor, x_shape: tuple[int, ...],
                 context_shape: tuple[int, ...], *, cfg_scale: float = 2.0,
                 device: torch.device | str = "cuda", warmup: int = 2) -> None:
        device = torch.device(device)
        if device.type != "cuda":
            raise ValueError("GraphedSampler needs a CUDA device (CUDA graphs do not exist on the CPU)")
        # Host copies: sample() reads these per step, and a device-to-host read inside a capture
        # would be a synchronisation (illegal while capturing).
        sqrt_alphas_cumprod = sqrt_alphas_cumprod.detach().cpu()
        sqrt_one_minus_alphas_cumprod = sqrt_one_minus_alphas_cumprod.detach().cpu()
        self.steps = len(schedule)
        self.guided = cfg_scale != 1.0
        self.x = torch.zeros(x_shape, device=device)
        self.cond = torch.zeros(context_shape, device=device)
        self.uncond = torch.zeros(context_shape, device=device)
        self.noise = torch.zeros((self.steps, *x_shape), device=device)

        def run() -> torch.Tensor:
            return sample(denoiser, self.cond, self.uncond if self.guided else None, self.x, schedule,
                          sqrt_alphas_cumprod, sqrt_one_minus_alphas_cumprod, cfg_scale=cfg_scale,
                          step_noise=lambda i: self.noise[i], fused=True)

        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(warmup):
                run()
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), torch.no_grad():
            self.out = run()

    def __call__(self, x_T: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor | None,
                 noise: torch.Tensor | None = None) -> torch.Tensor:
        """Replay with new inputs; ``noise`` is ``[steps, B, C, T, F]`` (needed when eta > 0).

        Returns a fresh tensor (the static output is overwritten by the next replay).
        """
        if x_T.shape != self.x.shape or cond.shape != self.cond.shape:
            raise ValueError(f"captured for x {tuple(self.x.shape)} and context {tuple(self.cond.shape)}, "
                             f"got {tuple(x_T.shape)} and {tuple(cond.shape)}")
        self.x.copy_(x_T)
        self.cond.copy_(cond)
        if self.guided:
            if uncond is None:
                raise ValueError("captured with guidance: uncond is required")
            self.uncond.copy_(uncond)
        if noise is not None:
            self.noise.copy_(noise)
        self.graph.replay()
        return self.out.clone()
