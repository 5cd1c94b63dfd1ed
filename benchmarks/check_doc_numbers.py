"""Check that moving text between README.md and docs/*.md lost no number.

    python benchmarks/check_doc_numbers.py [REF]        # REF: a git revision, default main

Every number token of README.md + docs/*.md (docs/eval excluded) at REF (with its unit: x, %, ms,
dB, px, ...) must appear at least as often in today's README.md + docs/*.md. Prints the numbers
that went missing or appear fewer times, and exits 1 if any did.
"""
from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NUMBER = re.compile(r"(?<![\w.])[-−+]?\d[\d,]*(?:\.\d+)?(?:e-?\d+)?"
                    r"(?:x|%| ?[kMGT]?B| ?ms| ?s| ?dB| ?px| ?MP| ?Mpx)?(?!\w)")


def _at(ref: str) -> str:
    """README.md and docs/*.md at REF, concatenated."""
    def show(path: str) -> str:
        res = subprocess.run(["git", "show", f"{ref}:{path}"], cwd=ROOT, capture_output=True, text=True)
        return res.stdout if res.returncode == 0 else ""
    res = subprocess.run(["git", "ls-tree", "--name-only", ref, "docs/"], cwd=ROOT, capture_output=True, text=True)
    if res.returncode != 0:
        print(f"check_doc_numbers: {ref}: not a git revision of this repository", file=sys.stderr)
        sys.exit(2)
    pages = [p for p in res.stdout.split() if p.endswith(".md")]
    return "\n".join(show(p) for p in ["README.md", *pages])


def lost_numbers(before: str, after: str) -> dict[str, tuple[int, int]]:
    """{number: (count before, count after)} for every number token `after` holds fewer times."""
    b = collections.Counter(m.group(0) for m in NUMBER.finditer(before))
    a = collections.Counter(m.group(0) for m in NUMBER.finditer(after))
    return {n: (c, a[n]) for n, c in b.items() if a[n] < c}


def _now() -> str:
    return "\n".join(p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ref", nargs="?", default="main")
    args = p.parse_args()
    before, after = _at(args.ref), _now()
    lost = lost_numbers(before, after)
    print(f"{args.ref}: {len(NUMBER.findall(before))} number tokens; now: {len(NUMBER.findall(after))}")
    for n, (c, a) in sorted(lost.items()):
        print(f"  {n!r}: {c} then, {a} now")
    if lost:
        sys.exit(1)
    print("no number lost")


if __name__ == "__main__":
    main()
