"""The first step of the skeleton `sr` and `photo` run (plan -> shard -> progress -> failures ->
totals): plan, the (input, output) pairs (`sr_jobs.plan`, the IN/OUT rules they share), a line for
the subfolders of IN that are not entered, and what a rerun keeps (`sr_jobs.select`). The rest is
`launch.FolderJob`, which `eval` runs too.
"""
from __future__ import annotations

import sys
from pathlib import Path

from .. import launch
from ..imageio import check_writable
from . import sr_jobs


def plan(src: Path, dst: Path, quiet: bool = False) -> tuple[list[tuple[Path, Path]], bool]:
    """`sr_jobs.plan`, saying (once, on rank 0) how many subfolders of a folder IN are skipped."""
    jobs, is_folder = sr_jobs.plan(src, dst)
    check_writable(str(dst))
    if is_folder and not quiet and launch.is_main():
        subfolders = sr_jobs.subfolders(src)
        if subfolders:
            print(f"note: {subfolders} subfolder{'s' if subfolders > 1 else ''} of {src} skipped (only the images "
                  "directly in IN are read)", file=sys.stderr)
    return jobs, is_folder
