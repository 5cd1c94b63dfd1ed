"""The skeleton of a job over many inputs, after its plan: shard (under torchrun, this rank's share of
what is not done yet), progress (one bar for the whole job, on rank 0), failures (a single input's
failure is the command's error; in a folder each is one line and a count) and totals (summed over
the ranks). `sr`, `photo` and `eval` run it."""
from __future__ import annotations

import sys

from ..errors import RunFailure
from .group import gather
from .progress import Progress
from .shard import shard


class FolderJob:
    """One bar over the `total` items left to do (the whole job's, on rank 0) and the failure count.
    unit: what one item is ('face', 'photo', 'run')."""

    def __init__(self, total: int, unit: str, is_folder: bool = True, quiet: bool = False, desc: str | None = None):
        self.is_folder = is_folder
        self.failed = 0
        kwargs = {"desc": desc} if desc else {}
        self.bar = Progress(total=total, unit=unit, disable=quiet or not is_folder, **kwargs)

    @staticmethod
    def shard(pending: list) -> list:
        """This rank's share of `pending` (rank 0's order; everything in a single process)."""
        return shard(pending)

    def say(self, text: str) -> None:
        self.bar.write(text, file=sys.stderr)

    def fail(self, names: list[str], why: str, count: int | None = None) -> None:
        """Items that failed while running: a single input's failure is the command's (RunFailure,
        exit 1); in a folder it is one line and counts (`count` items, default one per name)."""
        if not self.is_folder:
            raise RunFailure(why)
        self.say(f"failed {', '.join(names)}: {why}")
        self.failed += len(names) if count is None else count

    def skip(self, exc: Exception) -> None:
        """An input refused before running (a UserError): a single input's is the command's error
        (exit 2); in a folder it is one line and counts as failed."""
        if not self.is_folder:
            raise exc
        self.say(f"skipped: {exc}")
        self.failed += 1

    def update(self, n: int = 1) -> None:
        self.bar.update(n)

    def finish(self) -> int:
        """Close the bar and return the failures over every rank (a collective under torchrun)."""
        self.bar.close()
        return sum(counts[0] for counts in gather((self.failed,)))
