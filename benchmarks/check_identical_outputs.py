"""Check that `rlse-fast sr` writes byte-identical images and the same sidecars (timing aside) from two
source trees: a baseline checkout (e.g. main before a refactor) and this one.

    python benchmarks/check_identical_outputs.py --baseline /path/to/baseline/checkout [--steps 5]

Runs `rlse-fast sr rlse_fast/data/example_lr.png OUT --steps N --seed 0` with each tree on PYTHONPATH,
once per engine (eager; fast in fp32), on the CPU, and compares the PNG bytes and the JSON sidecars
without their timing ('seconds'), output path and the weights' path (the bundled prior lies inside each
tree; its sha256 is compared). Exits 1 on any difference, printing it.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = {"eager": ["--engine", "eager"], "fast": ["--engine", "fast", "--precision", "fp32"],
         "eager-ref": ["--engine", "eager", "--impl", "ref"]}
IGNORED = ("seconds", "output")


def run_tree(tree: Path, out: Path, steps: int, extra: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "rlse_fast", "sr", str(ROOT / "rlse_fast/data/example_lr.png"), str(out),
           "--steps", str(steps), "--seed", "0", "--device", "cpu", "--quiet", *extra]
    subprocess.run(cmd, env=env, check=True, cwd=tree, stdout=subprocess.DEVNULL)


def sidecar(path: Path) -> dict:
    data = json.loads(path.read_text())
    data["weights"].pop("path", None)  # the bundled prior's path lies inside each tree
    return {k: v for k, v in data.items() if k not in IGNORED}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", required=True, type=Path, help="the other checkout's root (holds rlse_fast/)")
    p.add_argument("--steps", type=int, default=5)
    args = p.parse_args(argv)
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in CASES.items():
            outs = []
            for label, tree in (("baseline", args.baseline.resolve()), ("this", ROOT)):
                out = Path(tmp) / label / f"{name}.png"
                out.parent.mkdir(parents=True, exist_ok=True)
                run_tree(tree, out, args.steps, extra)
                outs.append(out)
            same_png = outs[0].read_bytes() == outs[1].read_bytes()
            a, b = sidecar(outs[0].with_suffix(".json")), sidecar(outs[1].with_suffix(".json"))
            diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            print(f"{name}: image {'identical' if same_png else 'DIFFERS'}, sidecar "
                  f"{'identical (timing aside)' if not diff else 'DIFFERS in ' + ', '.join(diff)}")
            bad += (not same_png) + bool(diff)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
