"""A results table (CSV rows) that several ranks fill: each writes only its own part file, rank 0 merges."""
from __future__ import annotations

from pathlib import Path

from . import group


class ShardedTable:
    """Rows of `path`, read and written with `read(path) -> rows` and `write(path, rows)` (atomic).

    In a job, rank r writes the rows it makes to `<dir>/.ranks/<stem>.rank<r><suffix>` (rewritten
    after every `flush`, so a killed rank loses at most its unflushed rows); `close()` gathers every
    rank's rows with torch.distributed and rank 0 writes `path`. Leftover parts of a job that was
    killed are merged into `path` by the next run's `open()`, whatever its world size. In a single
    process, `flush` writes `path` itself, as before there were ranks. `key(row)` identifies a row:
    merging keeps the first row of each key."""

    def __init__(self, path: Path, read, write, key):
        self.path, self.read, self.write, self.key = Path(path), read, write, key
        self.world = group.current()
        self.rows: list[dict] = []
        self.mine: list[dict] = []

    @property
    def parts_dir(self) -> Path:
        return self.path.parent / ".ranks"

    def _part(self, rank: int) -> Path:
        return self.parts_dir / f"{self.path.stem}.rank{rank}{self.path.suffix}"

    def _leftover_parts(self) -> list[Path]:
        if not self.parts_dir.is_dir():
            return []
        prefix = f"{self.path.stem}.rank"
        found = [p for p in self.parts_dir.iterdir()
                 if p.name.startswith(prefix) and p.name.endswith(self.path.suffix)
                 and p.name[len(prefix):-len(self.path.suffix) or None].isdigit()]
        return sorted(found, key=lambda p: int(p.name[len(prefix):-len(self.path.suffix) or None]))

    def _unique(self, rows: list[dict]) -> list[dict]:
        seen, out = set(), []
        for r in rows:
            k = self.key(r)
            if k not in seen:
                seen.add(k)
                out.append(r)
        return out

    def open(self) -> list[dict]:
        """The rows already in the table (every rank; a collective in a job)."""
        if self.world.main:
            parts = self._leftover_parts()
            if parts:  # a killed job's rows: into the table, then drop the parts
                rows = self.read(self.path) + [r for p in parts for r in self.read(p)]
                self.write(self.path, self._unique(rows))
                for p in parts:
                    p.unlink()
                _remove_if_empty(self.parts_dir)
        group.barrier()
        self.rows = self.read(self.path)
        return list(self.rows)

    def add(self, row: dict) -> None:
        self.mine.append(row)

    def flush(self) -> None:
        """Write what this rank has so far (its part in a job, the table itself in a single process)."""
        if not group.active():
            self.write(self.path, self.rows + self.mine)
        elif self.mine:
            self.write(self._part(self.world.rank), self.mine)

    def close(self) -> list[dict]:
        """Every rank's rows merged (a collective in a job): rank 0 writes the table, each rank then
        deletes its own part. Returns all rows, on every rank."""
        if not group.active():
            if self.mine:
                self.flush()
            return self.rows + self.mine
        parts = group.gather(self.mine)
        rows = self._unique(self.rows + [r for part in parts for r in part])
        if self.world.main:
            self.write(self.path, rows)
        group.barrier()
        self._part(self.world.rank).unlink(missing_ok=True)
        group.barrier()
        if self.world.main:
            _remove_if_empty(self.parts_dir)
        return rows


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass
