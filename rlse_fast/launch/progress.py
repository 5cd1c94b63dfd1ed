"""One progress bar for the whole job, on rank 0; the other ranks only count."""
from __future__ import annotations

from tqdm import tqdm

from . import group


class Progress:
    """A tqdm bar of `total` items over every rank (`total` is the job's, not this rank's shard's).

    Each rank adds what it finishes to a counter in torchrun's store; rank 0's bar shows the counter.
    `close()` waits for every rank (the bar still moving) and so is a collective: call it on every rank.
    In a single process this is a plain tqdm bar."""

    def __init__(self, total: int, disable: bool = False, **tqdm_kwargs):
        self.world = group.current()
        self.bar = tqdm(total=total, disable=disable or not self.world.main, **tqdm_kwargs)
        self.shared = group.active()

    def update(self, n: int = 1) -> None:
        if not self.shared:
            self.bar.update(n)
            return
        self._show(group.add("progress", n))

    def _show(self, done: int) -> None:
        if self.world.main and done != self.bar.n:
            self.bar.update(done - self.bar.n)

    def set_postfix_str(self, text: str) -> None:
        self.bar.set_postfix_str(text)  # rank 0's current item (a disabled bar ignores it)

    @staticmethod
    def write(text: str, **kwargs) -> None:
        """A message line that does not break the bar (any rank; prefixed with the rank in a job)."""
        w = group.current()
        tqdm.write(f"[rank {w.rank}] {text}" if w.distributed else text, **kwargs)

    def close(self) -> None:
        if self.shared:
            group.wait_all(on_poll=lambda: self._show(group.add("progress", 0)))
            self._show(group.add("progress", 0))
        self.bar.close()
