"""Deterministic shards of the pending inputs."""
from __future__ import annotations

from . import group


def shard(pending: list) -> list:
    """This rank's share of `pending` (every input not yet done, in a fixed order): rank r of w takes
    items r, r + w, r + 2w, ... of rank 0's list. Rank 0's list is broadcast first, so every rank
    slices the same list even when rank 0 has already written outputs while another was still
    listing the folder; interleaving spreads a sorted folder's mixed sizes evenly over the ranks.
    As only what is not done yet is sharded, a rerun with another world size finishes the rest."""
    pending = group.broadcast(list(pending))
    w = group.current()
    return pending[w.rank::w.size]
