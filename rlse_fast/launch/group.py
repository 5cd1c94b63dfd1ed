"""The process group of a torchrun job: init and destroy, a barrier, gathers, waiting on the store.

Everything here is a no-op (or the identity) in a single process. Collectives must be called by every
rank in the same order; the functions that wait for slow work (`wait_all`, `in_turn`) first wait on
torchrun's key-value store, which has no collective timeout (NCCL's is 10 minutes: one rank may
finish its shard an hour before another), and then meet in a barrier that returns at once.

Python objects (`gather`, `broadcast`) travel through the store too, pickled, never through
`all_gather_object`: gloo's worker thread frees that collective's tensors after the call returns, and
when the interpreter is already finalizing (the command's last gather is just before exit) the free
needs the GIL and aborts the process ("terminate called without an active exception").
"""
from __future__ import annotations

import os
import pickle
import signal
import sys
import time

from .env import World, world

_state: dict = {"world": World(), "store": None, "objects": None, "waits": 0, "exchanges": 0}


def init(w: World, device) -> None:
    """Join the job's process group: NCCL when this rank works on a GPU, gloo on the CPU."""
    import torch.distributed as dist

    _state["world"] = w
    if not w.distributed or dist.is_initialized():
        return

    cuda = getattr(device, "type", str(device)) == "cuda"
    # torchrun's store outlives a restart of the workers (--max-restarts) with the old ranks' keys in
    # it: ours, and the group's own, go under a prefix of the restart count.
    store, _, _ = next(dist.rendezvous("env://", w.rank, w.size))
    store = dist.PrefixStore(f"rlse_fast/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}/", store)
    dist.init_process_group("nccl" if cuda else "gloo", store=store, rank=w.rank, world_size=w.size,
                            device_id=device if cuda else None)
    _state["store"] = dist.PrefixStore("wait/", store)
    _state["objects"] = dist.PrefixStore("objects/", store)
    # torchrun stops the other ranks with SIGTERM when one fails: exit through Python, so that an
    # atomic write in progress removes its temporary file.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def destroy() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _state.update(world=World(), store=None, objects=None, waits=0, exchanges=0)


def current() -> World:
    """The World set by `init` (rank 0 of 1 before it)."""
    return _state["world"]


def active() -> bool:
    return _state["store"] is not None


def barrier() -> None:
    if active():
        import torch.distributed as dist

        dist.barrier()


def _exchange(obj, senders) -> list:
    """Every rank in `senders` posts its pickled obj; every rank returns them all, in rank order. Each
    call gets its own keys (the ranks call in the same order); the wait polls the store."""
    _state["exchanges"] += 1
    store, rank = _state["objects"], current().rank
    keys = [f"{_state['exchanges']}/{r}" for r in senders]
    if rank in senders:
        store.set(keys[senders.index(rank)], pickle.dumps(obj))
    pause = 0.002
    while not store.check(keys):
        time.sleep(pause)
        pause = min(2 * pause, 0.2)
    return [pickle.loads(store.get(k)) for k in keys]


def gather(obj) -> list:
    """[obj of rank 0, obj of rank 1, ...] on every rank ([obj] in a single process)."""
    if not active():
        return [obj]
    return _exchange(obj, list(range(current().size)))


def broadcast(obj):
    """Rank 0's obj, on every rank."""
    if not active():
        return obj
    return _exchange(obj, [0])[0]


def add(key: str, n: int) -> int:
    """Add n to a counter shared by every rank; returns its new value (a single process: n)."""
    return _state["store"].add(key, n) if active() else n


def wait_all(on_poll=None, every: float = 0.2) -> None:
    """Return when every rank has called wait_all as many times as this one; calls on_poll() while
    waiting. The wait is on torchrun's store (no collective timeout), then a barrier."""
    if not active():
        return
    _state["waits"] += 1
    key = f"arrived/{_state['waits']}"
    n = add(key, 1)
    while n < current().size:
        if on_poll is not None:
            on_poll()
        time.sleep(every)
        n = add(key, 0)
    barrier()


def in_turn(fn):
    """fn() on rank 0 first, then on the first process of every other node, then on the rest: what
    fills a cache (weights downloads, the Gaussian fit) is written by one process while the others
    wait, and read by them afterwards, whether the cache folder is shared between nodes or not."""
    w = current()
    result = None
    for turn in range(3):
        mine = 0 if w.rank == 0 else 1 if w.local_rank == 0 else 2
        if mine == turn:
            result = fn()
        wait_all()
    return result


__all__ = ["init", "destroy", "current", "barrier", "gather", "broadcast", "add", "wait_all", "in_turn", "world"]
