"""Process-group setup for `torchrun`: one process per device, gloo on CPU, nccl on CUDA.

Without torchrun's environment (WORLD_SIZE unset or 1) everything degrades to a single process with
no process group, so the same trainer code runs in a notebook, a test or a multi-GPU job.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from echo_pipeline.devices import resolve_device


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    device: torch.device
    #: True when this context created the process group (and so must destroy it).
    owns_group: bool

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def pick_device(preference: str, local_rank: int = 0) -> torch.device:
    """This rank's device: `resolve_device(preference)`, where CUDA means this rank's own GPU."""
    if resolve_device(preference) == "cpu":
        return torch.device("cpu")
    return torch.device("cuda", local_rank)


def init_distributed(device_preference: str = "auto") -> DistContext:
    """Join the process group torchrun describes in the environment (RANK, WORLD_SIZE, LOCAL_RANK, ...)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size)))
    device = pick_device(device_preference, local_rank)
    owns = False
    if world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        owns = True
    return DistContext(rank, world_size, local_rank, local_world, device, owns)


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def mean_across_ranks(ctx: DistContext, value: float) -> float:
    """Average a Python float over all ranks (identity in a single process)."""
    if not ctx.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t)
    return float(t.item()) / ctx.world_size


def shutdown(ctx: DistContext) -> None:
    """Destroy the process group if this context created it."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()
