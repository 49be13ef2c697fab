"""Data-parallel training over several processes with PyTorch DDP (Li et al., "PyTorch Distributed", VLDB 2020).

``torchrun --nproc_per_node N -m aiecg train ...`` starts N copies of the command with ``RANK``, ``WORLD_SIZE``
and ``LOCAL_RANK`` set; :func:`setup` joins them into one process group (gloo on CPU, NCCL on GPU). Every
global batch of the seeded epoch order is split by stride over the ranks (rank r takes rows r, r+N, ...), so
each rank sees a disjoint shard of every epoch, as with a seeded ``DistributedSampler``, and the union of the
shards is exactly the one-process epoch. Scalars are summed over ranks and then broadcast from rank 0, so every
rank takes the same early-stopping decision; only rank 0 writes files.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from aiecg.data.workers import die_with_parent


@dataclass(frozen=True)
class World:
    """Where this process sits among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1


def current_world() -> World:
    """The world torchrun (or a Slurm ``srun`` wrapper that sets the same variables) describes."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return World(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                 int(os.environ.get("LOCAL_RANK", 0)))


def is_main_process() -> bool:
    """True in a single process and on rank 0 of a multi-process run: the one process that writes files."""
    return current_world().is_main


def setup(device: torch.device) -> tuple[World, torch.device]:
    """Join the process group when started by torchrun (a no-op otherwise); returns the world and the device
    of this rank (``cuda:LOCAL_RANK`` on GPU nodes)."""
    world = current_world()
    if not world.active:
        return world, device
    die_with_parent(os.getppid())  # a SIGKILLed torchrun agent leaves no rank running (it cannot stop them itself)
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(_teardown)
    return world, device


def _teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, world: World, device: torch.device) -> nn.Module:
    """``model`` inside DistributedDataParallel (gradients averaged over ranks); the model itself otherwise."""
    if not world.active:
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def shard(index: torch.Tensor, world: World) -> torch.Tensor:
    """This rank's rows of a global batch: every ``world.size``-th row from ``world.rank`` on."""
    return index[world.rank :: world.size] if world.active else index


def reduce_sums(values: list[float], world: World, device: torch.device) -> list[float]:
    """Sum ``values`` over ranks; the result is broadcast from rank 0, so it is bitwise the same everywhere."""
    if not world.active:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    dist.broadcast(tensor, src=0)
    return tensor.tolist()


def sync_buffers(model: nn.Module, world: World) -> None:
    """Average floating-point buffers (batch-norm running statistics) over ranks and take rank 0's integer
    buffers, so every rank ends an epoch with identical model state."""
    if not world.active:
        return
    for buffer in model.buffers():
        if buffer.is_floating_point():
            dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
            buffer.div_(world.size)
        dist.broadcast(buffer, src=0)
