"""Running a folder command as one process of a torchrun job (several GPUs, cores or nodes).

A command calls `start()` for its device (which joins the process group under torchrun), takes its
`shard()` of the pending inputs, counts them on a `Progress`, and writes only files of its own inputs;
what is global (a summary, a merged table) rank 0 writes after a `gather()` or `ShardedTable.close()`.
`rlse_fast.cli` calls `end()`. Without torchrun every call is what a single process did before.
"""
from __future__ import annotations

import torch

from . import group
from .env import World, cpu_cores, pick_device, world
from .group import barrier, broadcast, current, destroy, gather, in_turn, wait_all
from .job import FolderJob
from .progress import Progress
from .shard import shard
from .table import ShardedTable


def start(device: str = "auto", threads: int | None = None):
    """Join the torchrun job (if any) and return this rank's torch.device for the --device choice.

    On the CPU a rank runs `threads` PyTorch threads, by default its share of the node's cores
    (cores // processes on the node; torchrun itself would set 1); a single process keeps PyTorch's
    own choice unless `threads` is given."""
    w = world()
    dev = pick_device(device, w)
    if threads:
        torch.set_num_threads(threads)
    elif w.distributed and dev.type == "cpu":
        torch.set_num_threads(max(1, cpu_cores() // w.local_size))
    group.init(w, dev)
    return dev


def end() -> None:
    """Leave the process group (nothing without one)."""
    destroy()


def is_main() -> bool:
    return current().main


def total(*counts: int) -> tuple[int, ...]:
    """Each count summed over the ranks (a collective in a job)."""
    return tuple(sum(c) for c in zip(*gather(tuple(counts))))


__all__ = ["World", "world", "cpu_cores", "start", "end", "is_main", "total", "shard", "Progress", "FolderJob", "ShardedTable",
           "barrier", "broadcast", "gather", "in_turn", "wait_all", "current"]
