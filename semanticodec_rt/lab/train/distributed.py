"""Data parallelism under ``torchrun``: process group from the environment, gradient averaging.

``torchrun --nproc_per_node N semanticodec-rt train ...`` sets RANK/WORLD_SIZE/LOCAL_RANK; the
loop then averages gradients over processes after every backward (one flat all-reduce per
parameter group) and starts from rank 0's weights.  This is what DistributedDataParallel does,
done by hand because the GAN stages call their discriminators several times per step, which a
DDP wrapper's one-forward-one-backward bookkeeping does not allow.  Without those variables
everything is a no-op and a single process runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_from_env(device: str) -> World:
    """Join the process group torchrun describes (gloo on CPU, nccl on CUDA); else World()."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def shutdown(clean: bool = True) -> None:
    """Leave the process group.  ``clean``: every process got here without an error, so wait for
    the others first: a gloo process that tears its connections down while a peer is still
    writing its last checkpoint can abort that peer ("terminate called without an active
    exception", seen once in CI).  After an error the barrier is skipped (the peers may never
    come)."""
    if dist.is_available() and dist.is_initialized():
        if clean:
            dist.barrier()
        dist.destroy_process_group()


def broadcast_module(module: torch.nn.Module, world: World) -> None:
    """Make every process hold rank 0's parameters and buffers."""
    if world.size == 1:
        return
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src=0)


def average_gradients(params: list[torch.nn.Parameter], world: World) -> None:
    """Replace every gradient by its mean over processes (missing gradients count as zero)."""
    if world.size == 1:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world.size
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


def all_sum(t: torch.Tensor, world: World) -> torch.Tensor:
    """Sum of ``t`` over processes (in place; returned for chaining)."""
    if world.size > 1:
        dist.all_reduce(t)
    return t


def gather_batch(t: torch.Tensor, world: World) -> torch.Tensor:
    """Concatenate every process's ``t`` along dim 0 in rank order (the global batch order,
    because :func:`..data.shard` hands out contiguous blocks).  Same shape on every process."""
    if world.size == 1:
        return t
    parts = [torch.empty_like(t) for _ in range(world.size)]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts)
