"""Where this process sits in a torchrun job: its rank from the environment, its device, its threads.

torchrun (and `python -m torch.distributed.run`, which Slurm jobs wrap) sets RANK, WORLD_SIZE,
LOCAL_RANK and LOCAL_WORLD_SIZE for every process it starts; a plain `rlse-fast` run has none of them
and is rank 0 of a world of 1, which changes nothing.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..devices import pick_device as pick
from ..errors import UserError


@dataclass(frozen=True)
class World:
    rank: int = 0
    """This process's rank among all processes of the job (0 .. size - 1)."""
    size: int = 1
    """Processes in the job, over every node."""
    local_rank: int = 0
    """This process's rank on its node: its GPU index."""
    local_size: int = 1
    """Processes on this node: they share its CPU cores."""

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes what is global and shows progress."""
        return self.rank == 0


def world() -> World:
    """The World torchrun describes in the environment (rank 0 of 1 without torchrun)."""
    names = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")
    raw = {n: os.environ.get(n) for n in names}
    if raw["WORLD_SIZE"] in (None, "", "1"):
        return World()
    try:
        rank, size = int(raw["RANK"]), int(raw["WORLD_SIZE"])
        local_rank = int(raw["LOCAL_RANK"] or 0)
        local_size = int(raw["LOCAL_WORLD_SIZE"] or size)
    except (TypeError, ValueError):
        raise UserError(f"WORLD_SIZE is set but {', '.join(f'{n}={raw[n]!r}' for n in names)} is not a torchrun "
                        "environment; launch with torchrun, or unset WORLD_SIZE") from None
    if not (0 <= rank < size and 0 <= local_rank < local_size <= size):
        raise UserError(f"inconsistent torchrun environment: RANK={rank} WORLD_SIZE={size} "
                        f"LOCAL_RANK={local_rank} LOCAL_WORLD_SIZE={local_size}")
    return World(rank, size, local_rank, local_size)


def cpu_cores() -> int:
    """Cores this process may run on (its affinity mask, which Slurm and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def pick_device(name: str, w: World) -> torch.device:
    """The --device choice for this rank: on CUDA, GPU LOCAL_RANK of its node (one GPU per process);
    on the CPU, a share of the node's cores (cores // processes on the node) as PyTorch threads."""
    device = pick(name)
    if not w.distributed:
        return device
    if device.type == "cuda":
        if device.index is None:
            count = torch.cuda.device_count()
            if w.local_rank >= count:
                raise UserError(f"{w.local_size} processes on this node but {count} GPUs visible; "
                                f"use torchrun --nproc-per-node {count} (one process per GPU)")
            device = torch.device("cuda", w.local_rank)
        torch.cuda.set_device(device)
    return device
