"""The metrics.csv files of `eval` and `photo-eval`: read as dicts of strings, written sorted, with
floats to 6 significant digits, atomically."""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Callable

from ..imageio import atomic_write


def read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def cell(v):
    """One value as the CSV holds it: '' for none, 'inf', or 6 significant digits."""
    if v is None or v == "":
        return ""
    if isinstance(v, float):
        return "inf" if math.isinf(v) else f"{v:.6g}"
    return v


def write_rows(path: Path, rows: list[dict], columns: list[str], order: Callable[[dict], tuple]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    for r in sorted(rows, key=order):
        w.writerow({k: cell(r.get(k)) for k in columns})
    text = buf.getvalue()
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
